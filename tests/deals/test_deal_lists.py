"""Reading many deals over HTTP: list filters with keyset paging, the board, rotten deals, and pipelines or stages
that cannot be deleted while they hold deals."""

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth.models import Role
from api.core.pagination import Page
from api.core.types import utcnow
from api.deals.deals import DealFilters, list_deals
from api.deals.models import Deal, DealStatus
from api.deals.schemas import DealRead
from tests.factories import (
    make_company,
    make_contact,
    make_deal,
    make_tenant,
    make_user,
    share_with,
    sign_in,
    viewer_of_user,
)
from tests.feed.crm import (
    ACTIVITIES,
    API,
    DEALS,
    PIPELINES,
    STAGES,
    Headers,
    Json,
    default_pipeline,
    ok,
    pages,
    refused,
    stage,
)

pytestmark = pytest.mark.asyncio


async def _ids(client: httpx.AsyncClient, headers: Headers, **params: Any) -> list[str]:
    return [d["id"] for d in await pages(client, headers, DEALS, limit=4, **params)]


async def test_list_filters_page_through_many_deals(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    pipeline = await default_pipeline(client, rep)
    other = ok(
        await client.post(PIPELINES, json={"name": "Renewals", "stages": [{"name": "Call"}]}, headers=tenant.headers),
        201,
    )
    reason = ok(await client.get(f"{API}/lost-reasons", headers=rep))["items"][0]["id"]
    company = await make_company(session, tenant.rep, name="Transportes Núñez")
    contact = await make_contact(session, tenant.rep, name="Lucía")
    open_stages = [s["id"] for s in pipeline["stages"] if s["kind"] == "open"]
    for i in range(26):
        fields: dict[str, Any] = {
            "title": f"{'José' if i % 5 == 2 else 'Ana'} deal {i:02d}",
            "expected_close_on": date(2027, 1, 1) + timedelta(days=i),
        }
        if i % 3 == 0:
            fields["company_id"] = company.id
        if i % 4 == 0:
            fields["contact_id"] = contact.id
        if i % 5 == 0:
            fields["pipeline_id"] = uuid.UUID(other["id"])
        else:
            fields["stage_id"] = uuid.UUID(open_stages[i % len(open_stages)])
        deal = await make_deal(session, tenant.rep, **fields)
        if i % 7 == 1:
            ok(await client.post(f"{DEALS}/{deal.id}/win", headers=rep))
        elif i % 6 == 1:
            ok(await client.post(f"{DEALS}/{deal.id}/lose", json={"lost_reason_id": reason}, headers=rep))
    for i in range(4):
        await make_deal(session, colleague, title=f"Jose colleague {i}", expected_close_on=date(2027, 1, 5))
    binned = await make_deal(session, tenant.rep, title="Binned José")
    ok(await client.delete(f"{DEALS}/{binned.id}", headers=rep), 204)

    everything = await pages(client, tenant.headers, DEALS, limit=200)
    assert len(everything) == 30
    # Newest first: ids are time-ordered.
    assert [d["id"] for d in everything] == sorted((d["id"] for d in everything), reverse=True)
    assert await _ids(client, tenant.headers) == [d["id"] for d in everything]

    def expect(keep: Callable[[Json], bool]) -> list[str]:
        return [d["id"] for d in everything if keep(d)]

    rep_id, colleague_id = str(tenant.rep.id), str(colleague.id)
    cases: list[tuple[Headers, dict[str, Any], Callable[[Json], bool]]] = [
        (rep, {}, lambda d: d["owner_id"] == rep_id),
        (rep, {"owner_id": "me"}, lambda d: d["owner_id"] == rep_id),
        (tenant.headers, {"owner_id": colleague_id}, lambda d: d["owner_id"] == colleague_id),
        (tenant.headers, {"pipeline_id": other["id"]}, lambda d: d["pipeline_id"] == other["id"]),
        (tenant.headers, {"stage_id": open_stages[1]}, lambda d: d["stage_id"] == open_stages[1]),
        (tenant.headers, {"status": "won"}, lambda d: d["status"] == "won"),
        (tenant.headers, {"status": "lost"}, lambda d: d["status"] == "lost"),
        (tenant.headers, {"status": "open"}, lambda d: d["status"] == "open"),
        (rep, {"company_id": str(company.id)}, lambda d: d["company_id"] == str(company.id)),
        (rep, {"contact_id": str(contact.id)}, lambda d: d["contact_id"] == str(contact.id)),
        (
            tenant.headers,
            {"close_from": "2027-01-05", "close_to": "2027-01-14"},
            lambda d: "2027-01-05" <= d["expected_close_on"] <= "2027-01-14",
        ),
        (tenant.headers, {"close_to": "2027-01-03"}, lambda d: d["expected_close_on"] <= "2027-01-03"),
        # Accents and case are ignored.
        (tenant.headers, {"q": "JOSE"}, lambda d: "jos" in d["title"].lower()),
        (rep, {"q": "josé", "owner_id": "me"}, lambda d: "José" in d["title"] and d["owner_id"] == rep_id),
        (
            tenant.headers,
            {"status": "open", "pipeline_id": pipeline["id"], "close_to": "2027-01-20"},
            lambda d: (
                d["status"] == "open" and d["pipeline_id"] == pipeline["id"] and d["expected_close_on"] <= "2027-01-20"
            ),
        ),
    ]
    for headers, params, keep in cases:
        expected = expect(keep)
        assert expected, params
        assert await _ids(client, headers, **params) == expected, params

    refused(await client.get(DEALS, params={"status": "stalled"}, headers=rep), 422)
    refused(await client.get(DEALS, params={"owner_id": "someone"}, headers=rep), 422)
    refused(await client.get(DEALS, params={"limit": 201}, headers=rep), 422)
    # A day is YYYY-MM-DD; a number was once read as a Unix time (1970-01-01).
    refused(await client.get(DEALS, params={"close_to": "0"}, headers=rep), 422)
    refused(await client.get(DEALS, params={"cursor": "garbage"}, headers=rep), 400)
    # A cursor from another list is not this one's.
    activities = ok(await client.get(ACTIVITIES, headers=rep))
    assert activities["next_cursor"] is None
    page = ok(await client.get(DEALS, params={"limit": 1}, headers=rep))
    refused(await client.get(ACTIVITIES, params={"cursor": page["next_cursor"]}, headers=rep), 400)


async def test_the_board_counts_every_deal_the_rep_sees_by_each_route_and_no_other(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    # The board's totals gather the rep's deals as a set (owner, share and company indexes), the list filters row by
    # row: both must agree on every way a deal can be seen.
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    own_company = await make_company(session, tenant.rep, name="Mine")
    own_contact = await make_contact(session, tenant.rep, name="My contact")
    shared_company = await make_company(session, colleague, name="Shared")
    shared_contact = await make_contact(session, colleague, name="Shared contact")
    await share_with(session, colleague, "company", shared_company.id, tenant.rep)
    await share_with(session, colleague, "contact", shared_contact.id, tenant.rep)
    shared_deal = await make_deal(session, colleague, title="Shared deal", amount_minor=1)
    await share_with(session, colleague, "deal", shared_deal.id, tenant.rep)
    await make_deal(session, tenant.rep, title="Own", amount_minor=10)
    # The colleague's deals on the rep's company and contact (deals are filed under the contact's visible company
    # only when the colleague sees it, which they do not).
    await make_deal(session, tenant.admin, title="On my company", company_id=own_company.id, amount_minor=100)
    await make_deal(session, tenant.admin, title="On my contact", contact_id=own_contact.id, amount_minor=1_000)
    await make_deal(session, colleague, title="On a shared company", company_id=shared_company.id, amount_minor=10_000)
    await make_deal(session, colleague, title="On a shared contact", contact_id=shared_contact.id, amount_minor=100_000)
    await make_deal(session, colleague, title="Not mine", amount_minor=1_000_000)

    listed = ok(await client.get(DEALS, params={"limit": 50}, headers=rep))["items"]
    assert len(listed) == 6
    board = ok(await client.get(f"{DEALS}/board", headers=rep))
    assert sum(c["count"] for c in board["stages"]) == 6
    assert sum(sum(c["totals"].values()) for c in board["stages"]) == 111_111


async def test_the_board_counts_and_pages_each_stage(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    pipeline = await default_pipeline(client, rep)
    lead, proposal = uuid.UUID(stage(pipeline, "Lead")), uuid.UUID(stage(pipeline, "Proposal"))
    for amount, currency in ((1000, "EUR"), (2000, "EUR"), (3001, "EUR"), (555, "USD")):
        await make_deal(session, tenant.rep, amount_minor=amount, currency=currency, stage_id=lead)
    for amount in (10_001, 20_000):
        await make_deal(session, tenant.rep, amount_minor=amount, stage_id=proposal)
    won = await make_deal(session, tenant.rep, amount_minor=777, stage_id=proposal)
    ok(await client.post(f"{DEALS}/{won.id}/win", headers=rep))
    await make_deal(session, colleague, amount_minor=1_000_000, stage_id=lead)
    binned = await make_deal(session, tenant.rep, amount_minor=1_000_000, stage_id=lead)
    ok(await client.delete(f"{DEALS}/{binned.id}", headers=rep), 204)

    board = ok(await client.get(f"{DEALS}/board", params={"limit": 3}, headers=rep))
    assert board["pipeline_id"] == pipeline["id"]
    assert [c["stage"]["name"] for c in board["stages"]] == [s["name"] for s in pipeline["stages"]]
    columns = {c["stage"]["name"]: c for c in board["stages"]}
    summary = {name: (c["count"], c["totals"], c["weighted"]) for name, c in columns.items()}
    assert summary == {
        "Lead": (4, {"EUR": 6001, "USD": 555}, {"EUR": 600, "USD": 56}),
        "Qualified": (0, {}, {}),
        "Proposal": (2, {"EUR": 30_001}, {"EUR": 15_001}),
        "Negotiation": (0, {}, {}),
        "Won": (1, {"EUR": 777}, {"EUR": 777}),
        "Lost": (0, {}, {}),
    }
    # Each column shows its newest deals; its cursor goes on in the deal list, filtered by the stage.
    column = columns["Lead"]
    assert len(column["items"]) == 3 and column["next_cursor"] is not None
    assert {d["stage_id"] for d in column["items"]} == {str(lead)}
    rest = ok(
        await client.get(
            DEALS, params={"stage_id": str(lead), "cursor": column["next_cursor"], "limit": 3}, headers=rep
        )
    )
    assert rest["next_cursor"] is None
    shown = [d["id"] for d in column["items"] + rest["items"]]
    assert shown == await _ids(client, rep, stage_id=str(lead))
    assert columns["Proposal"]["next_cursor"] is None and len(columns["Proposal"]["items"]) == 2

    # The admin sees the colleague's deal too; `owner_id=me` narrows it back.
    everyone = {c["stage"]["name"]: c for c in ok(await client.get(f"{DEALS}/board", headers=tenant.headers))["stages"]}
    assert (everyone["Lead"]["count"], everyone["Lead"]["totals"]) == (5, {"EUR": 1_006_001, "USD": 555})
    mine = ok(await client.get(f"{DEALS}/board", params={"owner_id": "me"}, headers=tenant.headers))
    assert sum(c["count"] for c in mine["stages"]) == 0
    refused(await client.get(f"{DEALS}/board", params={"pipeline_id": str(uuid.uuid4())}, headers=rep), 422)


async def _age(session: AsyncSession, deal_id: uuid.UUID | str, days: int, rotten_days: int = 14) -> None:
    """Pretend the deal entered its stage, and last saw activity, `days` ago."""
    past = utcnow() - timedelta(days=days)
    await session.execute(
        sa.update(Deal)
        .where(col(Deal.id) == uuid.UUID(str(deal_id)))
        .values(stage_entered_at=past, last_activity_at=None, rots_at=past + timedelta(days=rotten_days))
        .execution_options(synchronize_session=False)
    )
    await session.commit()


async def _rotten_ids(client: httpx.AsyncClient, headers: Headers, rotten: bool) -> set[str]:
    return {d["id"] for d in await pages(client, headers, DEALS, limit=50, rotten=str(rotten).lower())}


async def test_a_deal_left_alone_goes_rotten_until_something_happens(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    pipeline = await default_pipeline(client, rep)
    lead = next(s for s in pipeline["stages"] if s["name"] == "Lead")
    assert lead["rotten_days"] == 14
    titles = ("Called", "Tasked", "Closed", "Fresh")
    called, tasked, closed, fresh = [
        ok(await client.post(DEALS, json={"title": title}, headers=rep), 201)["id"] for title in titles
    ]
    detail = ok(await client.get(f"{DEALS}/{fresh}", headers=rep))
    assert not detail["rotten"] and detail["rots_at"] is not None
    for deal_id in (called, tasked, closed):
        await _age(session, deal_id, days=20)
    # Winning stops the clock of a deal that had gone rotten.
    ok(await client.post(f"{DEALS}/{closed}/win", headers=rep))

    assert ok(await client.get(f"{DEALS}/{called}", headers=rep))["rotten"] is True
    assert await _rotten_ids(client, rep, True) == {called, tasked}
    assert await _rotten_ids(client, rep, False) == {fresh, closed}

    # A call logged on the deal makes it fresh; a task planned on it does not, until it is done.
    ok(await client.post(ACTIVITIES, json={"kind": "call", "deal_id": called}, headers=rep), 201)
    task = ok(
        await client.post(
            ACTIVITIES,
            json={"kind": "task", "subject": "Send quote", "deal_id": tasked, "due_at": "2099-01-01T09:00:00Z"},
            headers=rep,
        ),
        201,
    )["activity"]
    refreshed = ok(await client.get(f"{DEALS}/{called}", headers=rep))
    assert not refreshed["rotten"] and refreshed["last_activity_at"] is not None
    assert await _rotten_ids(client, rep, True) == {tasked}
    ok(await client.post(f"{ACTIVITIES}/{task['id']}/complete", headers=rep))
    assert await _rotten_ids(client, rep, True) == set()

    # Changing the stage's rotten_days recomputes when its deals rot.
    await _age(session, tasked, days=20)
    assert await _rotten_ids(client, rep, True) == {tasked}
    path = f"{STAGES}/{lead['id']}"
    ok(await client.patch(path, json={"rotten_days": 30}, headers=tenant.headers))
    assert await _rotten_ids(client, rep, True) == set()
    longer = ok(await client.get(f"{DEALS}/{tasked}", headers=rep))
    assert longer["rots_at"] is not None and not longer["rotten"]
    ok(await client.patch(path, json={"rotten_days": 10}, headers=tenant.headers))
    assert await _rotten_ids(client, rep, True) == {tasked}
    ok(await client.patch(path, json={"rotten_days": None}, headers=tenant.headers))
    never = ok(await client.get(f"{DEALS}/{tasked}", headers=rep))
    assert never["rots_at"] is None and not never["rotten"]
    assert await _rotten_ids(client, rep, True) == set()
    assert await _rotten_ids(client, rep, False) == {called, tasked, closed, fresh}


async def test_a_stage_or_pipeline_holding_deals_cannot_be_deleted(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    admin = tenant.headers
    renewals = ok(
        await client.post(
            PIPELINES,
            json={"name": "Renewals", "stages": [{"name": "Call"}, {"name": "Offer"}, {"name": "Sign"}]},
            headers=admin,
        ),
        201,
    )
    deal = ok(await client.post(DEALS, json={"title": "Renew", "pipeline_id": renewals["id"]}, headers=rep), 201)
    won = ok(
        await client.post(
            DEALS,
            json={"title": "Renewed", "pipeline_id": renewals["id"], "stage_id": stage(renewals, "Offer")},
            headers=rep,
        ),
        201,
    )
    ok(await client.post(f"{DEALS}/{won['id']}/win", headers=rep))

    problem = refused(await client.delete(f"{STAGES}/{stage(renewals, 'Call')}", headers=admin), 409)
    assert problem["deal_count"] == 1
    # A closed deal still holds its pipeline.
    assert refused(await client.delete(f"{PIPELINES}/{renewals['id']}", headers=admin), 409)["deal_count"] == 2
    ok(await client.delete(f"{STAGES}/{stage(renewals, 'Offer')}", headers=admin), 204)
    left = ok(await client.get(f"{PIPELINES}/{renewals['id']}", headers=admin))
    assert [s["name"] for s in left["stages"]] == ["Call", "Sign", "Won", "Lost"]
    default = await default_pipeline(client, admin)
    refused(await client.delete(f"{PIPELINES}/{default['id']}", headers=admin), 409)

    # Deals in the bin hold nothing.
    for deal_id in (deal["id"], won["id"]):
        ok(await client.delete(f"{DEALS}/{deal_id}", headers=rep), 204)
    ok(await client.delete(f"{STAGES}/{stage(renewals, 'Call')}", headers=admin), 204)
    ok(await client.delete(f"{PIPELINES}/{renewals['id']}", headers=admin), 204)
    refused(await client.get(f"{PIPELINES}/{renewals['id']}", headers=admin), 404)


async def test_a_deal_restored_after_its_stage_went_can_still_be_worked(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    pipeline = await default_pipeline(client, rep)
    deal = ok(
        await client.post(DEALS, json={"title": "Parked", "stage_id": stage(pipeline, "Qualified")}, headers=rep), 201
    )
    ok(await client.delete(f"{DEALS}/{deal['id']}", headers=rep), 204)
    ok(await client.delete(f"{STAGES}/{stage(pipeline, 'Qualified')}", headers=tenant.headers), 204)

    restored = await client.post(f"{DEALS}/{deal['id']}/restore", headers=rep)
    if restored.status_code == 409:
        return  # refusing the restore is a fair answer too
    ok(restored)
    ok(await client.post(f"{DEALS}/{deal['id']}/move", json={"stage_id": stage(pipeline, "Proposal")}, headers=rep))
    board = ok(await client.get(f"{DEALS}/board", headers=rep))
    assert sum(c["count"] for c in board["stages"]) == 1


async def test_a_page_of_deals_reads_as_the_models_write_it(session: AsyncSession, client: httpx.AsyncClient) -> None:
    """On PostgreSQL a page's JSON is written by the statement that reads it: field for field it must be the page
    the read models make of the same rows (what SQLite serves), open, won, lost or rotten."""
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    reason = ok(await client.get(f"{API}/lost-reasons", headers=rep))["items"][0]["id"]
    company = await make_company(session, tenant.rep, name="Frutas Núñez")
    made = [
        await make_deal(session, tenant.rep, title=f"Deal {i}", amount_minor=1000 * i, company_id=company.id)
        for i in range(5)
    ]
    await make_deal(session, tenant.admin, title="Admin's", expected_close_on=date(2027, 3, 1))
    ok(await client.post(f"{DEALS}/{made[1].id}/win", headers=rep))
    ok(await client.post(f"{DEALS}/{made[2].id}/lose", json={"lost_reason_id": reason, "note": "Precio"}, headers=rep))
    await session.execute(
        sa.update(Deal).where(col(Deal.id) == made[3].id).values(rots_at=utcnow() - timedelta(days=1))
    )
    await session.commit()
    for user, headers, params in (
        (tenant.rep, rep, {}),
        (tenant.admin, tenant.headers, {}),
        (tenant.admin, tenant.headers, {"limit": 2, "status": "open"}),
        (tenant.rep, rep, {"rotten": "true"}),
    ):
        body = ok(await client.get(DEALS, params=params, headers=headers))
        viewer = await viewer_of_user(session, user)
        filters = DealFilters(
            status=DealStatus(params["status"]) if "status" in params else None, rotten=params.get("rotten") and True
        )
        models, cursor = await list_deals(
            session=session, viewer=viewer, filters=filters, limit=params.get("limit", 50), cursor=None
        )
        assert body == Page[DealRead](items=models, next_cursor=cursor).model_dump(mode="json"), params
        assert body["items"], params
