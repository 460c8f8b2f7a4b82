# syntax=docker/dockerfile:1
# The field app: built once, served by the API process as static files.
FROM node:20-slim AS app
WORKDIR /pwa
COPY pwa/package.json pwa/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY pwa ./
RUN npm run build

# Build: a virtualenv with Fieldbook and its dependencies.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
RUN /venv/bin/pip install .

# Run: a slim image, an unprivileged user, migrations on start, then the server.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 fieldbook && mkdir /data && chown fieldbook /data
COPY --from=build /venv /venv
WORKDIR /app
COPY alembic.ini ./
COPY alembic ./alembic
COPY --from=app /pwa/dist ./pwa/dist
ENV PATH=/venv/bin:$PATH \
    FIELDBOOK_PWA_DIR=/app/pwa/dist \
    PYTHONUNBUFFERED=1 \
    FIELDBOOK_ENV=production \
    FIELDBOOK_DATABASE_URL=sqlite+aiosqlite:////data/fieldbook.db
USER fieldbook
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
# FIELDBOOK_SECRET_KEY must be provided at run time: start-up refuses the default outside development.
CMD ["sh", "-c", "fieldbook migrate && exec fieldbook serve --host 0.0.0.0 --port 8000"]
