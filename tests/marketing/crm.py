"""A small client base for the marketing tests: companies with consenting and non-consenting contacts, lone
contacts, won and open deals in two currencies, and the callers that read it."""

import csv
import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role, User
from api.clients.models import Company, Contact
from api.deals import deals as deal_service
from api.deals.models import Deal
from tests.auth.test_login import bearer
from tests.clients.crm import API
from tests.factories import (
    Tenant,
    make_api_key,
    make_company,
    make_contact,
    make_deal,
    make_tenant,
    make_user,
    sign_in,
    viewer_of_user,
)

CARDS = f"{API}/client-cards"
EXPORT = f"{API}/client-cards/export"
SEGMENTS = f"{API}/segments"


@dataclass(frozen=True)
class Base:
    tenant: Tenant
    marketing: dict[str, str]
    # A key with `clients:read` only, and one with `deals:read` too.
    clients_key: dict[str, str]
    cards_key: dict[str, str]
    alfa: Company
    beta: Company
    gamma: Company
    ana: Contact  # Alfa's: e-mail consent
    bruno: Contact  # Alfa's: no consent
    carla: Contact  # Alfa's: phone consent only
    dora: Contact  # Beta's: both
    eva: Contact  # lone, e-mail consent
    fede: Contact  # lone, no consent
    orphan: Contact  # of a deleted company, phone consent

    @property
    def readers(self) -> dict[str, dict[str, str]]:
        return {"admin": self.tenant.headers, "marketing": self.marketing, "key": self.cards_key}


def secrets_of_refusers(base: Base) -> list[str]:
    """What no marketing answer may hold: the contacts without consent, and the handles of channels not agreed to."""
    return [
        base.bruno.name,
        *base.bruno.emails,
        *base.bruno.phones,
        base.fede.name,
        *base.fede.emails,
        *base.fede.phones,
        *base.ana.phones,
        *base.carla.emails,
        *base.eva.phones,
    ]


async def won(
    session: AsyncSession, owner: User, at: datetime, amount: int, currency: str = "EUR", **refs: Any
) -> Deal:
    deal = await make_deal(
        session, owner, title=f"Won {uuid.uuid4().hex[:6]}", amount_minor=amount, currency=currency, **refs
    )
    viewer = await viewer_of_user(session, owner)
    await deal_service.win_deal(session=session, viewer=viewer, deal_id=deal.id, expected_version=None)
    await session.execute(sa.update(Deal).where(Deal.id == deal.id).values(won_at=at))  # type: ignore[arg-type]
    await session.commit()
    return deal


async def make_base(session: AsyncSession, client: httpx.AsyncClient, name: str = "Acme") -> Base:
    tenant = await make_tenant(session, client, name)
    rep = tenant.rep
    slug = name.lower().replace(" ", "")
    marketer = await make_user(session, tenant.org, role=Role.marketing)
    alfa = await make_company(
        session, rep, name=f"Alfa Logística {name}", industry="Logistics", tags=["vip", "feria-2026"], segment="smb"
    )
    beta = await make_company(
        session, rep, name=f"Beta Retail {name}", industry="Retail", tags=["feria-2025"], segment="enterprise"
    )
    gamma = await make_company(session, rep, name=f"Gamma {name}", industry="Logistics")
    gone = await make_company(session, rep, name=f"Gone {name}")

    numbers = iter(range(1000, 10000, 7))

    def person(first: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": f"{first} {name}",
            "emails": [f"{first.lower()}@{slug}.example"],
            "phones": [f"+3461{len(slug) % 10}00{next(numbers):04d}"],
            **fields,
        }

    ana = await make_contact(session, rep, company_id=alfa.id, email_consent=True, **person("Ana", title="Buyer"))
    bruno = await make_contact(session, rep, company_id=alfa.id, **person("Bruno"))
    carla = await make_contact(session, rep, company_id=alfa.id, phone_consent=True, **person("Carla"))
    dora = await make_contact(
        session, rep, company_id=beta.id, email_consent=True, phone_consent=True, **person("Dora")
    )
    eva = await make_contact(session, rep, email_consent=True, tags=["vip"], **person("Eva"))
    fede = await make_contact(session, rep, tags=["vip"], **person("Fede"))
    orphan = await make_contact(session, rep, company_id=gone.id, phone_consent=True, **person("Olga"))
    await session.execute(sa.update(Company).where(Company.id == gone.id).values(deleted_at=datetime.now(UTC)))  # type: ignore[arg-type]
    await session.commit()

    await won(session, rep, datetime(2025, 6, 1, 10, tzinfo=UTC), 100000, company_id=alfa.id)
    await won(session, rep, datetime(2025, 3, 1, 10, tzinfo=UTC), 50000, "USD", company_id=alfa.id)
    await won(session, rep, datetime(2026, 2, 1, 10, tzinfo=UTC), 30000, company_id=beta.id)
    await make_deal(session, rep, title="Beta open", amount_minor=99, company_id=beta.id)
    await won(session, rep, datetime(2024, 12, 31, 23, tzinfo=UTC), 5000, contact_id=eva.id)
    _, clients_key = await make_api_key(session, tenant.org, "clients:read")
    _, cards_key = await make_api_key(session, tenant.org, "clients:read", "deals:read")
    return Base(
        tenant,
        await sign_in(client, marketer),
        bearer(clients_key),
        bearer(cards_key),
        alfa,
        beta,
        gamma,
        ana,
        bruno,
        carla,
        dora,
        eva,
        fede,
        orphan,
    )


async def cards(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every card of the list, page after page (checking each page promises more only when full)."""
    items: list[dict[str, Any]] = []
    cursor = None
    limit = int(params.get("limit", 50))
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(CARDS, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        assert page["next_cursor"] is None or len(page["items"]) == limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def names(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    return [c["name"] for c in await cards(client, headers, **params)]


async def ndjson(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = await client.get(EXPORT, params={"format": "ndjson", **params}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.text.splitlines()]


async def csv_rows(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, str]]:
    response = await client.get(EXPORT, params={"format": "csv", **params}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
