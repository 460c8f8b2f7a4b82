"""The agenda over HTTP: your own planned work, overdue / today / upcoming, where "today" is the calendar day in the
requested time zone or the organisation's.

Due times are placed around the midnights of UTC, Madrid (ahead of UTC) and Mexico City (behind it), so that some
task is today in one zone and tomorrow in another whatever the hour the suite runs at; each zone's expected agenda
is worked out here from calendar dates."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.core.types import utcnow
from tests.factories import make_tenant, make_user, sign_in
from tests.feed.crm import ACTIVITIES, API, Headers, Json, ok, refused

pytestmark = pytest.mark.asyncio

AGENDA = f"{API}/me/agenda"
ZONES = ("UTC", "Europe/Madrid", "America/Mexico_City")
DAYS = 7


def _midnight_after(now: datetime, zone: ZoneInfo) -> datetime:
    return datetime.combine(now.astimezone(zone).date() + timedelta(days=1), time(), zone).astimezone(UTC)


def _bucket(due: datetime, now: datetime, zone: ZoneInfo, days: int = DAYS) -> str | None:
    if due < now:
        return "overdue"
    today: date = now.astimezone(zone).date()
    day = due.astimezone(zone).date()
    if day == today:
        return "today"
    return "upcoming" if day <= today + timedelta(days=days) else None


def _seen(agenda: Json) -> dict[str, list[str]]:
    return {name: [a["subject"] for a in agenda[name]] for name in ("overdue", "today", "upcoming")}


async def test_the_agenda_splits_your_plans_by_day_in_a_time_zone(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    theirs = await sign_in(client, colleague)
    now = utcnow()

    due: dict[str, datetime] = {"Chase payment": now - timedelta(hours=2), "Old promise": now - timedelta(days=40)}
    for name in ZONES:
        midnight = _midnight_after(now, ZoneInfo(name))
        for minutes in (-30, 30):
            if midnight + timedelta(minutes=minutes) > now + timedelta(minutes=1):
                due[f"{name} {minutes:+d}"] = midnight + timedelta(minutes=minutes)
    due["In three days"] = now + timedelta(days=3)
    due["Next month"] = now + timedelta(days=20)

    async def plan(headers: Headers, subject: str, at: datetime, **body: object) -> Json:
        created: Json = ok(
            await client.post(
                ACTIVITIES, json={"kind": "task", "subject": subject, "due_at": at.isoformat(), **body}, headers=headers
            ),
            201,
        )["activity"]
        return created

    for subject, at in due.items():
        await plan(rep, subject, at, kind="meeting" if subject == "In three days" else "task")
    # Not the rep's to do: done, deleted, a colleague's, or handed to the colleague.
    finished = await plan(rep, "Finished", now - timedelta(hours=1))
    ok(await client.post(f"{ACTIVITIES}/{finished['id']}/complete", headers=rep))
    dropped = await plan(rep, "Dropped", now + timedelta(hours=1))
    ok(await client.delete(f"{ACTIVITIES}/{dropped['id']}", headers=rep), 204)
    await plan(theirs, "Colleague's own", now + timedelta(minutes=5))
    await plan(rep, "Handed over", now + timedelta(minutes=5), assignee_id=str(colleague.id))
    # ... and one the colleague hands to the rep is.
    await plan(theirs, "Handed to me", now + timedelta(days=2), assignee_id=str(tenant.rep.id))
    due["Handed to me"] = now + timedelta(days=2)

    by_due = sorted(due.items(), key=lambda item: item[1])
    expected_by_zone = {}
    for name in ZONES:
        expected: dict[str, list[str]] = {"overdue": [], "today": [], "upcoming": []}
        for subject, at in by_due:
            bucket = _bucket(at, now, ZoneInfo(name))
            if bucket:
                expected[bucket].append(subject)
        expected_by_zone[name] = expected
        agenda = ok(await client.get(AGENDA, params={"tz": name}, headers=rep))
        assert agenda["time_zone"] == name
        assert _seen(agenda) == expected, name
        assert all(a["overdue"] for a in agenda["overdue"]) and not any(a["overdue"] for a in agenda["today"])
    # Some task is today in Madrid and tomorrow in UTC, or the other way round: the zone decides.
    assert expected_by_zone["UTC"] != expected_by_zone["Europe/Madrid"]
    assert expected_by_zone["UTC"] != expected_by_zone["America/Mexico_City"]
    assert "Old promise" in expected_by_zone["UTC"]["overdue"]
    assert not any("Next month" in subjects for subjects in expected_by_zone["UTC"].values())

    # Without a zone: the organisation's, UTC until an admin sets one.
    assert ok(await client.get(AGENDA, headers=rep))["time_zone"] == "UTC"
    org = await client.patch(
        f"{API}/organization", json={"settings": {"time_zone": "Europe/Madrid"}}, headers=tenant.headers
    )
    assert ok(org)["settings"]["time_zone"] == "Europe/Madrid"
    agenda = ok(await client.get(AGENDA, headers=rep))
    assert agenda["time_zone"] == "Europe/Madrid" and _seen(agenda) == expected_by_zone["Europe/Madrid"]
    # An explicit zone still wins.
    assert _seen(ok(await client.get(AGENDA, params={"tz": "UTC"}, headers=rep))) == expected_by_zone["UTC"]

    # A longer horizon reaches further.
    wide = ok(await client.get(AGENDA, params={"tz": "UTC", "days": 31}, headers=rep))
    assert "Next month" in _seen(wide)["upcoming"]

    # The colleague's agenda holds theirs and what was handed to them.
    colleague_agenda = _seen(ok(await client.get(AGENDA, headers=theirs)))
    assert sorted(s for subjects in colleague_agenda.values() for s in subjects) == ["Colleague's own", "Handed over"]


async def test_unknown_time_zones_are_refused(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    for tz in ("Mars/Olympus_Mons", "Europe/madrid ", "../etc/passwd", "+02:00"):
        problem = refused(await client.get(AGENDA, params={"tz": tz}, headers=rep), 422)
        assert [e.get("parameter") for e in problem["errors"]] == ["tz"], tz
    refused(await client.get(AGENDA, params={"days": 0}, headers=rep), 422)
    refused(await client.get(AGENDA, params={"days": 32}, headers=rep), 422)
    refused(
        await client.patch(
            f"{API}/organization", json={"settings": {"time_zone": "Mars/Olympus_Mons"}}, headers=tenant.headers
        ),
        422,
        "#/settings/time_zone",
    )
    assert ok(await client.get(AGENDA, headers=rep))["time_zone"] == "UTC"
