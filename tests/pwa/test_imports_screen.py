"""The Import screen in Chromium at a desktop's size: an admin uploads a CSV with Spanish column titles, keeps the
suggested mapping, confirms the suggested company for a near-miss name, runs the dry run (totals, the rejected
row's reason), imports, reads the reconciliation, downloads the report and undoes the import; axe-core on every
step; the same in Spanish; and the Export on the clients list producing a file for a manager (not for a rep)."""

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from playwright.sync_api import Browser, Page, expect

from api.auth.models import Role
from api.core.db import Database, make_engine
from tests.factories import PASSWORD, make_company, make_contact, make_deal, make_org, make_team, make_user
from tests.pwa.conftest import (
    DIST,
    SCREENSHOTS,
    Field,
    scrolls_sideways,
    seeded_server,
    serious_violations,
    sign_in,
    synced,
)

ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
DOMAIN = "talleres-norte.es"
DESKTOP = {"width": 1280, "height": 900}

# A contact list as a Spanish office keeps it: `;`-separated, Spanish titles. Row 2 names its company with another
# spelling than the CRM's ("ACME Corporation" for Acme Corp), row 3 has a broken e-mail, row 4 is blank.
CSV = (
    "Nombre;Correo;Teléfono;Empresa\n"
    "Lucía Pérez;lucia.perez@example.com;+34 600 123 456;ACME Corporation\n"
    "Jorge Martín;jorge-arroba-example;+34 600 987 654;Acme Corp\n"
    ";;;\n"
    "Carmen Ruiz;carmen.ruiz@example.com;+34 600 555 111;Acme Corp\n"
)


async def _seed(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with Database(engine).writer() as session:
            org = await make_org(session, "Talleres Norte")
            team = await make_team(session, org, name="Ventas Norte")
            people = {
                key: await make_user(session, org, role=role, team=team, name=name, email=f"{key}@{DOMAIN}")
                for key, name, role in (
                    ("ines", "Inés Mora", Role.admin),
                    ("elena", "Elena Ruiz", Role.manager),
                    ("marta", "Marta Gil", Role.rep),
                )
            }
            marta = people["marta"]
            company = await make_company(session, marta, name="Acme Corp", city="Madrid")
            contact = await make_contact(session, marta, name="Ana Núñez", company_id=company.id)
            deal = await make_deal(session, marta, title="Fleet renewal", company_id=company.id, amount_minor=1_200_000)
            await session.commit()
            return {
                "emails": {key: user.email for key, user in people.items()},
                "company_id": str(company.id),
                "contact_id": str(contact.id),
                "deal_id": str(deal.id),
            }
    finally:
        await engine.dispose()


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Field]:
    with seeded_server("sqlite", tmp_path, _seed, DIST) as (served, seeded):
        yield Field(url=served, **seeded)


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Page]:
    # axe-core is injected as an inline script, which the app's CSP refuses (test_csp.py runs under it).
    context = browser.new_context(
        viewport=DESKTOP, locale="en-GB", reduced_motion="reduce", accept_downloads=True, bypass_csp=True
    )
    yield context.new_page()
    context.close()


@pytest.fixture
def contacts_csv(tmp_path: Path) -> Path:
    path = tmp_path / "contactos.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


def _accessible(page: Page, step: str) -> list[str]:
    """axe-core's serious findings and sideways scrolling, with a screenshot of the step for review."""
    page.wait_for_timeout(200)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"import-{re.sub(r'[^a-z]+', '-', step.lower()).strip('-')}.png", full_page=True)
    problems = [f"{step}: {v}" for v in serious_violations(page)]
    if scrolls_sideways(page):
        problems.append(f"{step}: the page scrolls sideways")
    return problems


def _charts_drawn(page: Page) -> None:
    page.wait_for_function("[...document.querySelectorAll('main canvas')].every(c => c.width > 0)", timeout=10_000)


def _step(page: Page, name: str) -> None:
    """The step's heading is shown and has the focus (a screen reader starts there)."""
    heading = page.locator("#import-step")
    expect(heading).to_have_text(name)
    expect(heading).to_be_focused()


