"""The defects a review found in imports, each shown fixed through HTTP on both databases (the fuzzy pool alone
without one): deleted custom fields, phases stopped half-way, reference resolution, cells right of the header,
long headers, NUL characters, deal quantities and currencies, phones and e-mails, dates read per column, an undo
that meets an edit, and company names past the fuzzy full-scan limit."""

import csv
import io
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.imports import runner
from api.imports.refs import FULL_SCAN, Choices
from tests.clients.crm import API, created, set_region
from tests.factories import Tenant, make_company, make_tenant
from tests.imports.flow import (
    adds_up,
    assert_balanced,
    csv_bytes,
    differences,
    mapped,
    rows,
    run,
    snapshot,
    uploaded,
)


async def get(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> Any:
    response = await client.get(f"{API}{path}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def decide(client: httpx.AsyncClient, headers: dict[str, str], job_id: str, **body: Any) -> Any:
    response = await client.put(f"{API}/imports/{job_id}/values", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def one_step(client: httpx.AsyncClient, headers: dict[str, str], job_id: str, phase: str) -> Any:
    """One call of a phase that must leave it running (202): the job as it stopped."""
    response = await client.post(f"{API}/imports/{job_id}/{phase}", headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def one_row_per_call(monkeypatch: pytest.MonkeyPatch, batch: int = 1) -> None:
    """Each call of a phase works through one batch of `batch` rows and stops, as a slow or interrupted one does."""
    monkeypatch.setattr(runner, "BATCH", batch)
    monkeypatch.setattr(runner, "BUDGET_SECONDS", 0)


async def report(client: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> list[dict[str, str]]:
    response = await client.get(f"{API}/imports/{job_id}/report", params={"format": "csv"}, headers=headers)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


async def imported_job(
    client: httpx.AsyncClient, tenant: Tenant, entity: str, content: bytes, columns: dict[str, Any] | None = None
) -> tuple[Any, dict[int, Any]]:
    """A file mapped (as its headers suggest, or to `columns`), dry run and imported: the job and its rows."""
    job = await uploaded(client, tenant.headers, entity, content)
    job = await mapped(client, tenant.headers, job, job["mapping"] if columns is None else columns)
    previewed = await run(client, tenant.headers, job["id"], "preview")
    assert_balanced(previewed, "planned")
    done = await run(client, tenant.headers, job["id"], "commit")
    assert done["status"] == "imported"
    assert_balanced(done, "counts")
    return done, await rows(client, tenant.headers, job["id"])


# 1. Jobs that cannot run as mapped, and dry runs stopped half-way


@pytest.mark.asyncio
async def test_a_job_mapped_to_a_since_deleted_custom_field_is_refused_at_its_column_and_can_be_remapped(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    zone = await created(
        client, "/custom-fields", {"entity": "company", "key": "zone", "label": "Zone", "kind": "text"}, admin
    )
    job = await uploaded(client, admin, "company", csv_bytes([["Name", "Zone"], ["Globex", "North"]]))
    job = await mapped(client, admin, job, {"Name": "name", "Zone": "custom.zone"})
    deleted = await client.delete(f"{API}/custom-fields/{zone['id']}", headers=admin)
    assert deleted.status_code == 204, deleted.text

    refused = await client.post(f"{API}/imports/{job['id']}/preview", headers=admin)
    assert refused.status_code == 409, refused.text
    assert refused.json()["errors"][0]["pointer"] == "#/columns/Zone"
    assert (await get(client, admin, f"/imports/{job['id']}"))["status"] == "mapping"

    remapped = await client.put(
        f"{API}/imports/{job['id']}/mapping", json={"columns": {"Name": "name", "Zone": None}}, headers=admin
    )
    assert remapped.status_code == 200, remapped.text
    assert remapped.json()["mapping"] == {"Name": "name"}
    previewed = await run(client, admin, job["id"], "preview")
    assert (previewed["status"], previewed["planned"]) == ("previewed", {"create": 1})


@pytest.mark.asyncio
async def test_a_dry_run_stopped_half_way_can_be_remapped_and_discarded(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    content = csv_bytes([["Name", "Website"], ["Globex", "globex.com"], ["Initech", "initech.com"], ["Hooli", ""]])
    job = await uploaded(client, admin, "company", content)
    job = await mapped(client, admin, job, job["mapping"])
    one_row_per_call(monkeypatch)

    stopped = await one_step(client, admin, job["id"], "preview")
    assert (stopped["status"], stopped["rows_done"]) == ("previewing", 1)
    remapped = await client.put(
        f"{API}/imports/{job['id']}/mapping", json={"columns": {"Name": "name", "Website": None}}, headers=admin
    )
    assert remapped.status_code == 200, remapped.text
    assert (remapped.json()["status"], remapped.json()["mapping"]) == ("mapping", {"Name": "name"})

    stopped = await one_step(client, admin, job["id"], "preview")
    assert stopped["status"] == "previewing"
    discarded = await client.delete(f"{API}/imports/{job['id']}", headers=admin)
    assert discarded.status_code == 204, discarded.text
    assert (await client.get(f"{API}/imports/{job['id']}", headers=admin)).status_code == 404


# 2. An import stopped half-way


@pytest.mark.asyncio
async def test_an_import_stopped_half_way_can_be_undone_back_to_how_the_database_was(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    await make_company(session, tenant.rep, name="Globex", domain="globex.com")
    before = await snapshot(session, tenant.org.id)
    content = csv_bytes(
        [
            ["Name", "Email", "Company"],
            ["Ana", "ana@x.es", "Nueva SL"],
            ["Bea", "bea@x.es", "Globex"],
            ["Caro", "caro@x.es", "Otra SA"],
            ["Dan", "dan@x.es", "Nueva SL"],
        ]
    )
    job = await uploaded(client, admin, "contact", content)
    job = await mapped(client, admin, job, {"Name": "name", "Email": "emails", "Company": "company"})
    await decide(client, admin, job["id"], defaults={"company": "create"})
    one_row_per_call(monkeypatch)

    await one_step(client, admin, job["id"], "commit")
    stopped = await one_step(client, admin, job["id"], "commit")
    assert (stopped["status"], stopped["rows_done"]) == ("importing", 2)
    assert len(differences(before, await snapshot(session, tenant.org.id))) >= 3  # 2 contacts and a company

    undone = await run(client, admin, job["id"], "undo")
    assert undone["status"] == "undone"
    assert differences(before, await snapshot(session, tenant.org.id)) == []
    assert await snapshot(session, tenant.org.id) == before


# 3-4. References


@pytest.mark.asyncio
async def test_a_company_named_exactly_is_linked_even_after_a_row_created_one_with_the_same_core_name(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    """'Acme Group' and 'Acme Inc' share the core name 'acme': the company created for the first must not capture
    the second, which names an existing company exactly."""
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    acme = await make_company(session, tenant.rep, name="Acme Inc")
    content = csv_bytes(
        [["Name", "Email", "Company"], ["Ann", "ann@x.es", "Acme Group"], ["Bob", "bob@x.es", "Acme Inc"]]
    )
    job = await uploaded(client, admin, "contact", content)
    job = await mapped(client, admin, job, {"Name": "name", "Email": "emails", "Company": "company"})
    await decide(client, admin, job["id"], defaults={"company": "create"})
    await run(client, admin, job["id"], "preview")
    done = await run(client, admin, job["id"], "commit")
    assert done["counts"] == {"create": 2}
    found = await rows(client, admin, job["id"])

    ann = await get(client, admin, f"/contacts/{found[2]['record_id']}")
    bob = await get(client, admin, f"/contacts/{found[3]['record_id']}")
    assert bob["company_id"] == str(acme.id)
    assert ann["company_id"] not in (None, str(acme.id))
    assert (await get(client, admin, f"/companies/{ann['company_id']}"))["name"] == "Acme Group"
    companies = (await get(client, admin, "/companies?limit=200"))["items"]
    assert sorted(c["name"] for c in companies) == ["Acme Group", "Acme Inc"]


@pytest.mark.asyncio
async def test_a_field_default_does_not_decide_for_a_value_that_names_several_records(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    first = await make_company(session, tenant.rep, name="Acme")
    await make_company(session, tenant.rep, name="Acme")
    job = await uploaded(
        client, admin, "contact", csv_bytes([["Name", "Email", "Company"], ["Ann", "ann@x.es", "Acme"]])
    )
    job = await mapped(client, admin, job, {"Name": "name", "Email": "emails", "Company": "company"})

    job = await decide(client, admin, job["id"], defaults={"company": "create"})
    assert job["undecided"] == 1
    refused = await client.post(f"{API}/imports/{job['id']}/commit", headers=admin)
    assert refused.status_code == 409, refused.text
    assert refused.json()["undecided"] == 1

    job = await decide(
        client,
        admin,
        job["id"],
        decisions=[{"field": "company", "value": "Acme", "action": "map", "target_id": str(first.id)}],
    )
    assert job["undecided"] == 0
    await run(client, admin, job["id"], "preview")
    done = await run(client, admin, job["id"], "commit")
    assert done["counts"] == {"create": 1}
    ann = await get(client, admin, f"/contacts/{(await rows(client, admin, job['id']))[2]['record_id']}")
    assert ann["company_id"] == str(first.id)
    companies = (await get(client, admin, "/companies?limit=200"))["items"]
    assert [c["name"] for c in companies] == ["Acme", "Acme"], "no third Acme"


# 5-7. Reading the file


@pytest.mark.asyncio
async def test_values_right_of_the_last_titled_column_are_kept_reported_and_can_be_imported(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    job = await uploaded(
        client, admin, "contact", csv_bytes([["Name", "Email"], ["Ann", "ann@x.es", "+34 600 123 456"]])
    )
    assert job["headers"] == ["Name", "Email", "Column C"]
    [line] = await report(client, admin, job["id"])
    # The report writes a text starting with "+" behind a quote, so a spreadsheet does not take it for a formula.
    assert (line["Name"], line["Column C"]) == ("Ann", "'+34 600 123 456")

    job = await mapped(client, admin, job, {"Name": "name", "Email": "emails", "Column C": "phones"})
    await run(client, admin, job["id"], "preview")
    done = await run(client, admin, job["id"], "commit")
    assert done["counts"] == {"create": 1}
    ann = await get(client, admin, f"/contacts/{(await rows(client, admin, job['id']))[2]['record_id']}")
    assert (ann["emails"], ann["phones"]) == (["ann@x.es"], ["+34600123456"])


@pytest.mark.asyncio
async def test_a_header_longer_than_200_characters_is_cut_to_200_and_can_be_mapped(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    """Headers travel back as mapping keys, which take at most 255 characters."""
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    long = "Notes " + "x" * 294
    job = await uploaded(client, admin, "company", csv_bytes([["Name", long], ["Globex", "a note"]]))
    assert job["headers"] == ["Name", long[:200]]

    remapped = await client.put(
        f"{API}/imports/{job['id']}/mapping",
        json={"columns": {"Name": "name", long[:200]: "industry"}},
        headers=admin,
    )
    assert remapped.status_code == 200, remapped.text
    assert remapped.json()["mapping"] == {"Name": "name", long[:200]: "industry"}


@pytest.mark.asyncio
async def test_a_nul_character_past_the_sniffed_start_of_a_csv_rejects_its_row_and_not_the_upload(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    """The first 64 KiB are sniffed for binary content; a NUL after them reached PostgreSQL's JSON, which refuses it.
    (Wide rows get past 64 KiB with a hundred of them, which keeps the dry run quick.)"""
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    padding = "p" * 600
    good = [[f"Company {i}", padding] for i in range(120)]
    content = csv_bytes([["Name", "Notes"], *good, ["Bad\x00Name", padding]])
    assert content.index(b"\x00") > 64 * 1024

    job = await uploaded(client, admin, "company", content)
    assert job["rows_total"] == 121
    job = await mapped(client, admin, job, {"Name": "name", "Notes": None})
    previewed = await run(client, admin, job["id"], "preview")
    assert previewed["planned"] == {"create": 120, "reject": 1}
    assert adds_up(previewed, "planned") and previewed["balanced"]
    bad = (await rows(client, admin, job["id"]))[122]
    assert (bad["planned"], bad["column"]) == ("reject", "Name")
    assert "NUL" in bad["reason"]


# 8. Deals


@pytest.mark.asyncio
async def test_deal_quantities_must_divide_the_amount_currencies_must_agree_and_open_deals_drop_closing_dates(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    product = await created(client, "/products", {"name": "Pro Plan", "price_minor": 90000}, admin)
    header = ["Title", "Product", "Quantity", "Amount", "Currency", "Closed on"]
    content = csv_bytes(
        [
            header,
            ["Three", "Pro Plan", "3", "100,00", "", ""],  # 2: 100,00 is not 3 units of a whole price
            ["Zero", "Pro Plan", "0", "100,00", "", ""],  # 3
            ["Two", "Pro Plan", "2", "100,00", "", ""],  # 4
            ["Dollars", "", "", "USD 1,000.00", "EUR", ""],  # 5
            ["Open", "", "", "", "", "15/11/2025"],  # 6: the default stage is open
        ]
    )
    job = await uploaded(client, admin, "deal", content)
    columns = {
        "Title": "title",
        "Product": "product",
        "Quantity": "quantity",
        "Amount": "amount",
        "Currency": "currency",
        "Closed on": "closed_on",
    }
    job = await mapped(client, admin, job, columns, decimal_mark=",")
    await run(client, admin, job["id"], "preview")
    done = await run(client, admin, job["id"], "commit")
    assert done["counts"] == {"reject": 3, "create": 2}
    found = await rows(client, admin, job["id"])

    assert {n: (found[n]["outcome"], found[n]["column"]) for n in (2, 3, 5)} == {
        2: ("reject", "Quantity"),
        3: ("reject", "Quantity"),
        5: ("reject", "Amount"),
    }
    assert "not 3 times a unit price" in found[2]["reason"]
    assert "at least 1" in found[3]["reason"]
    assert "USD" in found[5]["reason"] and "EUR" in found[5]["reason"]
    two = await get(client, admin, f"/deals/{found[4]['record_id']}")
    assert [(ln["product_id"], ln["quantity"], ln["unit_price_minor"]) for ln in two["lines"]] == [
        (product["id"], 2, 5000)
    ]
    assert two["amount_minor"] == 10000
    opened = await get(client, admin, f"/deals/{found[6]['record_id']}")
    assert found[6]["outcome"] == "create"
    assert (opened["status"], opened["won_at"], opened["lost_at"]) == ("open", None, None)
    assert "closing date was left out" in found[6]["reason"]


# 9-10. Phones and e-mails


@pytest.mark.asyncio
async def test_a_company_phone_cell_with_two_numbers_keeps_the_first_and_names_the_one_left_out(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    await set_region(client, tenant, "ES")
    content = csv_bytes([["Name", "Phone"], ["Globex", "600 123 456 / 611 222 333"]])
    done, found = await imported_job(client, tenant, "company", content, {"Name": "name", "Phone": "phone"})

    assert done["counts"] == {"create": 1}
    company = await get(client, admin, f"/companies/{found[2]['record_id']}")
    assert company["phone"] == "+34600123456"
    assert "+34611222333" in found[2]["reason"] and "left out" in found[2]["reason"]


@pytest.mark.asyncio
async def test_two_email_columns_or_two_addresses_in_one_cell_all_reach_the_contact(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    content = csv_bytes(
        [["Name", "Email", "Email 2"], ["Ann", "ann@x.es", "ann@work.es"], ["Bob", "bob@x.es/bob@y.es", ""]]
    )
    done, found = await imported_job(
        client, tenant, "contact", content, {"Name": "name", "Email": "emails", "Email 2": "emails"}
    )

    assert done["mapping"] == {"Name": "name", "Email": "emails", "Email 2": "emails"}
    assert done["counts"] == {"create": 2}
    ann = await get(client, admin, f"/contacts/{found[2]['record_id']}")
    bob = await get(client, admin, f"/contacts/{found[3]['record_id']}")
    assert sorted(ann["emails"]) == ["ann@work.es", "ann@x.es"]
    assert sorted(bob["emails"]) == ["bob@x.es", "bob@y.es"]


# 11. Dates


@pytest.mark.asyncio
async def test_each_date_column_is_read_in_the_order_its_own_values_show(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    """A US export pasted next to a Spanish one: 03/04/2025 is 3 April in one column and 4 March in the other."""
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    content = csv_bytes(
        [
            ["Title", "Close date", "Created on"],
            ["Evidence", "31/12/2025", "12/31/2024"],
            ["Ambiguous", "03/04/2025", "03/04/2025"],
        ]
    )
    job = await uploaded(client, admin, "deal", content)
    job = await mapped(
        client, admin, job, {"Title": "title", "Close date": "expected_close_on", "Created on": "created_on"}
    )
    assert job["options"]["date_orders"] == {"Close date": "dmy", "Created on": "mdy"}
    await run(client, admin, job["id"], "preview")
    done = await run(client, admin, job["id"], "commit")
    assert done["counts"] == {"create": 2}
    found = await rows(client, admin, job["id"])

    deal = await get(client, admin, f"/deals/{found[3]['record_id']}")
    assert deal["expected_close_on"] == "2025-04-03"
    assert deal["created_at"].startswith("2025-03-04")
    evidence = await get(client, admin, f"/deals/{found[2]['record_id']}")
    assert (evidence["expected_close_on"], evidence["created_at"][:10]) == ("2025-12-31", "2024-12-31")


# 12. Undo meeting an edit


@pytest.mark.asyncio
async def test_an_undo_leaves_a_row_whose_record_was_edited_meanwhile_and_undoes_the_rest(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edit comes after the undo started (which checks for edits only at its start), on a row it has not reached:
    rows are undone from the last backwards."""
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    content = csv_bytes([["Name"], *([f"Company {n}"] for n in range(2, 8))])
    done, found = await imported_job(client, tenant, "company", content, {"Name": "name"})
    assert done["counts"] == {"create": 6}
    one_row_per_call(monkeypatch, batch=2)

    first = await one_step(client, admin, done["id"], "undo")
    assert first["status"] == "undoing"
    edited = found[3]["record_id"]
    patched = await client.patch(f"{API}/companies/{edited}", json={"industry": "Energy"}, headers=admin)
    assert patched.status_code == 200, patched.text
    undone = await run(client, admin, done["id"], "undo")

    assert (undone["status"], undone["not_undone"]) == ("undone", 1)
    after = await rows(client, admin, done["id"])
    assert after[3]["undone_at"] is None
    assert "not undone" in after[3]["reason"].lower()
    assert all(after[n]["undone_at"] for n in (2, 4, 5, 6, 7))
    company = await get(client, admin, f"/companies/{edited}")
    assert (company["deleted_at"], company["industry"], company["name"]) == (None, "Energy", "Company 3")
    listed = (await get(client, admin, "/companies?limit=200"))["items"]
    assert [c["id"] for c in listed] == [edited], "the other five are deleted"


# 13. Fuzzy matching past the full-scan limit


def pharmacies() -> tuple[Choices, uuid.UUID]:
    """6,000 'Farmacia <unique word>' companies (more than a full scan takes), the last 'Farmacia Zarzuela'."""
    choices = Choices()
    letters = "bcdfghjklmnpqrstvwxy"
    for n in range(5_999):
        word = "".join(letters[(n // 20**k) % 20] for k in range(3)) + "ito"
        choices.add(uuid.uuid4(), f"Farmacia {word.title()}")
    zarzuela = uuid.uuid4()
    choices.add(zarzuela, "Farmacia Zarzuela")
    assert len(choices.keys) == 6_000 > FULL_SCAN and len(set(choices.keys)) == 6_000
    return choices, zarzuela


def test_a_company_past_the_full_scan_limit_is_found_by_its_name_however_it_is_written() -> None:
    choices, zarzuela = pharmacies()
    assert choices.same_company("Farmacia Zarzuela", 90) == zarzuela
    assert choices.same_company("FARMACIA ZARZUELA S.L.", 90) == zarzuela
    # Spelt otherwise than its core name, it is scored against the names sharing its rarest word, not "farmacia".
    assert choices.same_company("Zarzuela Farmacia", 90) == zarzuela
    assert choices.closest("Farmacia Zarzuela Centro")[0]["id"] == str(zarzuela)


def test_a_misspelt_company_past_the_full_scan_limit_is_the_first_candidate() -> None:
    """A typo in the rare word leaves only "farmacia" to pool by, whose first 5,000 names do not include the last."""
    choices, zarzuela = pharmacies()
    best = choices.closest("Farmacia Zarzuel")
    assert best and best[0]["id"] == str(zarzuela), best
