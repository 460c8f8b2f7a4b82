# The README's commands. `make run` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test install lint migrate demo serve clean pwa pwa-test api-types audit

PWA_SOURCES := $(shell find pwa/src pwa/public -type f 2>/dev/null) pwa/index.html pwa/vite.config.ts pwa/tsconfig.json
# Without Node (outside CI) the API still runs and tests; the app and its browser tests are skipped, visibly.
HAVE_NODE := $(shell command -v npm >/dev/null 2>&1 && echo yes)

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install pwa migrate demo serve

pwa/node_modules/.package-lock.json: pwa/package-lock.json
	cd pwa && npm ci --no-audit --no-fund

pwa/dist/index.html: pwa/node_modules/.package-lock.json $(PWA_SOURCES)
	cd pwa && npm run build

# The app, built into pwa/dist, which `fieldbook serve` serves at /.
ifeq ($(HAVE_NODE),yes)
pwa: pwa/dist/index.html
pwa-test: pwa/node_modules/.package-lock.json
	cd pwa && npm run lint && npx vitest run
else
pwa pwa-test:
	@echo "SKIPPED: Node.js (npm) is not installed, so the app is not built and its tests do not run." >&2
	@test "$$CI" != true || { echo "CI needs Node.js 20.19+" >&2; exit 1; }
endif

# Regenerate the app's API types from the OpenAPI document (tests/test_web.py fails when they are stale).
api-types: install pwa/node_modules/.package-lock.json
	mkdir -p build && $(BIN)/fieldbook openapi > build/openapi.json
	cd pwa && npm run api-types

migrate: install
	$(BIN)/fieldbook migrate

demo: install
	$(BIN)/fieldbook demo

serve: install
	$(BIN)/fieldbook serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy api

# Known vulnerabilities in the installed Python packages and the app's runtime npm packages (CI runs it).
audit: install
	$(BIN)/python .ci/audit.py

# One test process per core; each builds its own SQLite file and PostgreSQL database. The browser tests drive the
# built app (pwa) with Chromium.
test: lint pwa pwa-test
	$(BIN)/pytest -n auto --durations=25

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache fieldbook.db fieldbook.db-wal fieldbook.db-shm \
		pwa/node_modules pwa/dist build

# Not part of `make test` or CI: every benchmark scenario (under 20 min), written to bench/RESULTS.md with its charts.
# Starts PostgreSQL as CI does; the large data set is made once and kept while it is current (BENCH_ARGS=--reload).
.PHONY: bench
bench: $(VENV)/.bench
	bash .ci/postgres-setup
	$(BIN)/python -m bench.run $(BENCH_ARGS)

$(VENV)/.bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $@
