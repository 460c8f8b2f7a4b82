"""Request body size cap, answered as problem+json.

FastAPI's own `max_body_size` answers a declared over-size Content-Length in plain text, outside the app's error
handlers; this middleware answers both cases (declared and streamed) as RFC 9457 problems.
"""

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core.errors import problem

_DETAIL = "The request body is larger than {limit} bytes."


class BodySizeLimit:
    """`uploads`: paths whose POST bodies (file uploads) may be larger, with their own limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, uploads: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = uploads or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if scope["method"] == "POST":
            limit = self.uploads.get(scope["path"].rstrip("/"), limit)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
            response = problem(413, "Payload too large", slug="payload-too-large", detail=_DETAIL.format(limit=limit))
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised while the route reads its body: the app's handler turns it into a 413 problem.
                    raise HTTPException(413, _DETAIL.format(limit=limit))
            return message

        await self.app(scope, counting_receive, send)
