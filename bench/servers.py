"""Real HTTP servers for the benchmarks, each in a child process on a free loopback port: the app as `fieldbook
serve` runs it in production, and any other ASGI app (the raw-asyncpg baseline) under the same uvicorn options.

Both sides get the same server stack (uvicorn with uvloop and httptools, no access log), so that what differs
between them is what the app does per request."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from bench import common

# Production settings, except the secret (the benchmark's own) and the access log (off on both sides: it is I/O the
# baseline would not do).
APP_ENV = {
    "FIELDBOOK_ENV": "production",
    "FIELDBOOK_SECRET_KEY": common.SECRET_KEY,
    "FIELDBOOK_LOG_LEVEL": "warning",
}
# Throughput runs send far more requests per user than a person can: the limiter still runs (its statement is part of
# every request's cost), with limits nobody reaches.
UNLIMITED = {
    "FIELDBOOK_RATE_LIMIT_PER_MINUTE": "100000000",
    "FIELDBOOK_RATE_LIMIT_BURST": "100000000",
    "FIELDBOOK_RATE_LIMIT_KEY_PER_MINUTE": "100000000",
    "FIELDBOOK_RATE_LIMIT_KEY_BURST": "100000000",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def uvicorn(
    target: str, *, env: Mapping[str, str], workers: int = 1, factory: bool = False, ready: str = "/healthz"
) -> Iterator[str]:
    """Serve the ASGI app `target` ("module:attribute") until the block ends; yields its base URL once `ready`
    answers 200."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    argv += ["--log-level", "warning", "--timeout-graceful-shutdown", "5", *(["--factory"] if factory else [])]
    process = subprocess.Popen(argv, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base + ready)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready ({url})")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer {url} within {timeout:.0f} s")


def app_env(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment `app` serves with (set the same in a process that builds the app in-process, to compare)."""
    return {**APP_ENV, "FIELDBOOK_DATABASE_URL": database_url, **(extra or {})}


@contextlib.contextmanager
def app(
    database_url: str, *, workers: int = 1, extra: Mapping[str, str] | None = None, profile: Path | None = None
) -> Iterator[str]:
    """The app, as `fieldbook serve --workers N` runs it on `database_url`. With `profile`, the app is wrapped by
    `profiled_app` (pyinstrument), and `start_profile`/`stop_profile` write a report of what ran in between there."""
    env = app_env(database_url, extra)
    target = "api.main:create_app"
    if profile is not None:
        env[PROFILE_ENV], target = str(profile), "bench.servers:profiled_app"
    with uvicorn(target, env=env, workers=workers, factory=True, ready="/readyz") as base:
        yield base


# Where the app's time goes: a sampling profiler in the served process, switched on and off over HTTP.

PROFILE_ENV = "BENCH_PROFILE_OUT"
_PROFILE_PATH = "/__bench/profile/"


def profiled_app() -> Any:
    """`create_app()` behind a switch: GET /__bench/profile/start starts pyinstrument, sampling the event loop's
    thread every millisecond (where CPU time goes; the loop's idle wait shows as `Runner.run` under uvloop), and GET
    /__bench/profile/stop writes its report to $BENCH_PROFILE_OUT: the call tree there, the functions by their own
    time beside it (suffix `.flat`). pyinstrument is no dependency of the app: install it to profile."""
    from pyinstrument import Profiler

    from api.main import create_app

    inner = create_app()
    profiler = Profiler(interval=0.001, async_mode="disabled")
    out = Path(os.environ[PROFILE_ENV])

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_PROFILE_PATH):
            await inner(scope, receive, send)
            return
        if scope["path"].endswith("/start"):
            profiler.start()
        else:
            profiler.stop()
            out.write_text(profiler.output_text(show_all=False))
            out.with_suffix(".flat").write_text(profiler.output_text(flat=True))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return wrapper


def start_profile(base: str) -> None:
    httpx.get(base + _PROFILE_PATH + "start", timeout=10).raise_for_status()


def stop_profile(base: str) -> None:
    httpx.get(base + _PROFILE_PATH + "stop", timeout=60).raise_for_status()
