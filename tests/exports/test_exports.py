"""Exports: the files cell by cell (CSV and XLSX read back), the same records as the list for the same filters, who
may export, what a manager's file holds, neutralised formulas, custom fields, Spanish headers, and rows read in
pages (a bounded number per statement, the file streamed before the last page is read)."""

import csv
import io
import tempfile
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth.models import Role
from api.clients import service as clients
from api.clients.models import Company, FieldKind
from api.clients.schemas import CustomFieldCreate
from api.clients.service import ClientFilters
from api.core.db import Database
from api.core.ids import new_id
from api.core.models import live
from api.core.tabular import csv_stream
from api.core.types import fold, utcnow
from api.deals import deals as deal_service
from api.deals.models import LostReason, Pipeline, Stage
from api.exports import service as exports
from api.exports.routes import language_of
from tests.auth.test_login import bearer
from tests.clients.crm import API, every_page
from tests.factories import (
    Tenant,
    make_activity,
    make_api_key,
    make_company,
    make_contact,
    make_deal,
    make_team,
    make_tenant,
    make_user,
    sign_in,
    system,
    viewer_of_user,
)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def export(client: httpx.AsyncClient, entity: str, headers: dict[str, str], **params: Any) -> httpx.Response:
    response = await client.get(f"{API}/exports/{entity}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


def read_csv(response: httpx.Response, delimiter: str = ",") -> list[list[str]]:
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(b"\xef\xbb\xbf"), "a byte-order mark, for Excel"
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline=""), delimiter=delimiter))


def read_xlsx(response: httpx.Response) -> Any:
    assert response.headers["content-type"] == XLSX
    return openpyxl.load_workbook(io.BytesIO(response.content)).active


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


async def add_field(session: AsyncSession, tenant: Tenant, entity: str, key: str, label: str, kind: FieldKind) -> None:
    await clients.create_custom_field(
        session=session,
        principal=system(tenant.org),
        data=CustomFieldCreate(entity=entity, key=key, label=label, kind=kind),
    )
    await session.commit()


async def lost_reason(session: AsyncSession, tenant: Tenant) -> LostReason:
    reason = (await session.scalars(live(LostReason, tenant.org.id))).first()
    assert reason is not None
    return reason


# The files, cell by cell


