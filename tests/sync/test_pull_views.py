"""What a pull stores (api/sync/pull.py `Entries`): pages go through a listing's steps without writing, the cursor
counts them, what the app holds folds back out of the parts, and views of an earlier format start afresh."""

import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Organization, Role, User
from api.clients.models import Company
from api.core import changes
from api.core.ids import new_id
from api.core.types import utcnow
from api.sync import pull, working_set
from api.sync.models import SyncView
from tests.factories import (
    Tenant,
    make_activity,
    make_company,
    make_contact,
    make_tenant,
    make_user,
    share_with,
    sign_in,
    viewer_of_user,
)
from tests.sync.device import PULL, Device


def _ids(n: int) -> list[str]:
    return sorted(str(new_id()) for _ in range(n))


def _steps(runs: list[pull.Run]) -> list[pull.Step]:
    out: list[pull.Step] = []
    for entity, put, ids, versions in runs:
        keys = ids.split(",")
        values: list[int | None] = [int(v) for v in versions.split(",")] if put else [None] * len(keys)
        out += [(entity, key, value) for key, value in zip(keys, values, strict=True)]
    return out


def _listing(members: dict[str, dict[str, int]]) -> working_set.Listing:
    return {e: (",".join(sorted(v)), ",".join(str(v[k]) for k in sorted(v))) for e, v in members.items()}


HELD = {"company": dict.fromkeys(_ids(4), 1), "activity": dict.fromkeys(_ids(3), 2)}
CURRENT = {
    "user": dict.fromkeys(_ids(2), 1),
    "company": {**dict(list(HELD["company"].items())[:2]), **dict.fromkeys(_ids(3), 4)},
    "activity": dict.fromkeys(HELD["activity"], 3),
}


def test_pages_take_the_steps_in_order_whatever_the_limit() -> None:
    runs = pull._difference(HELD, _listing(CURRENT))
    steps = _steps(runs)
    gone = sorted(list(HELD["company"])[2:])
    assert [(e, k) for e, k, version in steps if version is None] == [("company", key) for key in gone]
    assert [(e, v) for e, _, v in steps if v is not None] == [("user", 1)] * 2 + [("company", 4)] * 3 + [
        ("activity", 3)
    ] * 3
    for limit in (1, 2, 3, 4, 7, 10, 11):
        taken, seen = 0, []
        while True:
            page, left = pull._take(runs, taken, limit)
            seen += [(entity, key) for entity, _, ids, _ in page for key in ids.split(",")]
            assert len(seen) == min(taken + limit, len(steps)) and left == len(steps) - len(seen)
            taken += limit
            if not left:
                break
        assert seen == [(entity, key) for entity, key, _ in steps], limit


def test_the_parts_fold_into_what_the_app_holds() -> None:
    runs = pull._difference(HELD, _listing(CURRENT))
    entries = pull.Entries([pull._whole(HELD), (0, pull._pack(runs))])
    back = pull.Entries.decode(entries.encode())
    assert back == entries and back.pending() == runs
    assert back.held(0) == HELD
    # Part of the way through: the two new users, then the two removals.
    halfway = back.held(4)
    assert halfway["company"] == dict(list(HELD["company"].items())[:2])
    assert halfway["user"] == dict(list(CURRENT["user"].items())[:2])
    assert halfway["activity"] == HELD["activity"]
    assert back.held(len(_steps(runs))) == CURRENT
    # The steps taken become a part of their own, as a listing stores them.
    again = pull.Entries([*back.parts[:-1], (5, back.parts[-1][1]), (0, pull._pack([]))])
    assert pull.Entries.decode(again.encode()) == again and again.held(0) == back.held(5)
    assert pull.Entries.decode(pull.Entries().encode()) == pull.Entries()
    seeded = pull.Entries.decode(pull._encode(HELD, [("deal", "x" * working_set.KEY_WIDTH, 2)]))
    assert seeded is not None and seeded.held(0) == HELD and seeded.held(1) == {**HELD, "deal": {"x" * 36: 2}}