def test_an_admin_imports_contacts_checks_the_dry_run_and_undoes_the_import(
    office: Field, desktop: Page, contacts_csv: Path
) -> None:
    page = desktop
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, office, "ines")
    synced(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", name="Import", level=1)).to_be_visible()
    expect(page.get_by_test_id("history")).to_have_count(0)
    expect(page.get_by_text("No import yet.")).to_be_visible()
    problems = _accessible(page, "upload")

    # 1. The file and what its rows are; a file without saying what is refused.
    page.get_by_label("File (CSV or Excel .xlsx, up to 25 MB)").set_input_files(contacts_csv)
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("alert")).to_have_text("Say what the rows are.")
    page.get_by_role("radio", name="Contacts").check()
    page.get_by_role("button", name="Upload").click()

    # 2. The mapping the Spanish titles suggest, each column with its first values.
    _step(page, "Map the columns")
    expect(page.get_by_text("contactos.csv · 4 rows · Contacts")).to_be_visible()
    expect(page.get_by_text("columns separated by “;”")).to_be_visible()
    mapping = page.get_by_test_id("mapping")
    for header, key, label in (
        ("Nombre", "name", "Full name"),
        ("Correo", "emails", "E-mail"),
        ("Teléfono", "phones", "Phone"),
        ("Empresa", "company", "Company"),
    ):
        select = page.get_by_label(header, exact=True)
        expect(select).to_have_value(key)
        expect(select.locator("option:checked")).to_contain_text(label)
    nombre = mapping.locator("[data-header=Nombre]")
    expect(nombre).to_contain_text("Lucía Pérez · Jorge Martín · Carmen Ruiz")
    match = page.get_by_label("Existing records")
    expect(match).to_have_value("")
    match.select_option(label="Update the ones with the same E-mail")
    expect(page.get_by_text("Update existing records that have the same E-mail; otherwise duplicates")).to_be_visible()
    match.select_option("")
    page.get_by_label("Save this mapping as (optional)").fill("Contactos de la oficina")
    problems += _accessible(page, "mapping")
    page.screenshot(path=DOCS_SCREENSHOTS / "import-mapping.png", full_page=True)
    page.get_by_role("button", name="Continue").click()

    # 3. "ACME Corporation" names no company exactly: Acme Corp is suggested, and confirmed.
    _step(page, "Values that match nothing")
    value = page.get_by_test_id("value").filter(has_text="ACME Corporation")
    expect(value).to_contain_text("1 row")
    expect(value).to_contain_text("Waiting for your decision")
    suggested = value.get_by_role("radio", name=re.compile(r"^Acme Corp match \d+% suggested"))
    expect(suggested).not_to_be_checked()  # suggested, never chosen unasked
    expect(value.get_by_role("radio", name="Create the company “ACME Corporation”")).to_be_visible()
    problems += _accessible(page, "values")
    page.get_by_role("button", name="Confirm the suggestion").click()
    expect(page.get_by_role("status").filter(has_text="1 decision saved.")).to_be_visible()
    expect(suggested).to_be_checked()
    expect(value).not_to_contain_text("Waiting for your decision")
    page.get_by_role("button", name="Continue to the dry run").click()

    # 4. The dry run: totals as a chart with its table, the rejected row first with its column and reason.
    _step(page, "Dry run")
    preview = page.get_by_test_id("preview-result")
    expect(preview).to_be_visible(timeout=20_000)
    totals = preview.get_by_test_id("totals-table")
    for outcome, n in (("create", "2"), ("update", "0"), ("merge", "0"), ("reject", "1"), ("skip", "1")):
        expect(totals.locator(f"tr[data-outcome={outcome}] td")).to_have_text(n)
    expect(preview.get_by_test_id("totals-chart").get_by_role("img")).to_have_attribute(
        "aria-label", re.compile("rows per outcome")
    )
    rejected = preview.get_by_test_id("rows-table").locator("tbody tr")
    expect(rejected).to_have_count(1)
    expect(rejected).to_have_attribute("data-row", "3")
    expect(rejected).to_contain_text("Correo")
    expect(rejected).to_contain_text(re.compile("e-mail", re.IGNORECASE))
    _charts_drawn(page)
    problems += _accessible(page, "dry run")

    # 5 and 6. The import, and what it did, adding up.
    page.get_by_role("button", name="Import 2 rows").click()
    result = page.get_by_test_id("result")
    expect(result).to_be_visible(timeout=20_000)
    _step(page, "Result")
    expect(result.get_by_test_id("result-status")).to_have_text("Imported")
    expect(result.get_by_test_id("reconciliation")).to_have_text(
        "4 rows in = 2 created + 0 updated + 0 merged + 1 rejected + 1 skipped"
    )
    expect(result.get_by_test_id("unbalanced")).to_have_count(0)
    lucia = office.api("ines", "GET", "/contacts", params={"q": "Lucía"}).json()["items"]
    assert [c["name"] for c in lucia] == ["Lucía Pérez"]
    assert lucia[0]["company_id"] == office.company_id
    _charts_drawn(page)
    problems += _accessible(page, "result")
    page.screenshot(path=DOCS_SCREENSHOTS / "import-result.png", full_page=True)

    with page.expect_download() as downloaded:
        page.get_by_role("button", name="Download CSV").click()
    report = downloaded.value
    assert report.suggested_filename.endswith(".csv")
    rows = list(csv.reader(io.StringIO(Path(report.path()).read_text(encoding="utf-8-sig"))))
    assert rows[0][:5] == ["Row", "Nombre", "Correo", "Teléfono", "Empresa"]
    assert "Outcome" in rows[0]
    assert len(rows) == 5  # the header and the four rows
    expect(page.get_by_text(f"Downloaded {report.suggested_filename}.")).to_be_visible()

    # Undo, after a confirmation (a modal dialog; cancelling it changes nothing).
    page.get_by_role("button", name="Undo the import").click()
    dialog = page.get_by_role("dialog", name="Undo this import?")
    expect(dialog).to_contain_text("The 2 records it created are deleted")
    problems += _accessible(page, "undo dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(result.get_by_test_id("result-status")).to_have_text("Imported")
    page.get_by_role("button", name="Undo the import").click()
    page.get_by_role("dialog").get_by_role("button", name="Undo the import").click()
    expect(result.get_by_test_id("result-status")).to_have_text("Undone", timeout=20_000)
    expect(result).to_contain_text("This import was undone")
    problems += _accessible(page, "undone")
    assert office.api("ines", "GET", "/contacts", params={"q": "Lucía"}).json()["items"] == []

    # The history: this import, by whom, undone, which can now be discarded.
    item = page.get_by_test_id("history-item").first
    expect(item).to_contain_text("contactos.csv")
    expect(item).to_contain_text("Contacts · by Inés Mora")
    expect(item).to_contain_text("Undone")
    expect(item.get_by_role("button", name="Discard contactos.csv")).to_be_visible()
    assert problems == []

    # The mapping saved on the way, offered for the next file.
    page.get_by_role("button", name="Import another file").click()
    _step(page, "Choose a file")
    saved = page.get_by_test_id("saved-mappings")
    saved.get_by_text("Saved mappings").click()
    expect(saved.get_by_role("listitem")).to_have_count(1)
    expect(saved.get_by_role("listitem")).to_contain_text("Contactos de la oficinaContacts · 4 columns")
    # What the import did stays on it once undone.
    expect(item).to_contain_text("2 created · 1 rejected · 1 skipped")


def test_an_import_stopped_mid_run_is_resumed_from_the_history_on_a_phone(
    office: Field, page: Page, contacts_csv: Path
) -> None:
    # Uploaded and mapped through the API; its dry run started and the page that ran it closed.
    with contacts_csv.open("rb") as f:
        created = office.api(
            "ines", "POST", "/imports", files={"file": ("contactos.csv", f, "text/csv")}, data={"entity": "contact"}
        )
    assert created.status_code == 201, created.text
    job = created.json()
    office.api("ines", "PUT", f"/imports/{job['id']}/values", json={"defaults": {"company": "create"}})
    first = office.api("ines", "POST", f"/imports/{job['id']}/preview")
    assert first.status_code in (200, 202), first.text

    sign_in(page, office, "ines")
    page.goto(f"{office.url}/imports")
    item = page.get_by_test_id("history-item").filter(has_text="contactos.csv")
    if first.status_code == 202:
        expect(item).to_contain_text("Dry run stopped")
        item.get_by_role("button", name="Resume contactos.csv").click()
    else:
        item.get_by_role("button", name="Open contactos.csv").click()
    expect(page.get_by_test_id("preview-result")).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("planned-sentence")).to_have_text(
        "4 rows in = 2 created + 0 updated + 0 merged + 1 rejected + 1 skipped"
    )
    _charts_drawn(page)
    problems = _accessible(page, "dry run phone")
    # Discarded from the history (it wrote nothing), after a confirmation.
    item.get_by_role("button", name="Discard contactos.csv").click()
    page.get_by_role("dialog").get_by_role("button", name="Discard").click()
    expect(page.get_by_text("No import yet.")).to_be_visible()
    expect(page.locator("#import-step")).to_have_text("Choose a file")
    problems += _accessible(page, "upload phone")
    assert problems == []


