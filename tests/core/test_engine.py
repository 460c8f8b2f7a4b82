"""How the engines are set up: what every connection of the embedded SQLite database is opened with."""

from pathlib import Path

import sqlalchemy as sa

from api.core.db import make_engine


async def test_sqlite_connections_read_through_a_memory_map(tmp_path: Path) -> None:
    # Every connection shares the operating system's page cache instead of copying pages into its own.
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'mapped.db'}")
    try:
        async with engine.connect() as connection:
            settings = {
                pragma: await connection.scalar(sa.text(f"PRAGMA {pragma}"))
                for pragma in ("mmap_size", "journal_mode", "foreign_keys")
            }
    finally:
        await engine.dispose()
    assert settings == {"mmap_size": 1 << 30, "journal_mode": "wal", "foreign_keys": 1}
