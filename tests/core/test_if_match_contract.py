"""Every PATCH and DELETE of a versioned record takes `If-Match` and documents its 412 (no lost update anywhere).
Per-route behaviour is tested with each domain; this catches a route added without it."""

from tests.test_tenant_isolation import api_paths

# Not versioned edits: revoking a key and leaving a share are the same whatever was read before.
WITHOUT_VERSION = {("DELETE", "/api/v1/api-keys/{key_id}"), ("DELETE", "/api/v1/shares/{share_id}")}


def test_every_patch_and_delete_takes_if_match_and_documents_412() -> None:
    missing = []
    for path, item in api_paths().items():
        for method, operation in item.items():
            if method.upper() not in ("PATCH", "DELETE", "PUT") or (method.upper(), path) in WITHOUT_VERSION:
                continue
            headers = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}
            if "if-match" not in headers or "412" not in operation["responses"]:
                missing.append(f"{method.upper()} {path}")
    assert missing == []


def test_the_exceptions_still_exist() -> None:
    paths = api_paths()
    assert all(method.lower() in paths.get(path, {}) for method, path in WITHOUT_VERSION)