def test_the_import_speaks_spanish(office: Field, browser: Browser, contacts_csv: Path) -> None:
    context = browser.new_context(
        viewport=DESKTOP, locale="es-ES", reduced_motion="reduce", accept_downloads=True, bypass_csp=True
    )
    page = context.new_page()
    try:
        page.goto(office.url)  # a browser in Spanish: the app starts in Spanish
        page.get_by_label("Correo electrónico").fill(office.emails["ines"])
        page.get_by_label("Contraseña").fill(PASSWORD)
        page.get_by_role("button", name="Iniciar sesión").click()
        nav = page.get_by_role("navigation", name="Principal")
        synced(page)
        nav.get_by_role("link", name="Importar").click()
        expect(page.get_by_role("heading", name="Importar", level=1)).to_be_visible()
        page.get_by_label("Archivo (CSV o Excel .xlsx, hasta 25 MB)").set_input_files(contacts_csv)
        page.get_by_role("radio", name="Contactos").check()
        page.get_by_role("button", name="Subir").click()

        _step(page, "Asigna las columnas")
        expect(page.get_by_text("contactos.csv · 4 filas · Contactos")).to_be_visible()
        expect(page.get_by_label("Correo", exact=True).locator("option:checked")).to_have_text("Correo")
        expect(page.get_by_label("Nombre", exact=True).locator("option:checked")).to_contain_text("Nombre completo")
        expect(page.get_by_label("Registros existentes")).to_have_value("")
        problems = _accessible(page, "mapping (es)")
        page.get_by_role("button", name="Continuar").click()

        _step(page, "Valores sin coincidencia")
        value = page.get_by_test_id("value").filter(has_text="«ACME Corporation» · 1 fila")
        expect(value).to_contain_text("Espera tu decisión")
        expect(value.get_by_role("radio", name="Crear la empresa «ACME Corporation»")).to_be_visible()
        problems += _accessible(page, "values (es)")
        page.get_by_role("button", name="Confirmar la sugerencia").click()
        expect(page.get_by_role("status").filter(has_text="1 decisión guardada.")).to_be_visible()
        page.get_by_role("button", name="Continuar a la prueba").click()

        _step(page, "Prueba")
        preview = page.get_by_test_id("preview-result")
        expect(preview).to_be_visible(timeout=20_000)
        expect(preview.get_by_test_id("totals-table").locator("tr[data-outcome=reject] th")).to_have_text("Rechazar")
        _charts_drawn(page)
        problems += _accessible(page, "dry run (es)")
        page.get_by_role("button", name="Importar 2 filas").click()

        result = page.get_by_test_id("result")
        expect(result).to_be_visible(timeout=20_000)
        expect(result.get_by_test_id("reconciliation")).to_have_text(
            "4 filas leídas = 2 creadas + 0 actualizadas + 0 fusionadas + 1 rechazadas + 1 omitidas"
        )
        expect(result.get_by_test_id("result-status")).to_have_text("Importada")
        expect(page.get_by_role("button", name="Descargar Excel")).to_be_visible()
        _charts_drawn(page)
        problems += _accessible(page, "result (es)")
        page.screenshot(path=SCREENSHOTS / "import-result-es.png", full_page=True)
        page.get_by_role("button", name="Deshacer la importación").click()
        page.get_by_role("dialog", name="¿Deshacer esta importación?").get_by_role(
            "button", name="Deshacer la importación"
        ).click()
        expect(result.get_by_test_id("result-status")).to_have_text("Deshecha", timeout=20_000)
        assert problems == []

        # An export in Spanish: `;` between columns (what Excel in Spanish expects) and Spanish column titles.
        nav.get_by_role("link", name="Clientes").click()
        export = page.get_by_test_id("export")
        export.get_by_text("Exportar", exact=True).click()
        expect(export.get_by_label("Separador CSV")).to_have_value(";")
        with page.expect_download() as downloaded:
            export.get_by_role("button", name="CSV").click()
        first = Path(downloaded.value.path()).read_text(encoding="utf-8-sig").splitlines()[0]
        assert ";" in first and "," not in first
        assert "Nombre" in first
    finally:
        context.close()


