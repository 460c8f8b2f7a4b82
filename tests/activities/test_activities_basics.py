"""Activities through HTTP: log a call with its next step, complete and reopen a task, the agenda."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.ids import new_id
from tests.factories import make_tenant, sign_in

pytestmark = pytest.mark.asyncio


async def test_log_a_call_and_its_next_step_then_see_the_agenda(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    deal = (await client.post("/api/v1/deals", json={"title": "Fleet"}, headers=rep)).json()
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    follow_up_id = new_id()
    logged = await client.post(
        "/api/v1/activities",
        json={
            "kind": "call",
            "deal_id": deal["id"],
            "direction": "outbound",
            "outcome": "connected",
            "duration_seconds": 240,
            # An offline app names the follow-up itself, so it shows the task before it syncs.
            "next_step": {"id": str(follow_up_id), "subject": "Send the quote", "due_at": tomorrow},
        },
        headers=rep,
    )
    assert logged.status_code == 201, logged.text
    call, step = logged.json()["activity"], logged.json()["next_step"]
    assert call["subject"] == "Call" and call["done_at"] is not None
    assert step["id"] == str(follow_up_id) and call["next_step_id"] == step["id"]
    assert step["done_at"] is None and step["deal_id"] == deal["id"]

    refreshed = (await client.get(f"/api/v1/deals/{deal['id']}", headers=rep)).json()
    assert refreshed["last_activity_at"] is not None

    late = await client.post(
        "/api/v1/activities",
        json={"kind": "task", "subject": "Chase payment", "due_at": "2026-01-02T09:00:00Z"},
        headers=rep,
    )
    assert late.status_code == 201, late.text
    agenda = (await client.get("/api/v1/me/agenda?tz=Europe/Madrid", headers=rep)).json()
    assert [a["subject"] for a in agenda["overdue"]] == ["Chase payment"]
    assert agenda["overdue"][0]["overdue"] is True
    assert "Send the quote" in [a["subject"] for a in agenda["today"] + agenda["upcoming"]]

    task_id = late.json()["activity"]["id"]
    done = await client.post(f"/api/v1/activities/{task_id}/complete", headers=rep)
    assert done.status_code == 200 and done.json()["activity"]["done_at"] is not None
    again = await client.post(f"/api/v1/activities/{task_id}/reopen", headers=rep)
    assert again.status_code == 200 and again.json()["done_at"] is None

    bad = await client.post(
        "/api/v1/activities", json={"kind": "task", "subject": "x", "due_at": "next tuesday"}, headers=rep
    )
    assert bad.status_code == 422
    no_due = await client.post("/api/v1/activities", json={"kind": "task", "subject": "x"}, headers=rep)
    assert no_due.status_code == 422 and no_due.json()["errors"][0]["pointer"] == "#/due_at"
