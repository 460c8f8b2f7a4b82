"""The installable app (pwa/dist) served at `/`, next to the API, with the caching rules a service worker needs."""

from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.responses import FileResponse

# Vite names built assets by content hash, so a browser may keep them for good; everything else must be
# revalidated: a stale sw.js or manifest would pin users to an old version of the app.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


class AppPath(PathConvertor):
    """Any path but the API's, so unknown API paths keep their 404 and wrong methods their 405."""

    regex = r"(?!api/|docs|healthz|readyz).*"


register_url_convertor("app_path", AppPath())


def install_app(app: FastAPI, root: Path) -> None:
    """Serve the built app when there is one; the API alone otherwise (e.g. before `npm run build`)."""
    index = root / "index.html"
    if not index.is_file():
        return
    root = root.resolve()
    router = APIRouter(include_in_schema=False)

    @router.get("/{path:app_path}")
    async def app_file(path: str) -> FileResponse:
        file = (root / path).resolve()
        if path and file.is_file() and file.is_relative_to(root):
            immutable = file.parent.name == "assets"
            return FileResponse(file, headers={"cache-control": IMMUTABLE if immutable else REVALIDATE})
        # Client-side routes (/clients/…, /deals/…) all start from the app shell.
        return FileResponse(index, headers={"cache-control": REVALIDATE})

    app.include_router(router)