def test_a_manager_exports_the_clients_list_and_a_rep_cannot(office: Field, page: Page) -> None:
    sign_in(page, office, "elena")
    synced(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Clients").click()
    export = page.get_by_test_id("export")
    export.get_by_text("Export", exact=True).click()
    expect(export).to_contain_text("Every client you can see.")
    expect(export.get_by_label("CSV separator")).to_have_value(",")
    export.get_by_role("button", name="Contacts").click()
    with page.expect_download() as downloaded:
        export.get_by_role("button", name="CSV").click()
    file = downloaded.value
    assert file.suggested_filename.endswith(".csv")
    text = Path(file.path()).read_text(encoding="utf-8-sig")
    assert "Ana Núñez" in text
    expect(export.get_by_role("status")).to_have_text(f"Downloaded {file.suggested_filename}.")
    problems = _accessible(page, "clients export")
    assert problems == []


def test_a_rep_has_no_export_and_no_import(office: Field, page: Page) -> None:
    sign_in(page, office, "marta")
    synced(page)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Import")).to_have_count(0)
    nav.get_by_role("link", name="Clients").click()
    expect(page.get_by_role("heading", name="Clients", level=1)).to_be_visible()
    expect(page.get_by_test_id("export")).to_have_count(0)
    nav.get_by_role("link", name="Deals").click()
    expect(page.get_by_role("heading", name="Deals", level=1)).to_be_visible()
    expect(page.get_by_test_id("board")).to_be_visible()
    expect(page.get_by_test_id("export")).to_have_count(0)
    page.goto(f"{office.url}/imports")
    expect(page.get_by_text("Imports are for admins.")).to_be_visible()


def test_another_sheet_of_a_workbook_is_read_from_the_same_file(office: Field, desktop: Page, tmp_path: Path) -> None:
    page = desktop
    book = Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "Notas"
    notes.append(["Nota"])
    notes.append(["Lista de marzo"])
    companies = book.create_sheet("Empresas")
    companies.append(["Empresa", "Ciudad", "Web"])
    companies.append(["Talleres Ebro", "Zaragoza", "talleres-ebro.es"])
    path = tmp_path / "clientes.xlsx"
    book.save(path)

    sign_in(page, office, "ines")
    page.goto(f"{office.url}/imports")
    page.get_by_label("File (CSV or Excel .xlsx, up to 25 MB)").set_input_files(path)
    page.get_by_role("radio", name="Companies").check()
    page.get_by_role("button", name="Upload").click()
    _step(page, "Map the columns")
    sheet = page.get_by_label("Sheet")
    expect(sheet).to_have_value("Notas")
    expect(page.get_by_test_id("map-row")).to_have_count(1)

    # The same file again, that sheet: the first sheet's import (which wrote nothing) is dropped.
    sheet.select_option("Empresas")
    expect(page.get_by_test_id("map-row")).to_have_count(3)
    expect(page.get_by_label("Sheet")).to_have_value("Empresas")
    expect(page.get_by_label("Empresa", exact=True)).to_have_value("name")
    expect(page.get_by_label("Ciudad", exact=True)).to_have_value("city")
    expect(page.get_by_label("Web", exact=True)).to_have_value("domain")
    expect(page.get_by_text("clientes.xlsx · 1 row · Companies")).to_be_visible()
    history = page.get_by_test_id("history-item")
    expect(history).to_have_count(1)
    jobs = office.api("ines", "GET", "/imports").json()["items"]
    assert [(j["file_name"], j["sheet"]) for j in jobs] == [("clientes.xlsx", "Empresas")]


def test_an_admin_s_eight_tabs_fit_a_phone_in_spanish(office: Field, browser: Browser) -> None:
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, locale="es-ES", is_mobile=True, has_touch=True, device_scale_factor=2
    )
    page = context.new_page()
    try:
        page.goto(office.url)
        page.get_by_label("Correo electrónico").fill(office.emails["ines"])
        page.get_by_label("Contraseña").fill(PASSWORD)
        page.get_by_role("button", name="Iniciar sesión").click()
        nav = page.get_by_role("navigation", name="Principal")
        expect(nav.get_by_role("link")).to_have_count(8)
        nav.get_by_role("link", name="Importar").click()
        expect(page.get_by_role("heading", name="Importar", level=1)).to_be_visible()
        # Every label shows whole (none cut or running into the next), and the page does not scroll sideways.
        cut = page.evaluate(
            "[...document.querySelectorAll('nav.tabs a')]"
            ".filter(a => a.scrollWidth > Math.ceil(a.getBoundingClientRect().width)).map(a => a.textContent)"
        )
        assert cut == []
        assert not scrolls_sideways(page)
    finally:
        context.close()


