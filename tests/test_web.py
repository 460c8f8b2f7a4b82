"""The app served next to the API: files with the right caching, client-side routes falling back to the shell, the
API's own answers untouched; and the app's API types current with the OpenAPI document."""

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from api.settings import Settings
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A stand-in build output: the serving rules do not depend on what the files hold."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<div id="app"></div>')
    (tmp_path / "sw.js").write_text("self.skipWaiting()")
    (tmp_path / "manifest.webmanifest").write_text('{"name": "Fieldbook"}')
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("not served")
    return tmp_path


async def _client(pwa_dir: Path) -> httpx.AsyncClient:
    app = create_app(Settings(pwa_dir=pwa_dir))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_files_routes_and_caching(built: Path) -> None:
    async with await _client(built) as http:
        shell = await http.get("/")
        assert shell.text == '<div id="app"></div>' and shell.headers["cache-control"] == "no-cache"
        for path in ("/clients/company/0193", "/deals/x/story", "/sync"):
            routed = await http.get(path)
            assert routed.text == shell.text and routed.headers["cache-control"] == "no-cache", path
        worker = await http.get("/sw.js")
        assert worker.headers["cache-control"] == "no-cache" and "javascript" in worker.headers["content-type"]
        manifest = await http.get("/manifest.webmanifest")
        assert manifest.headers["content-type"] == "application/manifest+json"
        assert manifest.headers["cache-control"] == "no-cache"
        asset = await http.get("/assets/index-abc123.js")
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        # Outside the build directory nothing is served, however the path is spelled.
        for escape in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
            assert "not served" not in (await http.get(escape)).text, escape


async def test_the_api_keeps_its_own_answers(built: Path) -> None:
    async with await _client(built) as http:
        missing = await http.get("/api/v1/no-such-thing")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert (await http.delete("/api/v1/me")).status_code == 405
        assert (await http.post("/api/v1/no-such-thing")).status_code == 404
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert "/{path}" not in json.dumps((await http.get("/api/v1/openapi.json")).json()["paths"])


async def test_without_a_build_only_the_api_is_served(tmp_path: Path) -> None:
    async with await _client(tmp_path / "missing") as http:
        assert (await http.get("/")).status_code == 404
        assert (await http.get("/healthz")).status_code == 200


def test_the_app_s_api_types_match_the_openapi_document(tmp_path: Path) -> None:
    generator = ROOT / "pwa" / "node_modules" / ".bin" / "openapi-typescript"
    if not (shutil.which("node") and generator.exists()):
        reason = "Node.js or the app's packages are missing (make pwa)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(create_app().openapi(), indent=1, sort_keys=True))
    fresh = tmp_path / "schema.d.ts"
    subprocess.run([str(generator), str(document), "-o", str(fresh)], check=True, capture_output=True, timeout=120)
    committed = ROOT / "pwa" / "src" / "api" / "schema.d.ts"
    assert fresh.read_text() == committed.read_text(), "the app's API types are stale: run `make api-types`"
