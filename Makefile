# The README's commands. `make run` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test install lint migrate demo serve clean

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install migrate demo serve

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

# One test process per core; each builds its own SQLite file and PostgreSQL database.
test: lint
	$(BIN)/pytest -n auto

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache fieldbook.db fieldbook.db-wal fieldbook.db-shm

# Not part of `make test` or CI: (re)create the PostgreSQL database fieldbook_bench with ~2.5M rows (a few minutes),
# then time the hot read paths against raw asyncpg and write bench/RESULTS.md. Needs the server of
# .ci/postgres-setup. Options: BENCH_LOAD_ARGS="--scale 0.1", BENCH_ARGS="--iterations 50".
.PHONY: bench
bench: install
	$(BIN)/python -m bench.load $(BENCH_LOAD_ARGS)
	$(BIN)/python -m bench.read_paths $(BENCH_ARGS)
