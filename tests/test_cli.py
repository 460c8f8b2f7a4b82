"""The `fieldbook` command on a fresh SQLite file: migrate, demo (twice), create a user, then sign in."""

import asyncio

import httpx
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from api.auth.models import Role
from api.cli import app
from api.core.db import Database, make_engine
from api.demo import ADMIN_EMAIL, DEMO_PASSWORD, PEOPLE
from api.main import create_app
from api.settings import DEV_SECRET_KEY, Settings, get_settings

runner = CliRunner()


@pytest.fixture
def fresh_db(tmp_path, monkeypatch):
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FIELDBOOK_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


async def _login_status(url: str, email: str, password: str) -> int:
    engine = make_engine(url, null_pool=True)
    try:
        transport = httpx.ASGITransport(app=create_app(database=Database(engine)))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
            return response.status_code
    finally:
        await engine.dispose()


def test_migrate_demo_and_sign_in(fresh_db):
    # Scaled down to stay quick; tests/test_demo.py checks the demo itself (and, on demand, the full size).
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    first = runner.invoke(app, ["demo", "--scale", "0.05"])
    second = runner.invoke(app, ["demo", "--scale", "0.05"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert ADMIN_EMAIL in first.stdout and DEMO_PASSWORD in first.stdout
    # Progress goes to stderr, phase by phase; the second run finds the organisation and writes nothing.
    assert "Writing activities" in first.stderr and "Writing activities" not in second.stderr
    assert first.stdout == second.stdout
    assert asyncio.run(_login_status(fresh_db, ADMIN_EMAIL, DEMO_PASSWORD)) == 200
    rep = next(p for p in PEOPLE if p.role is Role.rep)
    assert asyncio.run(_login_status(fresh_db, rep.email, DEMO_PASSWORD)) == 200


def test_user_create_makes_an_organisation_and_an_admin_who_can_sign_in(fresh_db):
    runner.invoke(app, ["migrate"])
    args = ["user", "create", "--email", "Owner@Example.com", "--name", "Owner", "--org", "Ventas Rápidas"]
    result = runner.invoke(app, args, input="a-long-password\na-long-password\n")
    assert result.exit_code == 0, result.output
    assert "Created admin owner@example.com in Ventas Rápidas" in result.output
    again = runner.invoke(app, args, input="a-long-password\na-long-password\n")
    assert again.exit_code == 1 and "already exists" in again.output
    assert asyncio.run(_login_status(fresh_db, "owner@example.com", "a-long-password")) == 200


@pytest.mark.parametrize(
    ("password", "reason"), [("short", "at least 10 characters"), ("Contraseña2024!", "most common passwords")]
)
def test_user_create_refuses_a_weak_password(fresh_db, password, reason):
    runner.invoke(app, ["migrate"])
    args = ["user", "create", "--email", "x@example.com", "--name", "X", "--org", "Acme"]
    result = runner.invoke(app, args, input=f"{password}\n{password}\n")
    assert result.exit_code == 1 and "password" in result.output and reason in result.output


def test_outside_development_the_default_secret_is_refused(monkeypatch):
    with pytest.raises(ValidationError, match="FIELDBOOK_SECRET_KEY"):
        Settings(env="production", secret_key=DEV_SECRET_KEY)
    with pytest.raises(ValidationError, match="FIELDBOOK_SECRET_KEY"):
        Settings(env="production", secret_key="too-short")
    assert Settings(env="production", secret_key="x" * 40).env == "production"
    assert Settings(env="development", secret_key=DEV_SECRET_KEY).env == "development"

    monkeypatch.setenv("FIELDBOOK_ENV", "production")
    monkeypatch.setenv("FIELDBOOK_SECRET_KEY", DEV_SECRET_KEY)
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["serve"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "FIELDBOOK_SECRET_KEY" in result.output
