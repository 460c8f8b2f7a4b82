"""CI's dependency audit (`.ci/audit.py`): a known vulnerability fails it, a clean report passes, and an advisory
service that answered nothing is said loudly (NOT AUDITED) without failing it."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "audit.py"


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_audit", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pip(*vulns: str) -> dict[str, object]:
    vulnerabilities = [{"id": v, "fix_versions": ["2.0"]} for v in vulns]
    return {"dependencies": [{"name": "jinja2", "version": "1.0", "vulns": vulnerabilities}]}


def _npm(total: int) -> dict[str, object]:
    found = {"preact": {"severity": "high", "range": "<11"}} if total else {}
    return {
        "vulnerabilities": found,
        "metadata": {"vulnerabilities": {"total": total}, "dependencies": {"prod": 9}},
    }


def test_a_known_python_vulnerability_fails_and_is_named(audit: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert audit.pip_audit_clean(_pip("GHSA-1234")) is False
    assert "jinja2 1.0: GHSA-1234 (fixed in 2.0)" in capsys.readouterr().out
    assert audit.pip_audit_clean(_pip()) is True


def test_a_known_npm_vulnerability_fails_and_is_named(audit: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert audit.npm_audit_clean(_npm(1)) is False
    assert "preact: high" in capsys.readouterr().out
    assert audit.npm_audit_clean(_npm(0)) is True


def test_an_advisory_service_that_answers_nothing_is_said_not_to_fail(
    audit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    skipped = {"dependencies": [{"name": "jinja2", "skip_reason": "Dependency not found on PyPI"}]}
    assert audit.pip_audit_clean(skipped) is True
    assert audit.npm_audit_clean({"message": "405 Method Not Allowed"}) is True
    out = capsys.readouterr().out
    assert "pip-audit: NOT AUDITED" in out and "npm audit: NOT AUDITED: 405 Method Not Allowed" in out
