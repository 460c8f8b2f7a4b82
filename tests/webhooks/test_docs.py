"""The verification snippets of docs/webhooks.md, run against real signed deliveries (both secrets of a rotation,
a tampered body, a wrong secret)."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.factories import Tenant
from tests.webhooks.conftest import Hooks
from tests.webhooks.receiver import Receiver, serve

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def snippet(language: str) -> str:
    found = re.search(rf"<!-- snippet: {language} -->\n```{language}\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"docs/webhooks.md has no {language} snippet"
    return found.group(1)


async def signed_deliveries(hooks: Hooks, tenant: Tenant) -> tuple[list[str], dict[str, str], bytes]:
    """One delivery signed by two secrets (a rotation's overlap): both secrets, its headers and body."""
    with serve(Receiver()) as receiver:
        endpoint = await hooks.create(tenant, receiver.url, ["company.*"])
        rotated = await hooks.client.post(
            f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", json={}, headers=tenant.headers
        )
        await hooks.company(tenant, "Panadería Sol")
        while await hooks.round():
            pass
    [request] = receiver.received
    return [endpoint["secret"], rotated.json()["secret"]], request.headers, request.body


def cases(secrets: list[str], body: bytes) -> list[tuple[str, bytes, bool]]:
    tampered = body.replace("Panadería".encode(), b"Panaderia")
    wrong = "whsec_" + "A" * 43 + "="
    return [(secrets[0], body, True), (secrets[1], body, True), (secrets[1], tampered, False), (wrong, body, False)]


async def test_the_python_snippet_verifies_a_real_delivery(hooks: Hooks, tenant: Tenant) -> None:
    secrets, headers, body = await signed_deliveries(hooks, tenant)
    scope: dict[str, Any] = {}
    exec(snippet("python"), scope)
    for secret, sent, valid in cases(secrets, body):
        assert scope["verify"](secret, headers, sent) is valid
    stale = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 600)}
    assert scope["verify"](secrets[0], stale, body) is False


async def test_the_javascript_snippet_verifies_a_real_delivery(hooks: Hooks, tenant: Tenant, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    secrets, headers, body = await signed_deliveries(hooks, tenant)
    checks = [{"secret": secret, "body": list(sent), "valid": valid} for secret, sent, valid in cases(secrets, body)]
    script = tmp_path / "verify.js"
    script.write_text(
        snippet("javascript")
        + f"\nconst headers = {json.dumps(headers)};\n"
        + f"for (const c of {json.dumps(checks)}) {{\n"
        + "  const got = verify(c.secret, headers, Buffer.from(c.body));\n"
        + "  if (got !== c.valid) { console.error(`expected ${c.valid} for ${c.secret}`); process.exit(1); }\n"
        + "}\n"
    )
    result = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
