"""On PostgreSQL, pull pages are JSON written by the database: every kind must read exactly as the API's read
schemas write it (the same fields, timestamps in the same form, computed flags computed alike)."""

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.types import utcnow
from api.sync import working_set
from tests.factories import make_activity, make_company, make_contact, make_deal, make_tenant, viewer_of_user

pytestmark = pytest.mark.asyncio


async def test_every_kind_reads_as_its_schema_writes_it(
    session: AsyncSession, client: httpx.AsyncClient, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL builds its pages itself; SQLite pages are the schemas' own output")
    tenant = await make_tenant(session, client)
    rep = tenant.rep
    company = await make_company(session, rep, name='Núñez "Taller" \\ 1', tags=["vip", "norte"], custom={})
    await make_contact(session, rep, name="Ana", company_id=company.id, emails=["ana@example.com"])
    await make_deal(session, rep, title="Fleet", company_id=company.id, amount_minor=12345)
    await make_activity(session, rep, kind="task", subject="Overdue", due_at=utcnow() - timedelta(days=2))
    whole_second = utcnow().replace(microsecond=0) - timedelta(days=1)
    await make_activity(session, rep, kind="call", outcome="connected", done_at=whole_second)
    viewer = await viewer_of_user(session, rep)
    now = utcnow()
    members = await working_set.members(session, viewer, working_set.window_start(now))
    assert all(members[kind] for kind in ("user", "team", "stage", "company", "contact", "deal", "activity"))
    for synced in working_set.SYNCED:
        ids = list(members[synced.entity])
        table: Any = sa.inspect(synced.model).local_table
        where = [table.c.org_id == viewer.org_id, table.c.deleted_at.is_(None), table.c.id.in_(ids)]
        by_postgres, pg_versions = await working_set._built_by_postgres(session, synced, table, where, now)
        by_python, py_versions = await working_set._built_by_python(session, synced, table, where, now)
        assert sorted(json.loads(by_postgres), key=lambda r: r["id"]) == sorted(
            json.loads(by_python), key=lambda r: r["id"]
        ), synced.entity
        assert sorted(pg_versions) == sorted(py_versions)
