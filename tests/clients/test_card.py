"""The client card: every section of a company's and a contact's card, what it leaves out (deleted, other
clients', other organisations'), and a fixed number of SQL statements however big the client is."""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import Role, User
from api.clients import card as cards
from api.clients import completeness
from api.core.db import Database
from api.core.errors import NotFound
from api.deals import deals as deal_service
from api.deals.models import LostReason
from api.main import create_app
from api.settings import Settings
from tests.auth.test_login import bearer
from tests.clients.crm import API, created
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
    viewer_of_user,
)

pytestmark = pytest.mark.asyncio


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def ahead(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


async def win(session: AsyncSession, owner: User, deal_id: uuid.UUID) -> None:
    viewer = await viewer_of_user(session, owner)
    await deal_service.win_deal(session=session, viewer=viewer, deal_id=deal_id, expected_version=None)
    await session.commit()


async def lose(session: AsyncSession, owner: User, deal_id: uuid.UUID) -> None:
    viewer = await viewer_of_user(session, owner)
    reason = (await session.scalars(select(LostReason).where(col(LostReason.org_id) == owner.org_id))).first()
    assert reason is not None
    await deal_service.lose_deal(
        session=session, viewer=viewer, deal_id=deal_id, lost_reason_id=reason.id, note=None, expected_version=None
    )
    await session.commit()


async def card_of(client: httpx.AsyncClient, client_id: Any, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"{API}/clients/{client_id}/card", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["id"] for i in items]


@dataclass
class World:
    tenant: Tenant
    rep: dict[str, str]
    company: dict[str, Any]
    contacts: dict[str, dict[str, Any]]
    deals: dict[str, dict[str, Any]]
    activities: dict[str, dict[str, Any]]


async def make_world(session: AsyncSession, client: httpx.AsyncClient) -> World:
    """A company with contacts, deals in every state and currency, and activities past and planned, plus the
    noise a card must leave out: deleted records and another company's."""
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    for field in ({"key": "tier", "kind": "text"}, {"key": "since", "kind": "date"}, {"key": "old", "kind": "text"}):
        await created(client, "/custom-fields", {"entity": "company", "label": field["key"], **field}, tenant.headers)
    await created(
        client, "/custom-fields", {"entity": "contact", "key": "role", "label": "Role", "kind": "text"}, tenant.headers
    )
    fields = (await client.get(f"{API}/custom-fields", params={"entity": "company"}, headers=rep)).json()["items"]
    old = next(f for f in fields if f["key"] == "old")
    assert (await client.delete(f"{API}/custom-fields/{old['id']}", headers=tenant.headers)).status_code == 204

    company = await created(
        client,
        "/companies",
        {"name": "Acme Corp", "domain": "acme.es", "industry": "Logistics", "custom": {"since": "2020-01-01"}},
        rep,
    )
    other_company = await created(client, "/companies", {"name": "Zeta"}, rep)
    cid = company["id"]
    contacts = {
        name: await created(client, "/contacts", {"name": name, "company_id": cid, **extra}, rep)
        for name, extra in (
            ("Zoe Álvarez", {"emails": ["zoe@acme.es"], "title": "CEO"}),
            ("ana Núñez", {}),
            ("Bruno", {}),
            ("Gone", {}),
        )
    }
    assert (await client.delete(f"{API}/contacts/{contacts['Gone']['id']}", headers=rep)).status_code == 204
    await created(client, "/contacts", {"name": "Elsewhere", "company_id": other_company["id"]}, rep)

    deals: dict[str, dict[str, Any]] = {}
    for title, extra in (
        ("Open 1", {"amount_minor": 100}),
        ("Open 2", {"amount_minor": 200, "currency": "USD"}),
        ("Won EUR 1", {"amount_minor": 1000}),
        ("Won EUR 2", {"amount_minor": 2500}),
        ("Won USD", {"amount_minor": 700, "currency": "USD"}),
        ("Lost", {"amount_minor": 9999}),
        ("Won then deleted", {"amount_minor": 50_000}),
        ("Open deleted", {"amount_minor": 1}),
    ):
        deals[title] = await created(client, "/deals", {"title": title, "company_id": cid, **extra}, rep)
    for title in ("Won EUR 1", "Won EUR 2", "Won USD", "Won then deleted"):
        assert (await client.post(f"{API}/deals/{deals[title]['id']}/win", headers=rep)).status_code == 200
    reason = (await client.get(f"{API}/lost-reasons", headers=rep)).json()["items"][0]
    lost = await client.post(
        f"{API}/deals/{deals['Lost']['id']}/lose", json={"lost_reason_id": reason["id"]}, headers=rep
    )
    assert lost.status_code == 200, lost.text
    for title in ("Won then deleted", "Open deleted"):
        assert (await client.delete(f"{API}/deals/{deals[title]['id']}", headers=rep)).status_code == 204
    await created(client, "/deals", {"title": "Elsewhere", "company_id": other_company["id"], "amount_minor": 5}, rep)

    activities: dict[str, dict[str, Any]] = {}
    for name, body in (
        ("call", {"kind": "call", "done_at": ago(days=3).isoformat()}),
        ("meeting", {"kind": "meeting", "done_at": ago(days=1).isoformat()}),
        ("email", {"kind": "email", "done_at": ago(days=2).isoformat()}),
        # Newer than every touch, but a note (or a done task) is no touch.
        ("note", {"kind": "note", "done_at": ago(hours=1).isoformat()}),
        ("done task", {"kind": "task", "done_at": ago(minutes=30).isoformat()}),
        ("overdue task", {"kind": "task", "subject": "Overdue", "due_at": ago(days=1).isoformat()}),
        ("planned call", {"kind": "call", "subject": "Call back", "due_at": ahead(days=1).isoformat()}),
        ("planned task", {"kind": "task", "subject": "Send quote", "due_at": ahead(days=2).isoformat()}),
        ("deleted task", {"kind": "task", "subject": "Deleted", "due_at": ahead(hours=2).isoformat()}),
        # Through a contact: on the company's card too (the contact's company is filled in).
        ("contact meeting", {"kind": "meeting", "subject": "Lunch", "due_at": ahead(days=3).isoformat()}),
    ):
        about = {"contact_id": contacts["Bruno"]["id"]} if name == "contact meeting" else {"company_id": cid}
        response = await client.post(f"{API}/activities", json={**body, **about}, headers=rep)
        assert response.status_code == 201, response.text
        activities[name] = response.json()["activity"]
    assert (await client.delete(f"{API}/activities/{activities['deleted task']['id']}", headers=rep)).status_code == 204
    elsewhere = {"kind": "call", "done_at": ago(minutes=5).isoformat(), "company_id": other_company["id"]}
    assert (await client.post(f"{API}/activities", json=elsewhere, headers=rep)).status_code == 201
    return World(tenant, rep, company, contacts, deals, activities)


async def test_a_company_card_has_every_section_right(session: AsyncSession, client: httpx.AsyncClient) -> None:
    world = await make_world(session, client)
    card = await card_of(client, world.company["id"], world.rep)

    assert card["kind"] == "company" and card["contact"] is None
    company = (await client.get(f"{API}/companies/{world.company['id']}", headers=world.rep)).json()
    assert card["company"] == company

    # Contacts: live ones of this company, by folded name.
    assert [c["name"] for c in card["contacts"]] == ["ana Núñez", "Bruno", "Zoe Álvarez"]
    assert card["contact_count"] == 3
    assert card["contacts"][2]["emails"] == ["zoe@acme.es"]

    # Deals: live ones of this company, by status, newest first.
    deals = world.deals
    assert ids(card["open_deals"]) == [deals["Open 2"]["id"], deals["Open 1"]["id"]]
    assert ids(card["won_deals"]) == [deals["Won USD"]["id"], deals["Won EUR 2"]["id"], deals["Won EUR 1"]["id"]]
    assert ids(card["lost_deals"]) == [deals["Lost"]["id"]]
    assert {d["status"] for d in card["won_deals"]} == {"won"}
    assert all(d["won_at"] for d in card["won_deals"])
    assert card["lost_deals"][0]["lost_reason_id"] is not None
    assert card["deal_counts"] == {"open": 2, "won": 3, "lost": 1}
    # Won amounts only, per currency, deleted deals left out.
    assert card["lifetime_value"] == {"EUR": 3500, "USD": 700}

    acts = world.activities
    assert card["last_touch"]["id"] == acts["meeting"]["id"]
    assert card["next_touch"]["id"] == acts["planned call"]["id"]
    assert ids(card["open_tasks"]) == [
        acts["overdue task"]["id"],
        acts["planned call"]["id"],
        acts["planned task"]["id"],
        acts["contact meeting"]["id"],
    ]
    assert [t["overdue"] for t in card["open_tasks"]] == [True, False, False, False]

    # 9 details + contacts + 2 live custom fields (the deleted one no longer counts).
    missing = ["phone", "size", "address", "city", "country", "segment", "source", "custom.tier"]
    assert card["completeness"] == {"score": round(100 * (12 - len(missing)) / 12), "missing": missing}

    # The timeline's first page is the client timeline's first page.
    timeline = (
        await client.get(f"{API}/clients/{world.company['id']}/timeline", params={"limit": 20}, headers=world.rep)
    ).json()
    assert card["timeline"]["items"] == timeline["items"]
    # Deal events (8 made, 4 won, 1 lost, less the 3 of deleted deals) and the 5 activities done.
    assert len(card["timeline"]["items"]) == 15 and card["timeline"]["next_cursor"] is None
    ats = [i["at"] for i in card["timeline"]["items"]]
    assert ats == sorted(ats, reverse=True)
    everything = []
    cursor = None
    while True:
        page = await client.get(
            f"{API}/clients/{world.company['id']}/timeline",
            params={"limit": 50, **({"cursor": cursor} if cursor else {})},
            headers=world.rep,
        )
        everything += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    about = {i["company"]["id"] for i in everything if i["company"]}
    assert about == {world.company["id"]}
    # Deleted deals' and activities' events leave the timeline; other companies' never join it.
    shown_deals = {i["deal"]["id"] for i in everything if i["deal"]}
    assert shown_deals == {d["id"] for t, d in deals.items() if "deleted" not in t}
    shown_activities = {i["activity"]["id"] for i in everything if i["activity"]}
    assert shown_activities == {acts[n]["id"] for n in ("call", "meeting", "email", "note", "done task")}


async def test_postgresql_writes_the_card_the_models_would(session: AsyncSession, client: httpx.AsyncClient) -> None:
    """On PostgreSQL the card's JSON is written by one statement; it must be, field for field, the card the read
    models make from the same rows (what SQLite serves), for every kind of card and reader."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite's cards are the models' own")
    world = await make_world(session, client)
    colleague = await make_user(session, world.tenant.org, role=Role.rep)
    await share_with(session, world.tenant.rep, "contact", uuid.UUID(world.contacts["Zoe Álvarez"]["id"]), colleague)
    clients = [world.company["id"], *(c["id"] for name, c in world.contacts.items() if name != "Gone")]
    compared = 0
    for user in (world.tenant.rep, world.tenant.admin, colleague):
        viewer = await viewer_of_user(session, user)
        for client_id in clients:
            try:
                found = await cards.resolve(session, viewer, uuid.UUID(client_id))
            except NotFound:
                continue
            keys = tuple(await completeness.custom_keys(session, viewer.org_id, found.kind))
            params = {"client_id": found.id, "company_id": found.company_id, "now": datetime.now(UTC)}
            by_models = await cards._built_by_python(session, viewer, found, keys, params)
            written = await session.scalar(cards._built_by_postgres(viewer, found.kind, keys), params)
            expected = by_models.model_dump(mode="json", exclude={"timeline"})
            assert json.loads(written) == expected, (user.role, client_id)
            compared += 1
    # The rep's and the admin's four cards, and the colleague's one shared contact (whose company stays hidden).
    assert compared == 9


async def test_a_contact_card_has_every_section_right(session: AsyncSession, client: httpx.AsyncClient) -> None:
    world = await make_world(session, client)
    rep = world.rep
    zoe = world.contacts["Zoe Álvarez"]
    deal = await created(client, "/deals", {"title": "Zoe's deal", "contact_id": zoe["id"], "amount_minor": 300}, rep)
    won = await created(client, "/deals", {"title": "Zoe won", "contact_id": zoe["id"], "amount_minor": 40}, rep)
    assert (await client.post(f"{API}/deals/{won['id']}/win", headers=rep)).status_code == 200
    for body in (
        {"kind": "email", "done_at": ago(hours=5).isoformat()},
        {"kind": "call", "done_at": ago(days=4).isoformat()},
        {"kind": "note", "done_at": ago(hours=1).isoformat()},
        {"kind": "task", "subject": "Follow up", "due_at": ahead(hours=6).isoformat()},
    ):
        assert (
            await client.post(f"{API}/activities", json={**body, "contact_id": zoe["id"]}, headers=rep)
        ).status_code == 201

    card = await card_of(client, zoe["id"], rep)
    assert card["kind"] == "contact"
    assert card["contact"] == (await client.get(f"{API}/contacts/{zoe['id']}", headers=rep)).json()
    assert card["company"]["id"] == world.company["id"]
    assert card["contacts"] == [] and card["contact_count"] == 0
    assert ids(card["open_deals"]) == [deal["id"]] and ids(card["won_deals"]) == [won["id"]]
    assert card["lost_deals"] == []
    assert card["deal_counts"] == {"open": 1, "won": 1, "lost": 0}
    assert card["lifetime_value"] == {"EUR": 40}
    assert card["last_touch"]["kind"] == "email"
    assert card["next_touch"]["subject"] == "Follow up"
    assert [t["subject"] for t in card["open_tasks"]] == ["Follow up"]
    # emails, phones, title, company_id, segment, source + the contact's custom field "role".
    assert card["completeness"] == {
        "score": round(100 * 3 / 7),
        "missing": ["phones", "segment", "source", "custom.role"],
    }
    kinds = {i["kind"] for i in card["timeline"]["items"]}
    assert kinds == {"deal_created", "deal_won", "activity"}
    assert all(i["contact"]["id"] == zoe["id"] for i in card["timeline"]["items"])
    assert card["timeline"]["next_cursor"] is None

    # A bare contact: nothing to show, everything missing.
    bare = await created(client, "/contacts", {"name": "Bare"}, rep)
    empty = await card_of(client, bare["id"], rep)
    assert empty["company"] is None and empty["open_deals"] == [] and empty["lifetime_value"] == {}
    assert empty["deal_counts"] == {"open": 0, "won": 0, "lost": 0}
    assert empty["last_touch"] is None and empty["next_touch"] is None and empty["open_tasks"] == []
    assert empty["completeness"]["score"] == 0
    assert empty["timeline"] == {"items": [], "next_cursor": None}


async def test_completeness_counts_filled_details_and_custom_fields(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    await created(
        client, "/custom-fields", {"entity": "company", "key": "tier", "label": "T", "kind": "number"}, tenant.headers
    )
    full = await created(
        client,
        "/companies",
        {
            "name": "Full",
            "domain": "full.es",
            "phone": "+34911234567",
            "industry": "Retail",
            "size": 0,
            "address": "Calle 1",
            "city": "Vigo",
            "country": "ES",
            "segment": "smb",
            "source": "web",
            "custom": {"tier": 0},
        },
        rep,
    )
    await created(client, "/contacts", {"name": "Only one", "company_id": full["id"]}, rep)
    card = await card_of(client, full["id"], rep)
    # Zero is a value, not a gap.
    assert card["completeness"] == {"score": 100, "missing": []}
    empty = await created(client, "/companies", {"name": "Empty"}, rep)
    assert (await card_of(client, empty["id"], rep))["completeness"] == {
        "score": 0,
        "missing": [
            "domain",
            "phone",
            "industry",
            "size",
            "address",
            "city",
            "country",
            "segment",
            "source",
            "contacts",
            "custom.tier",
        ],
    }


async def test_a_card_shows_only_what_its_reader_may_see(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rival = await make_tenant(session, client, "Rival")
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    guest = await sign_in(client, colleague)
    company = await make_company(session, tenant.rep, name="Acme")
    contact = await make_contact(session, tenant.rep, name="Ana", company_id=company.id)
    theirs = await make_company(session, rival.rep, name="Foreign")
    gone = await make_company(session, tenant.rep, name="Gone")
    assert (await client.delete(f"{API}/companies/{gone.id}", headers=rep)).status_code == 204

    for client_id in (theirs.id, gone.id, uuid.uuid4()):
        missing = await client.get(f"{API}/clients/{client_id}/card", headers=tenant.headers)
        assert missing.status_code == 404, missing.text
        assert (await client.get(f"{API}/clients/{client_id}/timeline", headers=tenant.headers)).status_code == 404
    assert (await client.get(f"{API}/clients/{company.id}/card", headers=guest)).status_code == 404

    # A contact shared alone: its card opens, its company (not shared) stays hidden.
    await share_with(session, tenant.rep, "contact", contact.id, colleague)
    card = await card_of(client, contact.id, guest)
    assert card["contact"]["id"] == str(contact.id) and card["company"] is None
    assert (await client.get(f"{API}/clients/{company.id}/card", headers=guest)).status_code == 404

    # Marketing reads every card.
    marketing = await sign_in(client, await make_user(session, tenant.org, role=Role.marketing))
    assert (await card_of(client, company.id, marketing))["contact_count"] == 1


async def test_a_card_read_with_a_key_without_deals_read_shows_no_deals(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    company = await make_company(session, tenant.rep, name="Acme")
    deal = await make_deal(session, tenant.rep, title="Secret deal", company_id=company.id, amount_minor=123_456)
    _, secret = await make_api_key(session, tenant.org, "clients:read")
    response = await client.get(f"{API}/clients/{company.id}/card", headers=bearer(secret))
    assert response.status_code in (200, 403), response.text
    assert str(deal.id) not in response.text
    assert "123456" not in response.text


# A fixed number of SQL statements


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on the app's engine while the block runs."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = db.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


# Measured: 15 for a company, 16 for a contact (its company is one more read): the savepoint the test connection
# wraps a request in (2), authentication and the reader's visibility (2), resolving the id (1, or 2 for a contact),
# contacts (1), deals (2), touches (3), the timeline (1), custom fields (1), completeness (1, the flags the insights
# sum too).
STATEMENT_BOUND = 16


async def statements_for_card(db: Database, client_id: Any, headers: dict[str, str]) -> int:
    # Rate limits off: the bucket's update is not the card's cost (in production it goes through a pool of its own;
    # an app without its lifespan, as here, sends it through the request's database).
    app = create_app(Settings(rate_limit_per_minute=0, rate_limit_key_per_minute=0), database=db)
    unlimited = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    with counting(db) as statements:
        async with unlimited:
            response = await unlimited.get(f"{API}/clients/{client_id}/card", headers=headers)
    assert response.status_code == 200, response.text
    return len(statements)


async def test_a_card_costs_the_same_statements_small_or_big(
    session: AsyncSession, client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(session, client)
    rep = tenant.rep
    headers = await sign_in(client, rep)
    small = await make_company(session, rep, name="Small")
    small_contact = await make_contact(session, rep, name="Small contact", company_id=small.id)

    big = await make_company(session, rep, name="Big")
    contacts = [await make_contact(session, rep, name=f"Contact {n:02d}", company_id=big.id) for n in range(30)]
    big_contact = contacts[0]
    company_counts = {"open": 0, "won": 0, "lost": 0}
    contact_counts = dict(company_counts)
    for n in range(60):
        # A deal made for a contact is filed under the contact's company too: it is on both cards.
        on_contact = n % 4 == 0
        about = {"contact_id": big_contact.id} if on_contact else {"company_id": big.id}
        deal = await make_deal(session, rep, title=f"Deal {n:02d}", amount_minor=100 * n, **about)
        status = ("open", "won", "lost")[n % 3]
        if status == "won":
            await win(session, rep, deal.id)
        elif status == "lost":
            await lose(session, rep, deal.id)
        company_counts[status] += 1
        if on_contact:
            contact_counts[status] += 1
    kinds = ["call", "meeting", "email", "note", "task"]
    for n in range(100):
        kind = kinds[n % 5]
        about = {"contact_id": big_contact.id} if n % 2 else {"company_id": big.id}
        when = {"due_at": ahead(days=n + 1)} if kind == "task" else {"done_at": ago(hours=n + 1)}
        await make_activity(session, rep, kind=kind, subject=f"{kind} {n}", **about, **when)

    big_card = await card_of(client, big.id, headers)
    assert big_card["contact_count"] == 30 and len(big_card["contacts"]) == 30
    assert big_card["deal_counts"] == company_counts
    assert len(big_card["open_deals"]) == company_counts["open"]
    assert len(big_card["open_tasks"]) == 20 and len(big_card["timeline"]["items"]) == 20
    assert big_card["timeline"]["next_cursor"] is not None
    assert big_card["last_touch"]["subject"] == "call 0"
    contact_card = await card_of(client, big_contact.id, headers)
    assert contact_card["deal_counts"] == contact_counts
    assert contact_card["last_touch"]["subject"] == "meeting 1"
    assert len(contact_card["open_tasks"]) == 10

    counts = {
        "small company": await statements_for_card(db, small.id, headers),
        "big company": await statements_for_card(db, big.id, headers),
        "small contact": await statements_for_card(db, small_contact.id, headers),
        "big contact": await statements_for_card(db, big_contact.id, headers),
    }
    assert counts["small company"] == counts["big company"], counts
    assert counts["small contact"] == counts["big contact"], counts
    assert max(counts.values()) <= STATEMENT_BOUND, counts
    # The same reader pays the same again (nothing cached that hides a statement on the first read).
    assert await statements_for_card(db, big.id, headers) == counts["big company"]
