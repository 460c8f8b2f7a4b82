"""What the benchmarks share: where the database is, who signs in (the names of `fieldbook bench-data`'s data
sets, made in api/benchdata/plans.py), with what secret."""

import argparse
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from api.benchdata import postgres

# The data sets' names, for the benchmarks to sign in with (made in api/benchdata).
from api.benchdata.plans import (  # noqa: F401
    ADMIN_EMAIL,
    MAIN_DOMAIN,
    MAIN_ORG,
    MANAGER_EMAIL,
    MARKETING_EMAIL,
    NEW_REP_EMAIL,
    OTHER_DOMAIN,
    OTHER_ORG,
    PASSWORD,
    REP_EMAIL,
    SCALE_ORGS,
    TEAMS,
    email,
)

# Where `make bench` loads the large data set (`fieldbook bench-data --scale large`).
DEFAULT_DATABASE = "fieldbook_bench"
# The role .ci/postgres-setup creates (CREATEDB); override with FIELDBOOK_BENCH_SERVER.
DEFAULT_SERVER = "postgresql://fieldbook:fieldbook@127.0.0.1:5432"

# The app refuses the development secret outside development; the benchmark runs it as in production.
SECRET_KEY = "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


def server() -> str:
    return os.environ.get("FIELDBOOK_BENCH_SERVER", DEFAULT_SERVER)


def dsn(database: str) -> str:
    """A libpq/asyncpg URL for `database` on the benchmark server."""
    parts = urlsplit(server())
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def sqlalchemy_url(database: str) -> str:
    return dsn(database).replace("postgresql://", "postgresql+asyncpg://", 1)


async def create_database(name: str) -> None:
    """Drop `name` on the benchmark server if it is there, and create it empty (for the benchmarks that make
    their own data)."""
    await postgres.create(sqlalchemy_url(name), drop=True)


def write_section(path: Path, markers: tuple[str, str], section: str, preamble: str = "") -> None:
    """Replace what lies between `markers` (start, end) in `path` with `section`, which carries the markers itself;
    without them, append `preamble` (a heading, prose) and the section. The rest of the file is kept."""
    start, end = markers
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + (f"{preamble}\n\n" if preamble else "") + f"{section}\n"
    path.write_text(text)


def output_options(parser: argparse.ArgumentParser, results: Path, charts: Path) -> None:
    """The options every charted benchmark takes: its seed and where its report, charts and numbers go."""
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--results", type=Path, default=results, help="the Markdown file to write the report into")
    parser.add_argument("--charts", type=Path, default=charts, help="where the PNG charts go")
    parser.add_argument("--json", type=Path, help="also write the key numbers here")
    parser.add_argument("--no-write", action="store_true", help="print only; write no report and no charts")
