"""Lists read by someone who sees a sliver of the organisation (a rep hired today): each page reads a bounded number
of records, so a page may come back short, even empty, with a cursor; paging on still yields every record the
viewer may see, once, in order, and nothing else."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.sharing import visibility
from tests.factories import (
    make_activity,
    make_company,
    make_contact,
    make_deal,
    make_team,
    make_tenant,
    make_user,
    share_with,
    sign_in,
)
from tests.feed.crm import ACTIVITIES, API, DEALS, ok, pages

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("path", "label"),
    [(f"{API}/companies", "name"), (f"{API}/contacts", "name"), (DEALS, "title"), (ACTIVITIES, "subject")],
)
async def test_a_list_read_by_someone_who_sees_little_pages_through_everything_they_see(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, path: str, label: str
) -> None:
    monkeypatch.setattr(visibility, "SCAN_WINDOW", 3)
    tenant = await make_tenant(session, client)
    # In another team: the rep's manager does not see the colleague's records either.
    colleague = await make_user(session, tenant.org, role=Role.rep, team=await make_team(session, tenant.org, name="B"))
    manager = await make_user(session, tenant.org, role=Role.manager, team=tenant.team)
    expected = []
    for index in range(16):
        # One record in four is the rep's; the rest are a colleague's, whom the rep does not see.
        owner = tenant.rep if index % 4 == 0 else colleague
        name = f"{index:02d}"
        if path.endswith("companies"):
            await make_company(session, owner, name=name)
        elif path.endswith("contacts"):
            await make_contact(session, owner, name=name)
        elif path == DEALS:
            await make_deal(session, owner, title=name)
        else:
            await make_activity(session, owner, kind="note", subject=name)
        if owner is tenant.rep:
            expected.append(name)
    # A rep's own deals are gathered through the indexes (full pages, below); their manager's are probed.
    rep = await sign_in(client, manager if path == DEALS else tenant.rep)

    seen = [item[label] for item in await pages(client, rep, path, limit=2, short=True)]
    # Clients come by name; deals and activities newest first.
    assert seen == (expected if label == "name" else expected[::-1])
    first = ok(await client.get(path, params={"limit": 2}, headers=rep))
    assert len(first["items"]) < 2 and first["next_cursor"] is not None
    # An admin sees everything, so nothing is filtered out and pages are never cut short.
    assert len(ok(await client.get(path, params={"limit": 10}, headers=tenant.headers))["items"]) == 10


async def test_a_rep_s_deals_come_in_full_pages_however_few_of_the_organisation_s_they_see(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(visibility, "SCAN_WINDOW", 3)
    tenant = await make_tenant(session, client)
    colleague = await make_user(session, tenant.org, role=Role.rep, team=tenant.team)
    mine = []
    for index in range(16):
        owner = tenant.rep if index % 4 == 0 else colleague
        deal = await make_deal(session, owner, title=f"{index:02d}")
        if owner is tenant.rep:
            mine.append(deal.title)
    shared = await make_deal(session, colleague, title="Shared")
    await share_with(session, colleague, "deal", shared.id, tenant.rep)
    rep = await sign_in(client, tenant.rep)
    first = ok(await client.get(DEALS, params={"limit": 2}, headers=rep))
    assert [d["title"] for d in first["items"]] == ["Shared", mine[-1]] and first["next_cursor"]
    seen = [item["title"] for item in await pages(client, rep, DEALS, limit=2, short=False)]
    assert seen == ["Shared", *mine[::-1]]
