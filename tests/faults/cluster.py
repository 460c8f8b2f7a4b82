"""A PostgreSQL cluster of a test's own: initdb into a temporary directory, listening on a free port of 127.0.0.1 only
(its socket in that directory), so a test may crash and restart it without touching the server other tests share."""

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

ROLE = "fieldbook"


def _bin_dir() -> Path | None:
    configured = os.environ.get("FIELDBOOK_TEST_POSTGRES_BIN")
    if configured:
        return Path(configured)
    # Debian's layout, /usr/lib/postgresql/<major>/bin: the newest.
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: float(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _as_postgres() -> dict[str, Any]:
    """initdb and postgres refuse to run as root: as root (CI), they run as the `postgres` account."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root needs a `postgres` account to run a PostgreSQL cluster as")
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Cluster:
    bin: Path
    home: Path
    port: int
    run_as: dict[str, Any]

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{ROLE}@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str, timeout: float = 30) -> None:
        command = [str(self.bin / "pg_ctl"), "-D", str(self.home / "data"), "-l", str(self.home / "log"), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, **self.run_as)
        assert done.returncode == 0, f"pg_ctl {' '.join(args)}: {done.stdout}{done.stderr}\n{self.log()}"

    def restart_immediately(self) -> None:
        """Every backend killed at once, as in a crash; crash recovery on start. Returns once it accepts again."""
        self.pg_ctl("restart", "-m", "immediate", "-w", "-t", "30")

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.home / "log").read_text()[-3000:]
        return ""


@contextlib.contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A running cluster whose superuser `fieldbook` logs in without a password (loopback only), removed afterwards.
    Skipped without PostgreSQL's programs, except in CI, where it fails."""
    bin_dir = _bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        message = "PostgreSQL's programs (initdb, pg_ctl) not found; set FIELDBOOK_TEST_POSTGRES_BIN"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    run_as = _as_postgres()
    # Not pytest's tmp_path: its parent is private to the test's user, which the postgres account is not.
    home = Path(tempfile.mkdtemp(prefix="fieldbook-pg-"))
    if run_as:
        os.chown(home, run_as["user"], run_as["group"])
    cluster = Cluster(bin_dir, home, _free_port(), run_as)
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(home / "data"), "-U", ROLE, "--auth=trust", "--no-sync"]
        subprocess.run(
            [*initdb, "--encoding=UTF8", "--locale=C", "--no-instructions"],
            capture_output=True,
            timeout=60,
            check=True,
            **run_as,
        )
        with (home / "data" / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {cluster.port}\nunix_socket_directories = '{home}'\n")
        cluster.pg_ctl("start", "-w", "-t", "30")
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError, AssertionError):
            cluster.pg_ctl("stop", "-m", "immediate", "-w", "-t", "10")
        shutil.rmtree(home, ignore_errors=True)
