"""Offline sync through HTTP (DESIGN §7): what a pull brings and takes away, how a push applies an outbox."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.clients.models import Company
from api.core.types import utcnow
from api.sync import working_set
from api.sync.models import SyncClient, SyncView
from tests.factories import (
    make_activity,
    make_company,
    make_contact,
    make_deal,
    make_tenant,
    make_user,
    share_with,
    sign_in,
)
from tests.sync.device import PULL, PUSH, Device

pytestmark = pytest.mark.asyncio


async def _rep_device(session: AsyncSession, client: httpx.AsyncClient) -> tuple[Any, Any, Device]:
    tenant = await make_tenant(session, client)
    return tenant, tenant.rep, Device(await sign_in(client, tenant.rep))


async def test_a_first_pull_brings_the_working_set_and_nothing_else(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant, rep, device = await _rep_device(session, client)
    other = await make_user(session, tenant.org, role=Role.rep, team=tenant.team)
    mine = await make_company(session, rep, name="Mine SA")
    await share_with(session, rep, "company", mine.id, other)
    contact = await make_contact(session, other, name="Their contact at mine", company_id=mine.id)
    open_deal = await make_deal(session, other, title="On my client", company_id=mine.id)
    recent = await make_activity(session, other, kind="note", company_id=mine.id)
    old = await make_activity(session, rep, kind="call", done_at=utcnow() - timedelta(days=120))
    task = await make_activity(session, rep, kind="task", due_at=utcnow() - timedelta(days=200))
    theirs = await make_company(session, other, name="Theirs SA")
    shared = await make_company(session, other, name="Shared SA")
    await share_with(session, other, "company", shared.id, rep)
    their_deal = await make_deal(session, other, title="Not mine", company_id=theirs.id)

    await device.pull(client)

    held = device.held()
    assert set(held["company"]) == {str(mine.id), str(shared.id)}
    assert set(held["contact"]) == {str(contact.id)}
    assert set(held["deal"]) == {str(open_deal.id)}
    assert set(held["activity"]) == {str(recent.id), str(task.id)}
    assert str(old.id) not in held["activity"] and str(their_deal.id) not in held["deal"]
    assert {str(rep.id), str(other.id), str(tenant.admin.id)} <= set(held["user"])
    assert held["stage"] and held["pipeline"] and held["lost_reason"]
    # Records read as the REST API reads them.
    rest = await client.get(f"/api/v1/companies/{mine.id}", headers=device.headers)
    assert device.get("company", mine.id) == rest.json()


async def test_pages_add_up_to_one_big_pull_and_an_idle_pull_costs_nothing(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    _tenant, rep, device = await _rep_device(session, client)
    for i in range(7):
        await make_company(session, rep, name=f"Client {i}")
    whole = Device(device.headers)
    await whole.pull(client)
    await device.pull(client, limit=3)
    assert device.pulls > 3
    assert device.store == whole.store

    cursor = device.cursor
    idle = (
        await client.get(PULL, params={"client_id": str(device.client_id), "cursor": cursor}, headers=device.headers)
    ).json()
    assert idle["cursor"] == cursor and not idle["has_more"]
    assert not any(idle["put"].values()) and not any(idle["remove"].values())


async def test_records_that_leave_the_working_set_are_removed(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep, device = await _rep_device(session, client)
    other = await make_user(session, tenant.org, role=Role.rep, team=tenant.team)
    admin = tenant.headers
    company = await make_company(session, rep, name="Moving SA")
    await share_with(session, rep, "company", company.id, other)
    contact = await make_contact(session, other, name="Ana", company_id=company.id)
    deal = await make_deal(session, other, title="On it", company_id=company.id)
    shared = await make_company(session, other, name="Shared SA")
    await share_with(session, other, "company", shared.id, rep)
    closing = await make_deal(session, rep, title="Closing")
    gone = await make_company(session, rep, name="Deleted SA")
    await device.pull(client)
    assert {"company", "contact", "deal"} <= device.held().keys()

    # Reassigned (its contact and deal go with it), unshared, won (closed), deleted.
    moved = await client.patch(f"/api/v1/companies/{company.id}", json={"owner_id": str(other.id)}, headers=admin)
    assert moved.status_code == 200, moved.text
    shares = (
        await client.get("/api/v1/shares", params={"entity": "company", "entity_id": str(shared.id)}, headers=admin)
    ).json()
    assert (await client.delete(f"/api/v1/shares/{shares['items'][0]['id']}", headers=admin)).status_code == 204
    assert (await client.post(f"/api/v1/deals/{closing.id}/win", headers=admin)).status_code == 200
    assert (await client.delete(f"/api/v1/companies/{gone.id}", headers=admin)).status_code == 204

    page = await device.pull_page(client)
    assert set(page["remove"]["company"]) == {str(company.id), str(shared.id), str(gone.id)}
    assert page["remove"]["contact"] == [str(contact.id)]
    assert set(page["remove"]["deal"]) == {str(deal.id), str(closing.id)}
    assert "company" not in device.held()


async def test_activities_age_out_of_the_window(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tenant, rep, device = await _rep_device(session, client)
    call = await make_activity(session, rep, kind="call", done_at=utcnow() - timedelta(days=60))
    await device.pull(client)
    assert str(call.id) in device.held()["activity"]
    # Thirty-one days later (the window moves by whole days, with nothing else changed).
    monkeypatch.setattr(working_set, "WINDOW_DAYS", 29)
    page = await device.pull_page(client)
    assert page["remove"]["activity"] == [str(call.id)]


async def test_a_push_applies_each_mutation_once(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, _rep, device = await _rep_device(session, client)
    company_id, call_id, task_id = device.new_id(), device.new_id(), device.new_id()
    device.queue("company.create", {"id": company_id, "name": "Offline SA", "phone": "+34 600 000 001"})
    device.queue("activity.log", {"id": call_id, "kind": "call", "company_id": company_id, "outcome": "connected"})
    device.queue(
        "task.create",
        {"id": task_id, "subject": "Send quote", "company_id": company_id, "due_at": "2030-01-01T09:00:00Z"},
    )
    device.queue("task.complete", {"id": task_id})
    outbox = list(device.outbox)

    result = await device.send(client)
    assert result is not None and result["last_mutation_id"] == 4
    assert [r["status"] for r in result["results"]] == ["applied"] * 4, result
    assert result["results"][0]["record"]["phone"] == "+34600000001"
    assert result["results"][3]["record"]["done_at"] is not None

    # The same outbox again (its response was lost): nothing happens twice.
    again = await client.post(
        PUSH, json={"client_id": str(device.client_id), "mutations": outbox}, headers=device.headers
    )
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 4
    count = await session.scalar(sa.select(sa.func.count()).select_from(Company).where(Company.org_id == tenant.org.id))
    assert count == 1
    await device.pull(client)
    assert device.get("company", company_id)["version"] == 1
    assert device.get("activity", task_id)["done_at"] is not None


async def test_a_refused_mutation_changes_nothing_and_does_not_block_the_queue(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    _tenant, rep, device = await _rep_device(session, client)
    good = device.new_id()
    device.queue("company.create", {"id": device.new_id(), "name": "", "size": -1})
    device.queue("deal.win", {"id": device.new_id()})
    device.queue("company.create", {"id": good, "name": "Fine SA"})
    result = await device.send(client)
    assert result is not None
    bad, missing, fine = result["results"]
    assert bad["status"] == "rejected" and bad["problem"]["status"] == 422
    assert {e["pointer"] for e in bad["problem"]["errors"]} == {"#/name", "#/size"}
    assert missing["status"] == "rejected" and missing["problem"]["status"] == 404
    assert fine["status"] == "applied"
    assert device.outbox == [] and result["last_mutation_id"] == 3
    stored = await session.get(SyncClient, (rep.id, device.client_id))
    assert stored is not None and stored.last_mutation_id == 3


async def test_guarded_deal_fields_conflict_and_the_rest_is_applied(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant, rep, device = await _rep_device(session, client)
    deal = await make_deal(session, rep, title="Fleet", amount_minor=1000)
    await device.pull(client)
    stages = sorted(device.store["stage"].values(), key=lambda s: s["position"])
    base = device.get("deal", deal.id)["version"]

    # Meanwhile the admin changes the amount and moves the deal.
    admin = tenant.headers
    assert (
        await client.patch(f"/api/v1/deals/{deal.id}", json={"amount_minor": 5000}, headers=admin)
    ).status_code == 200
    moved = await client.post(f"/api/v1/deals/{deal.id}/move", json={"stage_id": stages[2]["id"]}, headers=admin)
    assert moved.status_code == 200, moved.text

    device.queue("deal.update", {"id": str(deal.id), "amount_minor": 2000, "title": "Fleet (12 vans)"}, base)
    device.queue("deal.move", {"id": str(deal.id), "stage_id": stages[1]["id"]}, base)
    result = await device.send(client)
    assert result is not None
    update, move = result["results"]
    assert update["status"] == "conflict" and update["conflicts"] == ["amount_minor"]
    assert update["record"]["amount_minor"] == 5000 and update["record"]["title"] == "Fleet (12 vans)"
    assert move["status"] == "conflict" and move["conflicts"] == ["stage_id"]
    assert move["record"]["stage_id"] == stages[2]["id"]

    # Settled with "keep mine": sent again from the server's version, it applies.
    current = update["record"]["version"]
    device.queue("deal.update", {"id": str(deal.id), "amount_minor": 2000}, current)
    device.queue("deal.move", {"id": str(deal.id), "stage_id": stages[1]["id"]}, current)
    settled = await device.send(client)
    assert settled is not None and [r["status"] for r in settled["results"]] == ["applied", "applied"]


async def test_the_user_s_own_earlier_changes_are_not_conflicts(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    _tenant, rep, device = await _rep_device(session, client)
    deal = await make_deal(session, rep, title="Fleet")
    await device.pull(client)
    stages = sorted(device.store["stage"].values(), key=lambda s: s["position"])
    base = device.get("deal", deal.id)["version"]
    device.queue("deal.move", {"id": str(deal.id), "stage_id": stages[1]["id"]}, base)
    device.queue("deal.move", {"id": str(deal.id), "stage_id": stages[2]["id"]}, base)
    device.queue("deal.update", {"id": str(deal.id), "amount_minor": 700}, base)
    result = await device.send(client)
    assert result is not None and [r["status"] for r in result["results"]] == ["applied"] * 3


async def test_deletes_win(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep, device = await _rep_device(session, client)
    company = await make_company(session, rep, name="Doomed SA")
    await device.pull(client)
    assert (await client.delete(f"/api/v1/companies/{company.id}", headers=tenant.headers)).status_code == 204
    device.queue("company.update", {"id": str(company.id), "name": "Renamed offline"}, 1)
    device.queue("company.update", {"id": str(company.id), "tags": ["no base version"]})
    result = await device.send(client)
    assert result is not None
    for outcome in result["results"]:
        assert outcome["status"] == "rejected" and outcome["problem"]["status"] == 410
    restored = await client.get(f"/api/v1/companies/{company.id}", headers=tenant.headers)
    assert restored.status_code == 404


async def test_limits_and_bad_requests(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, _rep, device = await _rep_device(session, client)
    too_many = [
        {"id": i, "name": "company.create", "args": {"id": device.new_id(), "name": f"C{i}"}} for i in range(1, 102)
    ]
    refused = await client.post(
        PUSH, json={"client_id": str(device.client_id), "mutations": too_many}, headers=device.headers
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["pointer"] == "#/mutations"
    backwards = [
        {"id": 2, "name": "deal.win", "args": {"id": device.new_id()}},
        {"id": 1, "name": "deal.win", "args": {"id": device.new_id()}},
    ]
    refused = await client.post(
        PUSH, json={"client_id": str(device.client_id), "mutations": backwards}, headers=device.headers
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["pointer"] == "#/mutations/1/id"
    unknown = [{"id": 1, "name": "company.delete", "args": {}}]
    refused = await client.post(
        PUSH, json={"client_id": str(device.client_id), "mutations": unknown}, headers=device.headers
    )
    assert refused.status_code == 422
    big = await client.get(PULL, params={"client_id": str(device.client_id), "limit": 1001}, headers=device.headers)
    assert big.status_code == 422
    assert await session.scalar(sa.select(sa.func.count()).select_from(SyncClient)) == 0
    api_key = {"Authorization": f"Bearer {tenant.key_secret}"}
    assert (await client.get(PULL, params={"client_id": str(device.client_id)}, headers=api_key)).status_code == 403


async def test_an_unknown_or_expired_cursor_asks_for_a_reset(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep, device = await _rep_device(session, client)
    await make_company(session, rep, name="Kept SA")
    await device.pull(client)
    stranger = Device(await sign_in(client, tenant.admin), client_id=device.client_id, cursor=device.cursor)
    page = await stranger.pull_page(client)
    assert page["reset_required"] and page["cursor"] is None

    await session.execute(sa.update(SyncView).values(created_at=utcnow() - timedelta(days=31)))
    await session.commit()
    await make_company(session, rep, name="New SA")
    # The expired view is purged by the next pull of anyone; this device then starts afresh.
    await Device(device.headers).pull(client)
    page = await device.pull_page(client)
    assert page["reset_required"]
    await device.pull(client)
    assert len(device.held()["company"]) == 2


async def test_another_organisation_sees_and_touches_nothing(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _tenant, rep, _device = await _rep_device(session, client)
    company = await make_company(session, rep, name="Ours SA")
    other_tenant = await make_tenant(session, client, "Other")
    theirs = Device(await sign_in(client, other_tenant.rep))
    await theirs.pull(client)
    assert "company" not in theirs.held()
    assert str(rep.id) not in theirs.held()["user"]
    theirs.queue("company.update", {"id": str(company.id), "name": "Hijacked"})
    result = await theirs.send(client)
    assert result is not None and result["results"][0]["problem"]["status"] == 404
    await session.refresh(company)
    assert company.name == "Ours SA"


async def test_a_create_whose_id_is_taken_is_refused_and_the_rest_goes_on(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant, _rep, device = await _rep_device(session, client)
    taken = device.new_id()
    device.queue("company.create", {"id": taken, "name": "First SA"})
    await device.send(client)
    other = Device(await sign_in(client, tenant.admin))
    other.queue("company.create", {"id": taken, "name": "Same id SA"})
    other.queue("company.create", {"id": other.new_id(), "name": "Second SA"})
    result = await other.send(client)
    assert result is not None
    clash, fine = result["results"]
    assert clash["status"] == "rejected" and clash["problem"]["status"] == 409
    assert fine["status"] == "applied"


async def test_a_run_of_pages_lists_the_set_once_and_again_after_a_change(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tenant, rep, device = await _rep_device(session, client)
    for i in range(6):
        await make_company(session, rep, name=f"Client {i}")
    listed = []
    listing = working_set.listing

    async def counted(*args: Any) -> Any:
        listed.append(1)
        return await listing(*args)

    monkeypatch.setattr(working_set, "listing", counted)
    await device.pull_page(client, limit=3)
    await device.pull_page(client, limit=3)
    assert len(listed) == 1
    # A change in the middle of the run: the next page lists the set again, and the run ends with it.
    late = await make_company(session, rep, name="Late SA")
    await device.pull(client, limit=3)
    assert len(listed) == 2
    fresh = Device(device.headers)
    await fresh.pull(client)
    assert device.held() == fresh.held() and str(late.id) in device.held()["company"]
