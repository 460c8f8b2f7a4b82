"""A real HTTP receiver on 127.0.0.1 for webhook tests: it records every request and answers as scripted."""

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each request with the next of `script` (then `then`): an int status, ("sleep", seconds),
    ("redirect", url), ("body", bytes) for a 200 with that body, or ("hang", threading.Event) to wait until the
    event is set."""

    script: list[Any] = field(default_factory=list)
    then: Any = 200
    received: list[Received] = field(default_factory=list)
    url: str = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender died before its body arrived (a killed worker): nothing was delivered
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.received.append(Received({k.decode(): v.decode() for k, v in scope["headers"]}, body))
        answer = self.script.pop(0) if self.script else self.then
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"text/plain")]
        status = 200
        body_out = b""
        if isinstance(answer, int):
            status = answer
        elif answer[0] == "sleep":
            await asyncio.sleep(answer[1])
        elif answer[0] == "hang":
            while not answer[1].is_set():
                await asyncio.sleep(0.01)
        elif answer[0] == "redirect":
            status = 307
            headers.append((b"location", answer[1].encode()))
        elif answer[0] == "body":
            body_out = answer[1]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body_out or f"answer {status}".encode()})

    def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"the receiver got {len(self.received)} request(s), not {count}"
            time.sleep(0.01)


def reserve_port() -> socket.socket:
    """A bound socket that does not listen yet: connecting to it is refused until the receiver starts on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def serve(receiver: Receiver, sock: socket.socket | None = None) -> Iterator[Receiver]:
    sock = sock or reserve_port()
    receiver.url = receiver.url or f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    server = uvicorn.Server(uvicorn.Config(receiver, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the receiver did not start"
            time.sleep(0.01)
        yield receiver
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
