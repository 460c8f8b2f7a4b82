"""`fieldbook` commands run as processes of their own, so that a test can kill them or run them on a failing disk;
always stopped (and reaped) however the test ends."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

FIELDBOOK = str(Path(sys.executable).with_name("fieldbook"))
ROOT = Path(__file__).resolve().parents[2]


def confined(*options: str) -> list[str]:
    """The command prefix that runs what follows on a failing disk (tests/faults/confine.py)."""
    return [sys.executable, "-m", "tests.faults.confine", *options, "--"]


@contextlib.contextmanager
def process(command: list[str], log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`command` with the test's environment plus `env` (FIELDBOOK_* settings), its output in `log`."""
    with log.open("ab") as out:
        started = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        yield started
    finally:
        if started.poll() is None:
            started.terminate()
            try:
                started.wait(5)
            except subprocess.TimeoutExpired:
                started.kill()
                started.wait(5)


@contextlib.contextmanager
def serving(database_url: str, log: Path, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """`fieldbook serve` on a free port of 127.0.0.1 (behind `prefix`, e.g. `confined(...)`), once it answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [*prefix, FIELDBOOK, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with process(command, log, FIELDBOOK_DATABASE_URL=database_url, FIELDBOOK_WEBHOOK_WORKER="false") as server:
        base = f"http://127.0.0.1:{port}"
        # Generous: two interpreters start (the confinement's, then the server's), on a machine busy with other tests.
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the server did not start:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        yield base
