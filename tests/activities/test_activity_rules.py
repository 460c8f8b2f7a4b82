"""Activities over HTTP, past the basics: fields only calls have, due times, the next step when completing, the
complete / reopen state machine, assignees and mentions (colleagues only), what a link to a contact or deal fills
in, and who may delete."""

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from tests.auth.test_login import bearer
from tests.factories import (
    Tenant,
    make_activity,
    make_api_key,
    make_company,
    make_contact,
    make_deal,
    make_tenant,
    make_user,
    share_with,
    sign_in,
)
from tests.feed.crm import ACTIVITIES, API, FEED, Headers, Json, if_match, ok, refused, written

pytestmark = pytest.mark.asyncio

LATER = "2099-03-01T09:00:00Z"


async def _log(client: httpx.AsyncClient, headers: Headers, **body: object) -> Json:
    logged: Json = ok(await client.post(ACTIVITIES, json=body, headers=headers), 201)
    return logged


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _start(session: AsyncSession, client: httpx.AsyncClient) -> tuple[Tenant, Headers]:
    tenant = await make_tenant(session, client)
    return tenant, await sign_in(client, tenant.rep)


async def test_call_fields_belong_to_calls(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await _start(session, client)
    note = (await _log(client, rep, kind="note", body="Prefers mornings"))["activity"]
    task = (await _log(client, rep, kind="task", subject="Quote", due_at=LATER))["activity"]
    before = await written(session, tenant.org.id)

    refused(
        await client.post(ACTIVITIES, json={"kind": "note", "direction": "inbound"}, headers=rep), 422, "#/direction"
    )
    refused(
        await client.post(ACTIVITIES, json={"kind": "email", "outcome": "connected"}, headers=rep), 422, "#/outcome"
    )
    refused(
        await client.post(ACTIVITIES, json={"kind": "call", "direction": "sideways"}, headers=rep), 422, "#/direction"
    )
    refused(
        await client.patch(f"{ACTIVITIES}/{note['id']}", json={"direction": "outbound"}, headers=rep),
        422,
        "#/direction",
    )
    refused(
        await client.post(f"{ACTIVITIES}/{task['id']}/complete", json={"outcome": "busy"}, headers=rep),
        422,
        "#/outcome",
    )
    assert await written(session, tenant.org.id) == before

    call = (await _log(client, rep, kind="call", direction="inbound", outcome="voicemail", duration_seconds=30))[
        "activity"
    ]
    assert (call["direction"], call["outcome"], call["duration_seconds"]) == ("inbound", "voicemail", 30)
    patched = ok(await client.patch(f"{ACTIVITIES}/{call['id']}", json={"outcome": "connected"}, headers=rep))
    assert patched["outcome"] == "connected" and patched["version"] == 2
    # A scheduled call takes its outcome when it is made.
    planned = (await _log(client, rep, kind="call", due_at=LATER))["activity"]
    assert planned["done_at"] is None
    made = ok(await client.post(f"{ACTIVITIES}/{planned['id']}/complete", json={"outcome": "busy"}, headers=rep))
    assert made["activity"]["outcome"] == "busy" and made["activity"]["done_at"] is not None


async def test_planned_kinds_need_a_due_time_that_is_a_time(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await _start(session, client)
    task = (await _log(client, rep, kind="task", subject="Quote", due_at=LATER))["activity"]
    before = await written(session, tenant.org.id)

    refused(await client.post(ACTIVITIES, json={"kind": "meeting", "subject": "Visit"}, headers=rep), 422, "#/due_at")
    refused(await client.post(ACTIVITIES, json={"kind": "task"}, headers=rep), 422, "#/due_at")
    for due_at in ("next tuesday", "2027-02-30T10:00:00Z", "", "25:00", None):
        refused(
            await client.post(ACTIVITIES, json={"kind": "task", "subject": "x", "due_at": due_at}, headers=rep),
            422,
            "#/due_at",
        )
    refused(await client.post(ACTIVITIES, json={"kind": "call", "done_at": "yesterday"}, headers=rep), 422, "#/done_at")
    refused(
        await client.post(ACTIVITIES, json={"kind": "call", "next_step": {"due_at": "soon"}}, headers=rep),
        422,
        "#/next_step/due_at",
    )
    refused(
        await client.post(ACTIVITIES, json={"kind": "call", "next_step": {}}, headers=rep), 422, "#/next_step/due_at"
    )
    path = f"{ACTIVITIES}/{task['id']}"
    refused(await client.patch(path, json={"due_at": None}, headers=rep), 422, "#/due_at")
    refused(await client.patch(path, json={"due_at": "tomorrow"}, headers=rep), 422, "#/due_at")
    assert await written(session, tenant.org.id) == before

    # A meeting that already happened needs no due time; a call or note with neither happened now.
    held = (await _log(client, rep, kind="meeting", subject="Visit", done_at="2026-11-02T10:00:00+01:00"))["activity"]
    assert held["due_at"] is None and _instant(held["done_at"]) == datetime(2026, 11, 2, 9, tzinfo=UTC)
    call = (await _log(client, rep, kind="call"))["activity"]
    assert call["due_at"] is None and call["done_at"] is not None
    # An offset names an instant; it is read back in UTC.
    moved = ok(await client.patch(path, json={"due_at": "2099-03-01T10:00:00+02:00"}, headers=rep))
    assert _instant(moved["due_at"]) == datetime(2099, 3, 1, 8, tzinfo=UTC)
    assert ok(await client.get(path, headers=rep))["due_at"] in ("2099-03-01T08:00:00Z", "2099-03-01T08:00:00+00:00")


async def test_a_due_time_without_a_zone_is_refused_naming_it(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _, rep = await _start(session, client)
    response = await client.post(
        ACTIVITIES, json={"kind": "task", "subject": "Call back", "due_at": "2027-01-02T09:00:00"}, headers=rep
    )
    refused(response, 422, "#/due_at")


async def test_completing_can_schedule_the_next_step(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await _start(session, client)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    rival = await make_tenant(session, client, "Rival")
    company = await make_company(session, tenant.rep, name="Transportes Núñez")
    contact = await make_contact(session, tenant.rep, name="Lucía", company_id=company.id)
    deal = await make_deal(session, tenant.rep, title="Fleet", company_id=company.id, contact_id=contact.id)
    task = (await _log(client, rep, kind="task", subject="Visit the depot", deal_id=str(deal.id), due_at=LATER))[
        "activity"
    ]
    path = f"{ACTIVITIES}/{task['id']}/complete"
    before = await written(session, tenant.org.id)

    foreign = {"next_step": {"due_at": LATER, "assignee_id": str(rival.rep.id)}}
    refused(await client.post(path, json=foreign, headers=rep), 422, "#/next_step/assignee_id")
    # Logging with a next step is one write: a bad step leaves no call behind either.
    refused(
        await client.post(ACTIVITIES, json={"kind": "call", **foreign}, headers=rep), 422, "#/next_step/assignee_id"
    )
    refused(await client.post(path, json={"next_step": {"kind": "lunch", "due_at": LATER}}, headers=rep), 422)
    assert await written(session, tenant.org.id) == before
    assert ok(await client.get(f"{ACTIVITIES}/{task['id']}", headers=rep))["done_at"] is None

    body = {
        "done_at": "2026-11-20T16:00:00Z",
        "next_step": {"kind": "call", "due_at": "2099-03-02T08:00:00Z", "assignee_id": str(colleague.id)},
    }
    done = ok(await client.post(path, json=body, headers=rep))
    activity, step = done["activity"], done["next_step"]
    assert activity["done_at"].startswith("2026-11-20T16:00:00") and activity["next_step_id"] == step["id"]
    assert (step["kind"], step["subject"], step["done_at"]) == ("call", "Call", None)
    assert step["due_at"].startswith("2099-03-02T08:00:00")
    assert (step["owner_id"], step["assignee_id"]) == (str(tenant.rep.id), str(colleague.id))
    assert (step["deal_id"], step["contact_id"], step["company_id"]) == (str(deal.id), str(contact.id), str(company.id))
    # The colleague has it to do, and sees it though they own nothing it is about.
    theirs = await sign_in(client, colleague)
    assert ok(await client.get(f"{ACTIVITIES}/{step['id']}", headers=theirs))["subject"] == "Call"
    todo = ok(await client.get(ACTIVITIES, params={"assignee_id": str(colleague.id), "planned": "true"}, headers=rep))
    assert [a["id"] for a in todo["items"]] == [step["id"]]


async def test_complete_and_reopen_follow_the_state_machine(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _, rep = await _start(session, client)
    task = (await _log(client, rep, kind="task", subject="Send the quote", due_at=LATER))["activity"]
    call = (await _log(client, rep, kind="call"))["activity"]
    path = f"{ACTIVITIES}/{task['id']}"

    refused(await client.post(f"{path}/reopen", headers=rep), 409)
    refused(await client.post(f"{path}/complete", headers=if_match(rep, 5)), 412)
    done = ok(await client.post(f"{path}/complete", headers=if_match(rep, task["version"])))
    assert done["activity"]["done_at"] is not None and done["activity"]["version"] == task["version"] + 1
    assert done["next_step"] is None and not done["activity"]["overdue"]
    refused(await client.post(f"{path}/complete", headers=rep), 409)
    reopened = ok(await client.post(f"{path}/reopen", headers=rep))
    assert reopened["done_at"] is None and reopened["due_at"] == task["due_at"]
    refused(await client.post(f"{path}/reopen", headers=rep), 409)
    assert ok(await client.post(f"{path}/complete", headers=rep))["activity"]["done_at"] is not None

    # A call logged as done was never planned: it cannot be completed, or reopened into a plan.
    refused(await client.post(f"{ACTIVITIES}/{call['id']}/complete", headers=rep), 409)
    refused(await client.post(f"{ACTIVITIES}/{call['id']}/reopen", headers=rep), 409)
    # Only a completed plan reaches the feed as something that happened.
    happened = ok(await client.get(FEED, params={"only": "activities"}, headers=rep))["items"]
    assert {i["activity"]["id"] for i in happened} == {task["id"], call["id"]}


async def test_the_assignee_is_an_active_colleague(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await _start(session, client)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    leaver = await make_user(session, tenant.org, role=Role.rep)
    ok(await client.patch(f"{API}/users/{leaver.id}", json={"is_active": False}, headers=tenant.headers))
    rival = await make_tenant(session, client, "Rival")
    task = (await _log(client, rep, kind="task", subject="Quote", due_at=LATER))["activity"]
    _, secret = await make_api_key(session, tenant.org, "activities:write", "activities:read")
    key = bearer(secret)
    before = await written(session, tenant.org.id)

    for stranger in (rival.rep.id, leaver.id, uuid.uuid4()):
        body = {"kind": "task", "subject": "x", "due_at": LATER, "assignee_id": str(stranger)}
        refused(await client.post(ACTIVITIES, json=body, headers=rep), 422, "#/assignee_id")
        patch = {"assignee_id": str(stranger)}
        refused(await client.patch(f"{ACTIVITIES}/{task['id']}", json=patch, headers=rep), 422, "#/assignee_id")
    refused(
        await client.patch(f"{ACTIVITIES}/{task['id']}", json={"assignee_id": None}, headers=rep), 422, "#/assignee_id"
    )
    assert await written(session, tenant.org.id) == before

    # An API key is no one: it names who logged the activity.
    refused(await client.post(ACTIVITIES, json={"kind": "call"}, headers=key), 422, "#/owner_id")
    refused(
        await client.post(ACTIVITIES, json={"kind": "call", "owner_id": str(rival.rep.id)}, headers=key),
        422,
        "#/owner_id",
    )
    assert await written(session, tenant.org.id) == before
    by_key = (await _log(client, key, kind="call", owner_id=str(tenant.rep.id)))["activity"]
    assert by_key["owner_id"] == by_key["assignee_id"] == str(tenant.rep.id)

    delegated = (await _log(client, rep, kind="task", subject="Deliver", due_at=LATER, assignee_id=str(colleague.id)))[
        "activity"
    ]
    assert (delegated["owner_id"], delegated["assignee_id"]) == (str(tenant.rep.id), str(colleague.id))
    # The assignee sees what they have to do, though they own nothing it is about.
    theirs = await sign_in(client, colleague)
    assert ok(await client.get(f"{ACTIVITIES}/{delegated['id']}", headers=theirs))["subject"] == "Deliver"
    handed = ok(await client.patch(f"{ACTIVITIES}/{task['id']}", json={"assignee_id": str(colleague.id)}, headers=rep))
    assert handed["assignee_id"] == str(colleague.id)


async def test_links_fill_in_the_client_from_the_contact_or_deal(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant, rep = await _start(session, client)
    company = await make_company(session, tenant.rep, name="Transportes Núñez")
    contact = await make_contact(session, tenant.rep, name="Lucía", company_id=company.id)
    loner = await make_contact(session, tenant.rep, name="Pablo")
    full = await make_deal(session, tenant.rep, title="Fleet", company_id=company.id, contact_id=contact.id)
    via_contact = await make_deal(session, tenant.rep, title="Vans", contact_id=contact.id)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    hidden_contact = await make_contact(session, colleague, name="Hidden")
    hidden_deal = await make_deal(session, colleague, title="Hidden")
    rival = await make_tenant(session, client, "Rival")
    foreign_company = await make_company(session, rival.rep, name="Rival Corp")

    def links(activity: Json) -> tuple[str | None, str | None, str | None]:
        return activity["company_id"], activity["contact_id"], activity["deal_id"]

    cid, kid = str(company.id), str(contact.id)
    assert links((await _log(client, rep, kind="call", contact_id=kid))["activity"]) == (cid, kid, None)
    assert links((await _log(client, rep, kind="call", deal_id=str(full.id)))["activity"]) == (cid, kid, str(full.id))
    on_vans = (await _log(client, rep, kind="call", deal_id=str(via_contact.id)))["activity"]
    assert links(on_vans) == (cid, kid, str(via_contact.id))
    alone = (await _log(client, rep, kind="note", contact_id=str(loner.id)))["activity"]
    assert links(alone) == (None, str(loner.id), None)
    # Linked later, the note takes the deal's client.
    relinked = ok(await client.patch(f"{ACTIVITIES}/{alone['id']}", json={"deal_id": str(full.id)}, headers=rep))
    assert links(relinked) == (cid, str(loner.id), str(full.id))

    before = await written(session, tenant.org.id)
    for field, value in (
        ("contact_id", hidden_contact.id),
        ("deal_id", hidden_deal.id),
        ("company_id", foreign_company.id),
        ("deal_id", uuid.uuid4()),
    ):
        refused(await client.post(ACTIVITIES, json={"kind": "call", field: str(value)}, headers=rep), 422, f"#/{field}")
    assert await written(session, tenant.org.id) == before


async def test_mentions_reach_the_colleague_in_their_feed(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await _start(session, client)
    mentioned = await make_user(session, tenant.org, role=Role.rep, name="Marta")
    bystander = await make_user(session, tenant.org, role=Role.rep)
    leaver = await make_user(session, tenant.org, role=Role.rep)
    ok(await client.patch(f"{API}/users/{leaver.id}", json={"is_active": False}, headers=tenant.headers))
    rival = await make_tenant(session, client, "Rival")
    company = await make_company(session, tenant.rep, name="Transportes Núñez")
    before = await written(session, tenant.org.id)
    for ids, pointer in (
        ([rival.rep.id], "#/mentioned_ids/0"),
        ([mentioned.id, leaver.id], "#/mentioned_ids/1"),
        ([uuid.uuid4()], "#/mentioned_ids/0"),
    ):
        body = {"kind": "note", "body": "@someone", "mentioned_ids": [str(i) for i in ids]}
        refused(await client.post(ACTIVITIES, json=body, headers=rep), 422, pointer)
    assert await written(session, tenant.org.id) == before

    # Marta follows the client (it is shared with her); the rep mentions her, twice by mistake.
    await share_with(session, tenant.rep, "company", company.id, mentioned)
    note = await _mention(client, rep, company.id, mentioned.id, mentioned.id)
    assert note["mentioned_ids"] == [str(mentioned.id)]

    theirs = await sign_in(client, mentioned)
    mine = ok(await client.get(FEED, params={"scope": "me"}, headers=theirs))["items"]
    assert [(i["kind"], i["user_id"], i["actor_id"]) for i in mine] == [
        ("mentioned", str(mentioned.id), str(tenant.rep.id)),
        ("shared", str(mentioned.id), str(tenant.rep.id)),
    ]
    for params in ({"scope": "me", "only": "mentions"}, {"only": "mentions"}):
        items = ok(await client.get(FEED, params=params, headers=theirs))["items"]
        assert [(i["kind"], i["user_id"]) for i in items] == [("mentioned", str(mentioned.id))], params
        assert items[0]["activity"]["id"] == note["id"] and items[0]["activity"]["body"] == note["body"]
        assert items[0]["company"]["name"] == "Transportes Núñez"
    # A colleague who sees nothing of it hears nothing of it.
    assert ok(await client.get(FEED, headers=await sign_in(client, bystander)))["items"] == []


async def _mention(client: httpx.AsyncClient, headers: Headers, company_id: object, *users: object) -> Json:
    body = {
        "kind": "note",
        "subject": "Fleet size",
        "body": "@Marta they run 40 vans",
        "company_id": str(company_id),
        "mentioned_ids": [str(u) for u in users],
    }
    note: Json = (await _log(client, headers, **body))["activity"]
    return note


async def test_a_mention_reaches_a_colleague_who_does_not_follow_the_client(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant, rep = await _start(session, client)
    mentioned = await make_user(session, tenant.org, role=Role.rep, name="Marta")
    company = await make_company(session, tenant.rep, name="Transportes Núñez")
    note = await _mention(client, rep, company.id, mentioned.id)
    theirs = await sign_in(client, mentioned)
    items = ok(await client.get(FEED, params={"scope": "me", "only": "mentions"}, headers=theirs))["items"]
    assert [(i["kind"], i["user_id"]) for i in items] == [("mentioned", str(mentioned.id))]
    assert items[0]["activity"]["id"] == note["id"]
    # The mention is addressed to them only: the note itself stays out of their activities.
    assert ok(await client.get(FEED, params={"only": "activities"}, headers=theirs))["items"] == []


async def test_who_may_delete_an_activity(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await _start(session, client)
    manager = await make_user(session, tenant.org, role=Role.manager, team=tenant.team)
    assignee = await make_user(session, tenant.org, role=Role.rep)
    follower = await make_user(session, tenant.org, role=Role.rep)
    marketing = await make_user(session, tenant.org, role=Role.marketing)
    rival = await make_tenant(session, client, "Rival")
    company = await make_company(session, tenant.rep, name="Shared Corp")
    await share_with(session, tenant.rep, "company", company.id, follower)
    calls = [await make_activity(session, tenant.rep, kind="call", company_id=company.id) for _ in range(4)]
    delegated = await make_activity(session, tenant.rep, kind="task", due_at=LATER, assignee_id=assignee.id)

    def path(activity: object) -> str:
        return f"{ACTIVITIES}/{activity.id}"  # type: ignore[attr-defined]

    follower_headers = await sign_in(client, follower)
    # Seeing it through a shared client is not running it.
    ok(await client.get(path(calls[0]), headers=follower_headers))
    refused(await client.delete(path(calls[0]), headers=follower_headers), 403)
    refused(await client.delete(path(calls[0]), headers=await sign_in(client, marketing)), 403)
    refused(await client.delete(path(calls[0]), headers=rival.headers), 404)
    refused(await client.delete(path(calls[0]), headers=if_match(rep, 9)), 412)
    refused(await client.delete(f"{ACTIVITIES}/{uuid.uuid4()}", headers=rep), 404)

    ok(await client.delete(path(calls[0]), headers=if_match(rep, 1)), 204)
    ok(await client.delete(path(delegated), headers=await sign_in(client, assignee)), 204)
    ok(await client.delete(path(calls[1]), headers=await sign_in(client, manager)), 204)
    ok(await client.delete(path(calls[2]), headers=tenant.headers), 204)
    for gone in (calls[0], delegated, calls[1], calls[2]):
        refused(await client.get(path(gone), headers=tenant.headers), 404)
        refused(await client.delete(path(gone), headers=tenant.headers), 404)
    assert [a["id"] for a in ok(await client.get(ACTIVITIES, headers=rep))["items"]] == [str(calls[3].id)]
    feed = ok(await client.get(FEED, params={"only": "activities"}, headers=rep))["items"]
    assert [i["activity"]["id"] for i in feed] == [str(calls[3].id)]