@pytest.mark.asyncio
async def test_pages_after_the_first_write_nothing_and_a_cursor_can_be_taken_again(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    device = Device(await sign_in(client, tenant.rep))
    for i in range(5):
        await make_company(session, tenant.rep, name=f"Client {i}")
    first = await device.pull_page(client, limit=3)
    view, _, taken = first["cursor"].partition(".")
    assert taken == "3" and first["has_more"]
    second = await device.pull_page(client, limit=3)
    assert second["cursor"] == f"{view}.6"
    assert await session.scalar(sa.select(sa.func.count()).select_from(SyncView)) == 1
    # A lost response: the same cursor brings the same page.
    params = {"client_id": str(device.client_id), "limit": 3, "cursor": first["cursor"]}
    assert (await client.get(PULL, params=params, headers=device.headers)).json() == second
    await device.pull(client, limit=3)
    fresh = Device(device.headers)
    await fresh.pull(client)
    assert device.held() == fresh.held()
    for bad in (f"{view}.x", f"{view}.-1", f"{view}.99999", "x.1", f"{uuid.uuid4()}.1"):
        params["cursor"] = bad
        page = (await client.get(PULL, params=params, headers=device.headers)).json()
        assert page["reset_required"] and page["cursor"] is None, bad


@pytest.mark.asyncio
async def test_many_listings_fold_into_one_part_and_still_hold_the_same(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull, "MAX_PARTS", 2)
    tenant = await make_tenant(session, client)
    device = Device(await sign_in(client, tenant.rep))
    for i in range(5):
        await make_company(session, tenant.rep, name=f"Client {i}")
    for i in range(4):
        # A change in the middle of a run: the next page lists the set again, from where the app is.
        await device.pull_page(client, limit=4)
        await make_company(session, tenant.rep, name=f"Late {i}")
    await device.pull(client, limit=4)
    view, _, taken = (device.cursor or "").partition(".")
    stored = await session.scalar(sa.select(SyncView.entries).where(SyncView.id == uuid.UUID(view)))
    entries = pull.Entries.decode(stored or b"")
    assert entries is not None and len(entries.parts) <= 2 + 1
    fresh = Device(device.headers)
    await fresh.pull(client)
    assert device.held() == fresh.held() == entries.held(int(taken)) and len(device.held()["company"]) == 9


@pytest.mark.asyncio
async def test_a_view_of_an_earlier_format_starts_the_app_afresh(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    _tenant, _colleague, device, _mine = await _rep_with_a_client(session, client)
    await device.pull(client)
    # zlib'd JSON, as views were stored before; its cursor was the bare view id.
    await session.execute(sa.update(SyncView).values(entries=b"x\x01" + b"\x00" * 8))
    await session.commit()
    device.cursor = (device.cursor or "").partition(".")[0]
    page = await device.pull_page(client)
    assert page["reset_required"] and page["cursor"] is None
    await device.pull(client)
    assert len(device.held()["company"]) == 1


@pytest.mark.asyncio
async def test_a_view_made_from_a_listing_is_taken_up_by_its_bare_id(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    # As a bench seeds phones that have pulled already: the working set encoded as held, the view's id as cursor.
    tenant, _colleague, device, _mine = await _rep_with_a_client(session, client)
    viewer = await viewer_of_user(session, tenant.rep)
    since = working_set.window_start(utcnow())
    held = await working_set.members(session, viewer, since)
    seq = await session.scalar(sa.select(Organization.change_seq).where(Organization.id == tenant.org.id))
    view = SyncView(
        org_id=tenant.org.id,
        user_id=tenant.rep.id,
        client_id=device.client_id,
        change_seq=seq or 0,
        window_start=since,
        entries=pull._encode(held, []),
    )
    session.add(view)
    await session.commit()
    device.cursor = str(view.id)
    idle = await device.pull_page(client)
    assert idle["cursor"] == str(view.id) and not idle["has_more"] and not any(idle["put"].values())
    late = await make_company(session, tenant.rep, name="Late SA")
    page = await device.pull_page(client)
    assert [r["id"] for r in page["put"]["company"]] == [str(late.id)] and not page["has_more"]


class Listings:
    """Counts the working-set listings pulls make: whole, or among the records some changes touched."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.whole = 0
        self.among: list[dict[str, set[str]]] = []
        listing = working_set.listing

        async def counted(session: AsyncSession, viewer: Any, since: Any, among: Any = None) -> Any:
            if among is None:
                self.whole += 1
            else:
                self.among.append(among)
            return await listing(session, viewer, since, among)

        monkeypatch.setattr(working_set, "listing", counted)


async def _rep_with_a_client(session: AsyncSession, client: httpx.AsyncClient) -> tuple[Tenant, User, Device, Company]:
    """An organisation whose rep has a client and an app, and a colleague in the rep's team."""
    tenant = await make_tenant(session, client)
    colleague = await make_user(session, tenant.org, role=Role.rep, team=tenant.team)
    device = Device(await sign_in(client, tenant.rep))
    return tenant, colleague, device, await make_company(session, tenant.rep, name="Mine SA")


async def _views(session: AsyncSession) -> int:
    return await session.scalar(sa.select(sa.func.count()).select_from(SyncView)) or 0


@pytest.mark.asyncio
async def test_after_a_few_changes_only_the_records_they_touched_are_looked_up(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, colleague, device, mine = await _rep_with_a_client(session, client)
    await device.pull(client)
    listings, views = Listings(monkeypatch), await _views(session)

    # A colleague's new client and call: none of the app's business. Nothing is sent or written, and the cursor
    # says the view is current up to them.
    theirs = await make_company(session, colleague, name="Theirs SA")
    await make_activity(session, colleague, company_id=theirs.id)
    page = await device.pull_page(client)
    assert not any(page["put"].values()) and not any(page["remove"].values()) and not page["has_more"]
    view, taken, current = page["cursor"].split(".")
    seq = await session.scalar(sa.select(Organization.change_seq).where(Organization.id == tenant.org.id))
    assert int(current) == seq and await _views(session) == views
    assert listings.whole == 0 and listings.among[-1]["company"] == {str(theirs.id)}

    # The app's own client renamed, and a call logged on it: only they are sent, from a new view.
    renamed = await client.patch(f"/api/v1/companies/{mine.id}", json={"name": "Mine SL"}, headers=tenant.headers)
    assert renamed.status_code == 200, renamed.text
    call = await make_activity(session, tenant.admin, company_id=mine.id)
    page = await device.pull_page(client)
    assert [r["name"] for r in page["put"]["company"]] == ["Mine SL"]
    assert [r["id"] for r in page["put"]["activity"]] == [str(call.id)]
    assert page["cursor"].split(".")[0] != view and listings.whole == 0
    # The same cursor again (an answer lost on the way) gives the same page.
    again = await client.get(
        PULL, params={"client_id": str(device.client_id), "cursor": f"{view}.{taken}.{current}"}, headers=device.headers
    )
    assert again.json()["put"]["company"] == page["put"]["company"]

    # The app holds what a fresh pull brings.
    fresh = Device(device.headers)
    await fresh.pull(client)
    assert device.held() == fresh.held() and device.store == fresh.store


@pytest.mark.asyncio
async def test_a_change_that_moves_other_records_or_too_many_changes_list_the_set_again(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, colleague, device, mine = await _rep_with_a_client(session, client)
    contact = await make_contact(session, tenant.admin, name="Ana", company_id=mine.id, owner_id=colleague.id)
    await device.pull(client)
    listings = Listings(monkeypatch)

    # Given to the colleague: its contact (the colleague's, reached through it) leaves the app with it.
    moved = await client.patch(
        f"/api/v1/companies/{mine.id}", json={"owner_id": str(colleague.id)}, headers=tenant.headers
    )
    assert moved.status_code == 200, moved.text
    page = await device.pull_page(client)
    assert page["remove"]["company"] == [str(mine.id)] and page["remove"]["contact"] == [str(contact.id)]
    assert listings.whole == 1

    monkeypatch.setattr(pull, "MAX_CHANGES", 2)
    for i in range(3):
        await make_company(session, tenant.rep, name=f"New {i}")
    await device.pull(client)
    assert listings.whole == 2 and len(device.held()["company"]) == 3

    # A cursor that claims a change the organisation has not reached starts the app afresh.
    view, taken = (device.cursor or "").split(".")[:2]
    params = {"client_id": str(device.client_id), "cursor": f"{view}.{taken}.999999"}
    page = (await client.get(PULL, params=params, headers=device.headers)).json()
    assert page["reset_required"] and page["cursor"] is None


def test_the_change_log_knows_which_kinds_apps_hold() -> None:
    # Which apps a change pokes (api/core/changes.py `_poke`) follows what the working sets hold.
    reference = {synced.entity for synced in working_set.SYNCED if synced.reference}
    assert set(working_set.ENTITIES) - reference == changes.HELD_KINDS
    assert reference | {"share"} == changes.EVERY_APP_KINDS


@pytest.mark.asyncio
async def test_a_record_s_audience_is_whoever_may_hold_it(session: AsyncSession, client: httpx.AsyncClient) -> None:
    # The apps a change of a record pokes (GET /sync/events): the owners and assignees of the record and of what it
    # hangs off, and whom any of those is shared with.
    tenant, colleague, _device, mine = await _rep_with_a_client(session, client)
    outsider = await make_user(session, tenant.org, role=Role.rep, team=tenant.team)
    await share_with(session, tenant.rep, "company", mine.id, colleague)
    contact = await make_contact(session, tenant.admin, name="Ana", company_id=mine.id, owner_id=outsider.id)
    call = await make_activity(session, tenant.admin, contact_id=contact.id)
    org = tenant.org.id
    assert await working_set.audience(session, org, [call.id]) == {
        tenant.admin.id,
        outsider.id,
        tenant.rep.id,
        colleague.id,
    }
    assert await working_set.audience(session, org, [mine.id]) == {tenant.rep.id, colleague.id}
    theirs = await make_company(session, outsider, name="Theirs SA")
    assert await working_set.audience(session, org, [theirs.id, uuid.uuid4()]) == {outsider.id}
