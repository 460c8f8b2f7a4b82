"""What the loader and the read-path benchmark share: where the database is, who signs in, with what secret."""

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_DATABASE = "fieldbook_bench"
# The role .ci/postgres-setup creates (CREATEDB); override with FIELDBOOK_BENCH_SERVER.
DEFAULT_SERVER = "postgresql://fieldbook:fieldbook@127.0.0.1:5432"

PASSWORD = "bench-password-0123"
# The app refuses the development secret outside development; the benchmark runs it as in production.
SECRET_KEY = "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"

MAIN_ORG = "Bench Main"
MAIN_DOMAIN = "main.bench.example"
ADMIN_EMAIL = f"admin@{MAIN_DOMAIN}"
# The North team's head, and the rep who owns the biggest companies (so every role sees the big cards).
MANAGER_EMAIL = f"north.manager@{MAIN_DOMAIN}"
REP_EMAIL = f"north.rep1@{MAIN_DOMAIN}"
# A rep hired today, in the North team: owns nothing and is shared nothing, so sees almost nothing.
NEW_REP_EMAIL = f"north.new@{MAIN_DOMAIN}"


def server() -> str:
    return os.environ.get("FIELDBOOK_BENCH_SERVER", DEFAULT_SERVER)


def dsn(database: str) -> str:
    """A libpq/asyncpg URL for `database` on the benchmark server."""
    parts = urlsplit(server())
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def sqlalchemy_url(database: str) -> str:
    return dsn(database).replace("postgresql://", "postgresql+asyncpg://", 1)


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
