"""Run Alembic from code (the CLI and the tests), on the database a URL names."""

from pathlib import Path

from alembic import command
from alembic.config import Config


def _root() -> Path:
    """Where alembic.ini lives: the source checkout, or the working directory of an installed copy (Docker)."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "alembic.ini").exists() else Path.cwd()


def alembic_config(url: str | None = None) -> Config:
    root = _root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "alembic"))
    if url:
        config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """What autogenerate compares: not the search indexes, which are made by hand (FTS5 tables and triggers on
    SQLite, trigram GIN indexes on PostgreSQL) and which no model describes."""
    if name is None:
        return True
    if type_ == "table":
        return not (name.endswith("_fts") or "_fts_" in name)
    return not (type_ == "index" and name.endswith("_trgm"))