def test_an_undo_refused_because_a_record_changed_says_why(office: Field, desktop: Page, contacts_csv: Path) -> None:
    page = desktop
    with contacts_csv.open("rb") as f:
        job = office.api(
            "ines", "POST", "/imports", files={"file": ("contactos.csv", f, "text/csv")}, data={"entity": "contact"}
        ).json()
    office.api("ines", "PUT", f"/imports/{job['id']}/values", json={"defaults": {"company": "reject"}})
    for phase in ("preview", "commit"):
        while (answer := office.api("ines", "POST", f"/imports/{job['id']}/{phase}")).status_code == 202:
            pass
        assert answer.status_code == 200, answer.text
    # Someone works on an imported contact afterwards.
    carmen = office.api("ines", "GET", "/contacts", params={"q": "Carmen"}).json()["items"][0]
    changed = office.api(
        "ines",
        "PATCH",
        f"/contacts/{carmen['id']}",
        json={"title": "Buyer"},
        headers={"If-Match": f'"{carmen["version"]}"'},
    )
    assert changed.status_code == 200, changed.text

    sign_in(page, office, "ines")
    page.goto(f"{office.url}/imports")
    page.get_by_role("button", name="Open contactos.csv").click()
    _step(page, "Result")
    page.get_by_role("button", name="Undo the import").click()
    page.get_by_role("dialog").get_by_role("button", name="Undo the import").click()
    expect(page.get_by_test_id("undo-error")).to_contain_text("changed since")
    expect(page.get_by_test_id("result-status")).to_have_text("Imported")
    assert office.api("ines", "GET", f"/contacts/{carmen['id']}").json()["title"] == "Buyer"
