"""Security headers on every response (the app, the API and its errors), the interactive docs with a policy of their
own, and the CORS allow-list.

**The app's policy** allows what the built app loads and nothing else: its own scripts, styles, icons, manifest and
service worker, and fetches to its own API (the event stream included: it is a fetch). No inline script, no
`eval`, no plugin, no framing by another site. One exception, by hash: the inline stylesheets of the API's own HTML
pages (`api/*/templates/*.html`, the printable diagnosis), because the app prints them from an `<iframe srcdoc>`,
which inherits the app's policy. The same policy goes on API answers, where it changes nothing for JSON and keeps
an HTML answer (an error page, the printable page) from running or loading anything else.

**The docs** (Swagger UI, FastAPI's page) load their script and stylesheet from jsDelivr and start with an inline
script: their page carries its own policy, with the CDN pinned to the swagger-ui-dist path FastAPI uses and the
inline script allowed by its hash. Swagger UI sets inline styles as it renders, so styles stay open on that page
only.
"""

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SELF, NONE = "'self'", "'none'"
API_DIR = Path(__file__).resolve().parents[1]
SWAGGER_CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"
SWAGGER_FAVICON = "https://fastapi.tiangolo.com/img/favicon.png"

# What an API client reads and sends across origins (docs/rate-limits.md, DESIGN §6).
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "If-Match", "Accept-Language")
CORS_RESPONSE_HEADERS = (
    "ETag",
    "Location",
    "Retry-After",
    "Idempotent-Replayed",
    "Content-Disposition",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
)
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def inline_hashes(html: str, tag: str) -> list[str]:
    """CSP sources allowing the inline `<tag>` elements (without attributes) of a page, by their SHA-256."""
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in found]


def policy(directives: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def app_policy() -> str:
    pages = API_DIR.glob("*/templates/*.html")
    styles = sorted({h for page in pages for h in inline_hashes(page.read_text(), "style")})
    return policy(
        {
            "default-src": [SELF],
            "script-src": [SELF],
            "style-src": [SELF, *styles],
            "img-src": [SELF],
            "font-src": [SELF],
            "connect-src": [SELF],
            "worker-src": [SELF],
            "manifest-src": [SELF],
            "object-src": [NONE],
            "base-uri": [NONE],
            "form-action": [SELF],
            "frame-ancestors": [NONE],
        }
    )


def _docs_policy(page: str) -> str:
    return policy(
        {
            "default-src": [NONE],
            "script-src": [SWAGGER_CDN, *inline_hashes(page, "script")],
            "style-src": [SWAGGER_CDN, "'unsafe-inline'"],
            # Swagger UI draws its icons from data: URLs.
            "img-src": [SELF, "data:", SWAGGER_FAVICON],
            "connect-src": [SELF],
            "base-uri": [NONE],
            "form-action": [SELF],
            "frame-ancestors": [NONE],
        }
    )


def install_docs(app: FastAPI, path: str = "/docs") -> None:
    """Swagger UI at `path` (FastAPI's page, built once) with its own policy."""
    assert app.openapi_url is not None
    body = bytes(get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI").body)
    headers = {"Content-Security-Policy": _docs_policy(body.decode())}

    @app.get(path, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(body, headers=headers)


def security_headers(hsts_seconds: int) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": app_policy(),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # frame-ancestors, for browsers that predate it
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), browsing-topics=()",
    }
    if hsts_seconds:
        # Only behind HTTPS (FIELDBOOK_HSTS_SECONDS): browsers would refuse plain HTTP to the host for that long.
        headers["Strict-Transport-Security"] = f"max-age={hsts_seconds}; includeSubDomains"
    return headers


class SecurityHeaders:
    """Adds `headers` to every HTTP response that does not set its own (the docs' policy, a download's nosniff)."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                # A new list: whoever sent the message (the idempotency middleware) may keep its own.
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
