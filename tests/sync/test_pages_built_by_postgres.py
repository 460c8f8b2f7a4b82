"""On PostgreSQL, pull pages are JSON written by the database: every kind must read exactly as the API's read
schemas write it (the same fields, timestamps in the same form, computed flags computed alike)."""

import json
from datetime import timedelta

import httpx
import pytest
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
    # A page of every kind at once, and of each kind alone: the statements are built per combination.
    wanted = {entity: ",".join(ids) for entity, ids in members.items() if ids}
    for kinds in [tuple(wanted), *((entity,) for entity in wanted)]:
        asked = {entity: wanted[entity] for entity in kinds}
        by_postgres = await working_set._built_by_postgres(session, viewer.org_id, asked, now)
        by_python = await working_set._built_by_python(session, viewer.org_id, asked, now)
        assert list(by_postgres) == list(by_python) == list(kinds)
        for entity in kinds:
            pg, py = (sorted(json.loads(found[entity]), key=lambda r: r["id"]) for found in (by_postgres, by_python))
            assert pg == py, entity
            assert {r["id"]: r["version"] for r in pg} == members[entity], entity
