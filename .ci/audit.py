"""Known vulnerabilities in what we ship: the Python packages installed in the virtualenv (pip-audit, PyPI's
advisories) and the app's runtime npm packages (`npm audit --omit=dev`, the registry's advisories; the build tools
never reach a user).

Fails on any known vulnerability. An advisory service that cannot be reached (a registry mirror without the advisory
endpoints, no network) is reported loudly as NOT AUDITED rather than failing the build: the lockfiles are still
checked the next time the service answers, and a red CI would only block fixes.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT = ROOT / ".venv" / "bin" / "pip-audit"


def python_packages() -> bool:
    run = subprocess.run(
        [str(PIP_AUDIT), "--skip-editable", "--progress-spinner", "off", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit: NOT AUDITED ({run.stderr.strip().splitlines()[-1:]})")
        return True
    return pip_audit_clean(report)


def pip_audit_clean(report: dict[str, Any]) -> bool:
    """Whether pip-audit's JSON report shows no known vulnerability (or could audit nothing), saying which."""
    dependencies = report["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    vulnerable = [d for d in audited if d["vulns"]]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln["fix_versions"]) or "no fix yet"
            print(f"pip-audit: {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixed})")
    if not audited:
        print(f"pip-audit: NOT AUDITED: PyPI's advisories did not answer for any of {len(dependencies)} packages")
        return True
    print(f"pip-audit: {len(audited)} packages audited, {len(vulnerable)} vulnerable")
    return not vulnerable


def npm_packages() -> bool:
    run = subprocess.run(
        ["npm", "audit", "--omit=dev", "--json"], cwd=ROOT / "pwa", capture_output=True, text=True, check=False
    )
    return npm_audit_clean(json.loads(run.stdout or "{}"), run.stderr)


def npm_audit_clean(report: dict[str, Any], stderr: str = "") -> bool:
    """Whether `npm audit --json`'s report shows no known vulnerability (or could audit nothing), saying which."""
    if "vulnerabilities" not in report:
        reason = report.get("message") or stderr.strip() or "no report"
        print(f"npm audit: NOT AUDITED: {reason}")
        return True
    found = report["metadata"]["vulnerabilities"]
    for name, vulnerability in report["vulnerabilities"].items():
        print(f"npm audit: {name}: {vulnerability['severity']} ({vulnerability['range']})")
    print(
        f"npm audit: {report['metadata']['dependencies']['prod']} runtime packages audited, {found['total']} vulnerable"
    )
    return found["total"] == 0


if __name__ == "__main__":
    clean = [python_packages(), npm_packages()]
    sys.exit(0 if all(clean) else 1)
