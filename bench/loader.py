"""A bounded HTTP loader on loopback: a fixed number of connections, each sending its next request as soon as the
previous answer is read (a closed loop: the load never exceeds what the server can answer, so latencies are the
server's, not a queue the loader built).

aiohttp rather than httpx: on two cores the loader shares the CPU with the server and PostgreSQL, and aiohttp's
client costs a fraction of httpx's per request, so more of the machine goes to what is measured."""

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with its query string
    headers: dict[str, str]
    json: Any = None
    label: str = ""


@dataclass
class Sample:
    label: str
    at: float  # seconds since the run started, when the request was sent
    seconds: float
    status: int  # 0: no HTTP answer (connection error, timeout)
    size: int = 0
    error: str = ""
    body: bytes = field(default=b"", repr=False)  # the answer, when the caller asked to keep it


@dataclass
class Run:
    """What one loader run measured: the samples sent after the warm-up and answered before the end."""

    concurrency: int
    seconds: float  # the measured window
    samples: list[Sample] = field(default_factory=list)

    @property
    def requests_per_second(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> list[Sample]:
        return [s for s in self.samples if not 200 <= s.status < 300]

    def statuses(self) -> Counter[int]:
        return Counter(s.status for s in self.samples)

    def latencies_ms(self, label: str | None = None) -> list[float]:
        return [s.seconds * 1000 for s in self.samples if label is None or s.label == label]


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0 to 100), linear between the nearest ranks; NaN without values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(values_ms),
        "p50": percentile(values_ms, 50),
        "p95": percentile(values_ms, 95),
        "p99": percentile(values_ms, 99),
        "mean": statistics.fmean(values_ms) if values_ms else float("nan"),
    }


def session(concurrency: int, timeout: float = 30.0) -> aiohttp.ClientSession:
    """One keep-alive connection per concurrent sender, opened on first use and kept for the run."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, enable_cleanup_closed=True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))


async def send(
    http: aiohttp.ClientSession, base: str, request: Request, started: float, *, keep_body: bool = False
) -> Sample:
    """Send one request and read its whole answer; failures are samples too (status 0), never exceptions.
    `keep_body`: the answer goes on the sample (a client that reads what it was sent: a sync cursor, an error)."""
    sent = time.perf_counter()
    try:
        async with http.request(request.method, base + request.path, headers=request.headers, json=request.json) as r:
            body = await r.read()
            seconds = time.perf_counter() - sent
            return Sample(request.label, sent - started, seconds, r.status, len(body), body=body if keep_body else b"")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Sample(request.label, sent - started, time.perf_counter() - sent, 0, 0, f"{type(exc).__name__}: {exc}")


async def closed_loop(
    base: str,
    next_request: Callable[[int], Request],
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
    min_samples: int = 0,
    max_seconds: float | None = None,
) -> Run:
    """`concurrency` senders, each asking `next_request(sender)` for its next request, for `warmup` + `seconds`; the
    samples of the measured window are kept (a request counts when it was sent inside the window).

    Slow requests: with `min_samples`, the window stays open past `seconds` until that many requests sent in it have
    been answered, for at most `max_seconds` in all (a request slower than the window would otherwise leave it
    empty: at 50 connections on a path that takes 200 ms of CPU each, the first answers come after 10 s). `Run.seconds`
    is then the window's actual length."""
    run = Run(concurrency=concurrency, seconds=seconds)
    started = time.perf_counter()
    opened = started + warmup
    end = opened + seconds
    cap = opened + max(seconds, max_seconds or seconds)
    kept: list[Sample] = []
    # When the window may close: `end`, or later once min_samples are in (at `cap` at the latest).
    reached: float | None = opened if min_samples <= 0 else None
    closed: float | None = None
    async with session(concurrency) as http:

        def window_open() -> bool:
            nonlocal closed
            if closed is None:
                now = time.perf_counter()
                if reached is not None and now >= max(end, reached):
                    closed = max(end, reached)
                elif now >= cap:
                    closed = cap
            return closed is None

        async def sender(index: int) -> None:
            nonlocal reached
            while window_open():
                sample = await send(http, base, next_request(index), started)
                if sample.at >= warmup and (closed is None or sample.at < closed - started):
                    kept.append(sample)
                    if reached is None and len(kept) >= min_samples:
                        reached = time.perf_counter()

        await asyncio.gather(*(sender(i) for i in range(concurrency)))
    assert closed is not None
    run.seconds = closed - opened
    run.samples = [s for s in kept if s.at < closed - started]
    return run


async def sign_in(base: str, emails: list[str], password: str) -> dict[str, dict[str, str]]:
    """Each user signs in through the API, as the app does (two at a time: Argon2 is meant to be slow); returns the
    headers of each one's requests."""
    gate = asyncio.Semaphore(2)
    async with session(2) as http:

        async def one(email: str) -> tuple[str, dict[str, str]]:
            async with gate, http.post(f"{base}/api/v1/auth/login", json={"email": email, "password": password}) as r:
                r.raise_for_status()
                token = (await r.json())["access_token"]
            return email, {"Authorization": f"Bearer {token}"}

        return dict(await asyncio.gather(*(one(e) for e in emails)))
