"""Lists read by someone who sees a sliver of the organisation (a rep hired today): each page reads a bounded number
of records, so a page may come back short, even empty, with a cursor; paging on still yields every record the
viewer may see, once, in order, and nothing else."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.sharing import visibility
from tests.factories import make_activity, make_company, make_contact, make_deal, make_tenant, make_user, sign_in
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
    colleague = await make_user(session, tenant.org, role=Role.rep, team=tenant.team)
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
    rep = await sign_in(client, tenant.rep)

    seen = [item[label] for item in await pages(client, rep, path, limit=2, short=True)]
    # Clients come by name; deals and activities newest first.
    assert seen == (expected if label == "name" else expected[::-1])
    first = ok(await client.get(path, params={"limit": 2}, headers=rep))
    assert len(first["items"]) < 2 and first["next_cursor"] is not None
    # An admin sees everything, so nothing is filtered out and pages are never cut short.
    assert len(ok(await client.get(path, params={"limit": 10}, headers=tenant.headers))["items"]) == 10