async def test_a_company_export_holds_the_record_its_owner_its_card_numbers_and_custom_fields(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    await add_field(session, tenant, "company", "tier", "Tier", FieldKind.text)
    await add_field(session, tenant, "company", "since", "Client since", FieldKind.date)
    await add_field(session, tenant, "company", "score", "Score", FieldKind.number)
    rep = tenant.rep
    company = await make_company(
        session,
        rep,
        name="Núñez & Co",
        domain="nunez.example",
        industry="Logistics",
        size=40,
        phone="+34 600 000 001",
        address="Calle Mayor 1",
        city="Madrid",
        country="ES",
        segment="retail",
        source="fair",
        tags=["vip", "north"],
        custom={"tier": "Gold", "since": "2024-05-01", "score": -4.5},
    )
    viewer = await viewer_of_user(session, rep)
    await make_deal(session, rep, title="Open", company_id=company.id, amount_minor=100_000)
    for amount, currency in ((250_000, "EUR"), (12_345, "EUR"), (99_900, "USD")):
        won = await make_deal(session, rep, title="Won", company_id=company.id, amount_minor=amount, currency=currency)
        await deal_service.win_deal(session=session, viewer=viewer, deal_id=won.id, expected_version=None)
    lost = await make_deal(session, rep, title="Lost", company_id=company.id, amount_minor=7_000)
    reason = await lost_reason(session, tenant)
    await deal_service.lose_deal(
        session=session, viewer=viewer, deal_id=lost.id, lost_reason_id=reason.id, note=None, expected_version=None
    )
    await session.commit()
    called = datetime(2026, 3, 2, 9, 30, 15, tzinfo=UTC)
    await make_activity(session, rep, kind="call", company_id=company.id, done_at=called)
    # Neither a note nor a planned meeting is a touch.
    await make_activity(session, rep, kind="note", company_id=company.id, done_at=called + timedelta(days=1))
    await make_activity(session, rep, kind="meeting", company_id=company.id, due_at=utcnow() + timedelta(days=2))
    await make_company(session, rep, name="Aardvark Ltd")

    response = await export(client, "companies", tenant.headers)

    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="fieldbook-companies-')
    assert "filename*=UTF-8''fieldbook-companies-" in disposition and disposition.endswith(".csv")
    assert response.headers["cache-control"] == "no-store"
    header, aardvark, row = read_csv(response)
    assert header == [
        "ID",
        "Name",
        "Domain",
        "Industry",
        "Employees",
        "Phone",
        "Address",
        "City",
        "Country",
        "Segment",
        "Source",
        "Tags",
        "Owner",
        "Owner e-mail",
        "Open deals",
        "Lifetime value",
        "Lifetime value currency",
        "Last touch",
        "Tier",
        "Client since",
        "Score",
        "Created",
        "Updated",
    ]
    assert aardvark[1] == "Aardvark Ltd", "by name, as the list"
    assert row == [
        str(company.id),
        "Núñez & Co",
        "nunez.example",
        "Logistics",
        "40",
        # A phone starts with "+": text that a spreadsheet would take for a formula.
        "'+34600000001",
        "Calle Mayor 1",
        "Madrid",
        "ES",
        "retail",
        "fair",
        "vip; north",
        rep.name,
        rep.email,
        "1",
        # Won in euros only (2,500.00 + 123.45): the USD deal is not converted.
        "2623.45",
        "EUR",
        iso(called),
        "Gold",
        "2024-05-01",
        # A number is not text: a negative one keeps its sign and gets no apostrophe.
        "-4.5",
        iso(company.created_at),
        iso(company.updated_at),
    ]


async def test_a_deal_export_in_xlsx_has_typed_cells_a_bold_frozen_header_and_no_temporary_file_left(
    session: AsyncSession, client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    tenant = await make_tenant(session, client)
    await add_field(session, tenant, "deal", "source_deal", "Origin", FieldKind.text)
    rep = tenant.rep
    company = await make_company(session, rep, name="Fleet Co")
    contact = await make_contact(session, rep, name="Ana Núñez", company_id=company.id)
    deal = await make_deal(
        session,
        rep,
        title="=1+1 Fleet",
        company_id=company.id,
        contact_id=contact.id,
        amount_minor=123_456,
        expected_close_on=date(2026, 12, 15),
        custom={"source_deal": "@mention"},
    )
    await deal_service.win_deal(
        session=session, viewer=await viewer_of_user(session, rep), deal_id=deal.id, expected_version=None
    )
    await session.commit()
    pipeline = (await session.scalars(live(Pipeline, tenant.org.id).where(col(Pipeline.is_default)))).one()
    stage = (await session.scalars(live(Stage, tenant.org.id).where(col(Stage.kind) == "won"))).one()

    sheet = read_xlsx(await export(client, "deals", tenant.headers, format="xlsx"))

    assert sheet.title == "Deals"
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.b for cell in sheet[1])
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 2
    assert list(rows[0]) == [
        "ID",
        "Title",
        "Company ID",
        "Company",
        "Contact ID",
        "Contact",
        "Pipeline",
        "Stage",
        "Status",
        "Amount",
        "Currency",
        "Expected close",
        "Rotten",
        "Last activity",
        "Won at",
        "Lost at",
        "Lost reason",
        "Lost note",
        "Owner",
        "Owner e-mail",
        "Origin",
        "Created",
        "Updated",
    ]
    values = rows[1]
    assert values[:9] == (
        str(deal.id),
        "=1+1 Fleet",
        str(company.id),
        "Fleet Co",
        str(contact.id),
        "Ana Núñez",
        pipeline.name,
        stage.name,
        "won",
    )
    assert values[9] == 1234.56 and values[10] == "EUR"
    assert values[11] == datetime(2026, 12, 15)
    assert values[12] is False and values[13] is None
    assert deal.won_at is not None and abs(values[14] - naive_utc(deal.won_at)) < timedelta(milliseconds=1)
    assert values[15:18] == (None, None, None)
    assert values[18:21] == (rep.name, rep.email, "@mention")
    assert abs(values[21] - naive_utc(deal.created_at)) < timedelta(milliseconds=1)
    cells = list(sheet[2])
    # Text is a string cell, never a formula; dates and amounts carry their formats.
    assert cells[1].data_type == "s" and cells[20].data_type == "s"
    assert cells[9].number_format == "#,##0.00"
    assert cells[11].number_format == "yyyy-mm-dd" and cells[14].number_format == "yyyy-mm-dd hh:mm:ss"
    assert not list(tmp_path.iterdir()), "the temporary workbook is deleted once sent"


async def test_contacts_and_activities_name_what_they_point_at(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = tenant.rep
    helper = await make_user(session, tenant.org, role=Role.rep, team=tenant.team)
    company = await make_company(session, rep, name="Fleet Co")
    contact = await make_contact(
        session,
        rep,
        name="Ana Núñez",
        title="Buyer",
        company_id=company.id,
        emails=["ana@fleet.example", "a.nunez@fleet.example"],
        phones=["+34 600 000 002"],
        email_consent=True,
    )
    deal = await make_deal(session, rep, title="Renewal", contact_id=contact.id)
    due = datetime(2030, 1, 2, 9, 0, tzinfo=UTC)
    task = await make_activity(
        session, rep, kind="task", subject="Send offer", deal_id=deal.id, assignee_id=helper.id, due_at=due
    )

    contacts = read_csv(await export(client, "contacts", tenant.headers))
    activities = read_csv(await export(client, "activities", tenant.headers))

    assert contacts[1][:15] == [
        str(contact.id),
        "Ana Núñez",
        "Buyer",
        str(company.id),
        "Fleet Co",
        "ana@fleet.example; a.nunez@fleet.example",
        "'+34600000002",
        "true",
        "false",
        "",
        "",
        "",
        rep.name,
        rep.email,
        "1",
    ]
    assert activities[0][8:12] == ["Deal ID", "Deal", "Due", "Done"]
    assert activities[1] == [
        str(task.id),
        "task",
        "Send offer",
        "",
        str(company.id),
        "Fleet Co",
        str(contact.id),
        "Ana Núñez",
        str(deal.id),
        "Renewal",
        iso(due),
        "",
        "",
        "",
        "",
        rep.name,
        rep.email,
        helper.name,
        helper.email,
        iso(task.created_at),
        iso(task.updated_at),
    ]


async def test_formulas_are_neutralised_in_csv_and_kept_as_text_in_xlsx(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    names = ['=HYPERLINK("http://evil.example","x")', "+1 cmd", "-2+3", "@SUM(A1)", "Plain - fine"]
    for index, name in enumerate(names):
        await make_company(session, tenant.rep, name=name, segment=f"s{index}")

    rows = read_csv(await export(client, "companies", tenant.headers))[1:]
    sheet = read_xlsx(await export(client, "companies", tenant.headers, format="xlsx"))

    exported = {row[9]: row[1] for row in rows}
    assert exported == {
        "s0": "'" + names[0],
        "s1": "'+1 cmd",
        "s2": "'-2+3",
        "s3": "'@SUM(A1)",
        "s4": "Plain - fine",
    }
    cells = {row[9].value: row[1] for row in sheet.iter_rows(min_row=2)}
    assert {segment: cell.value for segment, cell in cells.items()} == {f"s{i}": n for i, n in enumerate(names)}
    assert {cell.data_type for cell in cells.values()} == {"s"}


async def test_every_formula_start_is_neutralised_and_numbers_are_left_alone() -> None:
    """Names are trimmed on input, so tab and carriage return can only start other text: the writer itself."""
    cells = ["=1+1", "+1", "-1", "@x", "\tx", "\rx", "a=b", "", -5, Decimal("-2.50"), -1.5, None]

    async def rows() -> AsyncIterator[list[Any]]:
        yield cells

    written = b"".join([chunk async for chunk in csv_stream([f"c{i}" for i in range(len(cells))], rows())])

    assert next(iter(csv.reader(io.StringIO(written.decode("utf-8-sig").split("\r\n", 1)[1], newline="")))) == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@x",
        "'\tx",
        "'\rx",
        "a=b",
        "",
        "-5",
        "-2.50",
        "-1.5",
        "",
    ]


async def test_headers_are_spanish_with_lang_es_or_accept_language_and_semicolon_files_use_decimal_commas(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    await make_deal(session, tenant.rep, title="Flota", amount_minor=123_456)
    spanish = {**tenant.headers, "Accept-Language": "es-ES,es;q=0.9,en;q=0.8"}

    by_query = read_csv(await export(client, "deals", tenant.headers, lang="es", delimiter=";"), delimiter=";")
    by_header = read_csv(await export(client, "deals", spanish))
    english_first = {**tenant.headers, "Accept-Language": "en-GB,es;q=0.5"}
    english = read_csv(await export(client, "deals", english_first))
    overridden = read_csv(await export(client, "deals", spanish, lang="en"))
    sheet = read_xlsx(await export(client, "companies", spanish, format="xlsx"))

    assert by_query[0][:4] == ["ID", "Título", "ID de la empresa", "Empresa"]
    assert by_query[0][6:12] == ["Embudo", "Etapa", "Estado", "Importe", "Moneda", "Cierre previsto"]
    assert by_query[1][9] == "1234,56", "Excel set to Spanish reads 1234.56 as a date"
    assert by_header[0] == by_query[0]
    assert by_header[1][9] == "1234.56"
    assert english[0][1] == "Title" and overridden[0][1] == "Title"
    assert sheet.title == "Empresas" and sheet["B1"].value == "Nombre"


# The same records as the list


async def _sales_org(session: AsyncSession, client: httpx.AsyncClient) -> dict[str, Any]:
    """An organisation with a manager over two reps (one in a sub-team), a rep of another team, and records of each:
    ties on names, tags, segments, deals in every status and stage, planned and done activities."""
    tenant = await make_tenant(session, client)
    org = tenant.org
    sub = await make_team(session, org, name="North", parent=tenant.team)
    other_team = await make_team(session, org, name="South")
    manager = await make_user(session, org, role=Role.manager, team=tenant.team)
    reps = [tenant.rep, await make_user(session, org, team=sub), await make_user(session, org, team=other_team)]
    companies, contacts, deals = [], [], []
    for index, owner in enumerate(reps * 2):
        company = await make_company(
            session,
            owner,
            name=["Acme", "Acme", "Beta Ñandú", "Ácaro", "Zeta", "Acme"][index],
            tags=["vip"] if index % 2 else [],
            segment="retail" if index < 3 else "wholesale",
        )
        companies.append(company)
        contacts.append(await make_contact(session, owner, name=f"Contact {index % 3}", company_id=company.id))
    viewer_of = {rep.id: await viewer_of_user(session, rep) for rep in reps}
    reason = await lost_reason(session, tenant)
    for index, (company, contact) in enumerate(zip(companies, contacts, strict=True)):
        owner_id = company.owner_id
        owner = next(r for r in reps if r.id == owner_id)
        deal = await make_deal(
            session,
            owner,
            title=f"Fleet {index}" if index % 2 else f"Vans {index}",
            company_id=company.id,
            contact_id=contact.id if index % 3 else None,
            amount_minor=1000 * index,
            expected_close_on=date(2026, 1 + index, 1),
        )
        deals.append(deal)
        viewer = viewer_of[owner_id]
        if index == 1:
            await deal_service.win_deal(session=session, viewer=viewer, deal_id=deal.id, expected_version=None)
        if index == 2:
            await deal_service.lose_deal(
                session=session,
                viewer=viewer,
                deal_id=deal.id,
                lost_reason_id=reason.id,
                note=None,
                expected_version=None,
            )
        await session.commit()
        await make_activity(session, owner, kind="call", deal_id=deal.id)
        await make_activity(session, owner, kind="task", company_id=company.id, due_at=utcnow() + timedelta(days=1))
    binned = await make_company(session, reps[0], name="Binned")
    await clients.delete_client(
        session=session,
        viewer=viewer_of[reps[0].id],
        spec=clients.COMPANY,
        client_id=binned.id,
        expected_version=None,
        present=repr,
    )
    await session.commit()
    return {
        "tenant": tenant,
        "manager": manager,
        "reps": reps,
        "companies": companies,
        "contacts": contacts,
        "deals": deals,
    }


def _filters(world: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    reps, companies, contacts, deals = world["reps"], world["companies"], world["contacts"], world["deals"]
    return [
        ("companies", {}),
        ("companies", {"q": "ac"}),
        ("companies", {"tag": "vip", "segment": "retail"}),
        ("companies", {"owner_id": str(reps[1].id)}),
        ("companies", {"deleted": "true"}),
        ("contacts", {}),
        ("contacts", {"company_id": str(companies[0].id)}),
        ("contacts", {"q": "contact 1", "owner_id": str(reps[0].id)}),
        ("deals", {}),
        ("deals", {"status": "won"}),
        ("deals", {"stage_id": str(deals[0].stage_id), "q": "vans"}),
        ("deals", {"close_from": "2026-02-01", "close_to": "2026-04-30", "rotten": "false"}),
        ("deals", {"company_id": str(companies[4].id), "contact_id": str(contacts[4].id)}),
        ("deals", {"pipeline_id": str(deals[0].pipeline_id), "owner_id": str(reps[2].id)}),
        ("activities", {}),
        ("activities", {"kind": "call"}),
        ("activities", {"planned": "true", "assignee_id": str(reps[1].id)}),
        ("activities", {"deal_id": str(deals[3].id)}),
        ("activities", {"company_id": str(companies[0].id), "planned": "false"}),
    ]


@pytest.fixture
async def sales(session: AsyncSession, client: httpx.AsyncClient) -> dict[str, Any]:
    return await _sales_org(session, client)


@pytest.mark.parametrize("caller", ["admin", "manager"])
async def test_an_export_holds_what_the_list_shows_for_the_same_filters_in_the_same_order(
    client: httpx.AsyncClient, sales: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caller: str
) -> None:
    # Pages of two rows: every export here reads several, with ties on names across page boundaries.
    monkeypatch.setattr(exports, "PAGE_SIZE", 2)
    headers = sales["tenant"].headers if caller == "admin" else await sign_in(client, sales["manager"])

    for entity, params in _filters(sales):
        listed = [item["id"] for item in await every_page(client, f"/{entity}", headers, limit=2, **params)]
        exported = [row[0] for row in read_csv(await export(client, entity, headers, **params))[1:]]
        assert exported == listed, f"{entity} {params}"
        assert listed or params, f"{entity}: the data set leaves the unfiltered list empty"


async def test_a_managers_export_holds_their_subtree_only_and_names_only_what_they_see(
    client: httpx.AsyncClient, sales: dict[str, Any]
) -> None:
    headers = await sign_in(client, sales["manager"])
    reps = sales["reps"]
    subtree = {str(reps[0].id), str(reps[1].id)}
    names = {rep.name for rep in reps[:2]}

    rows = read_csv(await export(client, "companies", headers))[1:]
    deals = read_csv(await export(client, "deals", headers))[1:]

    assert {row[0] for row in rows} == {str(c.id) for c in sales["companies"] if str(c.owner_id) in subtree}
    assert {row[12] for row in rows} == names
    assert {row[18] for row in deals} == names
    assert reps[2].name not in (await export(client, "activities", headers)).text


async def test_a_contact_of_a_company_the_viewer_cannot_see_shows_its_id_but_not_its_name(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    manager = await make_user(session, tenant.org, role=Role.manager, team=tenant.team)
    outsider = await make_user(session, tenant.org, role=Role.rep)
    hidden = await make_company(session, outsider, name="Hidden Holdings")
    # Filed by an admin, who sees every company, for the manager's rep.
    contact = await make_contact(
        session, tenant.admin, name="Visible Person", company_id=hidden.id, owner_id=tenant.rep.id
    )

    response = await export(client, "contacts", await sign_in(client, manager))

    rows = read_csv(response)[1:]
    assert [(r[0], r[3], r[4]) for r in rows] == [(str(contact.id), str(hidden.id), "")]
    assert "Hidden Holdings" not in response.text


# Who may export


async def test_reps_may_not_export_and_marketing_may_not_export_activities(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    await make_company(session, tenant.rep, name="Acme")
    rep = await sign_in(client, tenant.rep)
    marketing = await sign_in(client, await make_user(session, tenant.org, role=Role.marketing))

    for entity in ("companies", "contacts", "deals", "activities"):
        refused = await client.get(f"{API}/exports/{entity}", headers=rep)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        expected = "Exports are for managers, admins and marketing."
        if entity == "activities":
            expected = "Exports of activities are for managers and admins (marketing exports companies, contacts "
            expected += "and deals)."
        assert refused.json()["detail"] == expected
    assert (await client.get(f"{API}/exports/activities", headers=marketing)).status_code == 403
    rows = read_csv(await export(client, "companies", marketing))
    assert [r[1] for r in rows[1:]] == ["Acme"], "marketing exports every client"
    for entity in ("contacts", "deals"):
        await export(client, entity, marketing)


async def test_an_api_key_exports_what_its_read_scopes_name(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    company = await make_company(session, tenant.rep, name="Acme")
    await make_deal(session, tenant.rep, title="Open", company_id=company.id)
    await make_activity(session, tenant.rep, kind="call", company_id=company.id)
    _, secret = await make_api_key(session, tenant.org, "clients:read")
    key = bearer(secret)

    rows = read_csv(await export(client, "companies", key))
    deals = await client.get(f"{API}/exports/deals", headers=key)
    mine = await client.get(f"{API}/exports/companies", params={"owner_id": "me"}, headers=key)

    # Without deals:read and activities:read, the card's numbers stay empty, as on the card.
    assert rows[1][14:18] == ["", "", "", ""]
    assert deals.status_code == 403 and "deals:read" in deals.json()["detail"]
    assert mine.status_code == 422, mine.text
    _, everything = await make_api_key(session, tenant.org, "clients:read", "deals:read", "activities:read")
    assert read_csv(await export(client, "companies", bearer(everything)))[1][14:16] == ["1", "0.00"]


async def test_bad_options_are_422(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)

    for params in ({"format": "pdf"}, {"delimiter": "|"}, {"lang": "fr"}, {"status": "maybe"}):
        response = await client.get(f"{API}/exports/deals", params=params, headers=tenant.headers)
        assert response.status_code == 422, (params, response.text)


# Pages, not the whole table


async def _bulk_companies(session: AsyncSession, tenant: Tenant, count: int) -> None:
    """`count` companies in one statement (the services would take minutes): the export reads them, nothing else."""
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "org_id": tenant.org.id,
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "name": f"Bulk {i:05d}",
            "name_folded": fold(f"Bulk {i:05d}"),
            "owner_id": tenant.rep.id,
            "tags": ["bulk"],
            "custom": {},
        }
        for i in range(count)
    ]
    await session.execute(sa.insert(sa.inspect(Company).local_table), rows)
    await session.commit()


def _count_pages(db: Database) -> list[str]:
    """The page statements the export runs on the app's database, as they run."""
    pages: list[str] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "page AS" in statement:
            pages.append(statement)

    return pages


async def _chunks(db: Database, tenant: Tenant) -> AsyncIterator[bytes]:
    """The admin's companies export, as the response would send it."""
    async with db.reader() as session:
        prepared = await exports.prepare(
            session=session,
            reader=db.reader,
            viewer=await viewer_of_user(session, tenant.admin),
            export=exports.COMPANIES,
            filters=ClientFilters(),
            language="en",
            extension="csv",
        )
    async for chunk in csv_stream(prepared.headers, prepared.rows):
        yield chunk


async def test_rows_are_read_in_pages_and_sent_before_the_last_page_is_read(
    session: AsyncSession, client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant(session, client)
    await _bulk_companies(session, tenant, 5_000)
    monkeypatch.setattr(exports, "PAGE_SIZE", 500)
    pages = _count_pages(db)
    body, pages_read = [], []

    async for chunk in _chunks(db, tenant):
        body.append(chunk)
        pages_read.append(len(pages))

    rows = list(csv.reader(io.StringIO(b"".join(body).decode("utf-8-sig"), newline="")))[1:]
    assert [r[1] for r in rows] == [f"Bulk {i:05d}" for i in range(5_000)]
    # Ten full pages, and the empty one that says the list has ended: one statement each.
    assert len(pages) == 11
    # The header left before any page was read, the first rows (a 64 KiB piece) after one or two of the eleven.
    assert pages_read[0] == 0 and 1 <= pages_read[1] <= 2


async def _peak(db: Database, tenant: Tenant) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async for _ in _chunks(db, tenant):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_memory_does_not_grow_with_the_number_of_rows(
    session: AsyncSession, client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant(session, client)
    monkeypatch.setattr(exports, "PAGE_SIZE", 250)
    await _bulk_companies(session, tenant, 1_000)
    await _peak(db, tenant)  # compiles and caches the statements, which any later export reuses
    small = await _peak(db, tenant)
    await _bulk_companies(session, tenant, 4_000)

    large = await _peak(db, tenant)

    # Five times the rows: were they held, the peak would be about five times as high.
    assert large < small * 1.5, (small, large)


def test_an_unknown_accept_language_is_english() -> None:
    assert language_of(None) == "en"
    assert language_of("fr-FR,de;q=0.8") == "en"
    assert language_of("fr-FR,es;q=0.3") == "es"
    assert language_of("es;q=0.2,en;q=0.7") == "en"
    assert language_of("es;q=garbled, en-US") == "en"


async def test_owner_ids_of_nobody_export_nothing(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    await make_company(session, tenant.rep, name="Acme")

    rows = read_csv(await export(client, "companies", tenant.headers, owner_id=str(uuid.uuid4())))

    assert len(rows) == 1
