"""The Alembic tree builds exactly the schema the models describe, on both dialects, and can be undone."""

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import api.models  # noqa: F401  (registers every table)
from api.core.db import make_engine
from api.core.migrate import alembic_config, include_object, upgrade


def _diff(connection: Connection) -> list[object]:
    return list(
        compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True, "include_object": include_object}),
            SQLModel.metadata,
        )
    )


async def _schema_diff(url: str) -> list[object]:
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_diff)
    finally:
        await engine.dispose()


async def test_migrated_schema_matches_the_models(database_url):
    assert await _schema_diff(database_url) == []


def test_downgrade_to_base_and_upgrade_again(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    upgrade(url)
    assert asyncio.run(_schema_diff(url)) == []
