"""SQLite on a read-only or a full disk: writes answer a 503 that says so (with Retry-After), reads go on where they
can, and the database is left whole with every write acknowledged before the fault. The server runs as its own
process on a disk made to fail it (tests/faults/confine.py)."""

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from api.core.db import STORAGE_RETRY_AFTER
from tests.conftest import own_database, serving
from tests.factories import make_org, make_user, sign_in
from tests.faults.processes import confined
from tests.faults.processes import serving as server_process

COMPANIES = "/api/v1/companies"
# Room a full disk leaves the server's files (the write-ahead log, which every write extends, first).
FULL_AT = 256 * 1024


async def _before_the_fault(url: str, companies: int) -> tuple[dict[str, str], set[str]]:
    """A signed-in user (the token outlives the fault: signing in writes) and the companies they saved."""
    async with serving(url) as (db, http):
        async with db.writer() as session:
            user = await make_user(session, await make_org(session, "Disk test"))
        headers = await sign_in(http, user)
        saved = set()
        for number in range(companies):
            made = await http.post(COMPANIES, json={"name": f"Before {number}"}, headers=headers)
            assert made.status_code == 201, made.text
            saved.add(made.json()["id"])
    return headers, saved


def _assert_refused(response: httpx.Response, says: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(STORAGE_RETRY_AFTER)
    assert says in response.json()["detail"], response.text


def _assert_whole(path: Path, acknowledged: set[str]) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {str(uuid.UUID(row[0])) for row in conn.execute("SELECT id FROM company")}
    assert stored == acknowledged


def _assert_logged_once(log: Path) -> None:
    text = log.read_text()
    assert text.count("database unavailable") == 1, text
    assert "Traceback" not in text, text


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """The database's directory and files without their write bits (binding on root too: the server runs with
    `--obey-permissions`). A connection of this process keeps the write-ahead log and its index in place, as a
    server that was running leaves them: without them, SQLite cannot even read a WAL database it cannot write."""
    with contextlib.closing(sqlite3.connect(path)) as holder:
        holder.execute("SELECT count(*) FROM company").fetchall()
        files = [path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")]
        for file in files:
            file.chmod(0o444)
        path.parent.chmod(0o555)
        try:
            yield
        finally:
            path.parent.chmod(0o755)
            for file in files:
                file.chmod(0o644)


def test_a_read_only_disk_refuses_writes_with_a_503_and_serves_reads(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    (tmp_path / "db").mkdir()
    with own_database("sqlite", tmp_path / "db") as url:
        path = Path(str(make_url(url).database))
        headers, saved = asyncio.run(_before_the_fault(url, 3))
        read_only = confined("--obey-permissions")
        with (
            _read_only(path),
            server_process(url, log, tuple(read_only)) as base,
            httpx.Client(base_url=base, headers=headers, timeout=10) as http,
        ):
            listed = http.get(COMPANIES)
            created = http.post(COMPANIES, json={"name": "After"})
            company = {"id": str(uuid.uuid4()), "name": "Offline SA"}
            mutation = {"id": 1, "name": "company.create", "args": company}
            pushed = http.post("/api/v1/sync/push", json={"client_id": str(uuid.uuid4()), "mutations": [mutation]})
            ready = http.get("/readyz")
        _assert_whole(path, saved)

    assert listed.status_code == 200, listed.text
    assert {c["id"] for c in listed.json()["items"]} == saved
    _assert_refused(created, "read-only")
    _assert_refused(pushed, "read-only")
    assert ready.status_code == 200, "it can still read: ready"
    _assert_logged_once(log)


def test_a_full_disk_refuses_writes_with_a_503_and_keeps_what_was_saved(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    (tmp_path / "db").mkdir()
    with own_database("sqlite", tmp_path / "db") as url:
        path = Path(str(make_url(url).database))
        headers, saved = asyncio.run(_before_the_fault(url, 0))
        prefix = tuple(confined("--max-file-bytes", str(FULL_AT)))
        with server_process(url, log, prefix) as base, httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            for number in range(500):
                made = http.post(COMPANIES, json={"name": f"Filling {number}"})
                if made.status_code != 201:
                    break
                saved.add(made.json()["id"])
            listed = http.get(COMPANIES, params={"limit": 200})
        _assert_whole(path, saved)

    print(f"\nSQLite disk full after {len(saved)} acknowledged writes")
    _assert_refused(made, "full")
    assert saved, "the disk was full before the first write: nothing was tested"
    assert listed.status_code == 200, listed.text
    _assert_logged_once(log)
