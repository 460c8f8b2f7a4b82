"""A 100k-row contacts XLSX imported through api/imports, timed next to just reading the file with openpyxl, with the
memory peak of each part, on SQLite and PostgreSQL in one run (issue 7).

    python -m bench.imports [--rows 100000] [--full-rows N] [--db sqlite|postgres|both] [--profile-rows 5000]

**The file.** Contacts as a Spanish company's export plus a fair's leads would give them, made deterministically
(`--seed`) and written with openpyxl's write-only mode into a temporary directory: `Fieldbook id`, `Nombre`,
`Apellidos`, `Empresa`, `Cargo`, `Email`, `Teléfono`, `Etiquetas`, `Origen`, `Fecha alta` (a date) and `Notas`
(the last two map to nothing). Names are Spanish (three in four, half of them with two surnames) or English;
companies are drawn, heavy-tailed, from a pool of 5,000 generated names ("Transportes Martínez S.L.", "Nexosur
Servicios", "Young Freight Inc."...), so most rows share a company with others; now and then a row writes it in
capitals, 3% name none. E-mails are the person's at the company's domain or at a free mail provider (5% have none,
5% two); phones come in eleven formats (`+34 612 345 678`, `612345678`, `0034…`, `(+34) 91 …`, US, Mexican and
British numbers, a number with "(móvil)" after it, two numbers in one cell; 15% have none). Every outcome shows:
1% of the e-mails are bad (the row is rejected), 0.5% of the rows are exact copies of an earlier row (skipped),
0.5% repeat an earlier row's e-mail with other details (merged into it), 0.3% carry the e-mail of a contact already
in Fieldbook (merged into it) and 0.3% carry the Fieldbook id of one (updated). A shorter file is the first rows of
a longer one.

**The databases.** Each block below starts on fresh, migrated databases: a SQLite file in the temporary directory and
the PostgreSQL database `--database`. One organisation ("Bench Imports", es-ES, EUR, phone region ES) made by the
app's `create_organization`, its admin made by `create_user`, and, through the app's `create_client`, 300
companies of the pool and 1,000 contacts of theirs that the file's updates and merges name.

**Measure.** For each database, in this order, each part in a child process of its own, so each part's memory peak
is its own: (a) openpyxl alone, `load_workbook(read_only=True, data_only=True)` and every value of every row;
(b) Fieldbook's reading alone, `api.imports.reading.open_table` iterated; then the import as `fieldbook import` runs
it: (c) `service.upload` in a writer session (the file read into `import_row`), (d) `service.set_mapping` with the
mapping the headers suggested, (e) `service.decide` with `defaults: {"company": "create"}`, (f) the dry run and
(g) the import, each `runner.step(…, phase)` called until the job leaves its running status. The peak is the
child's VmHWM (`ru_maxrss` would carry over the parent's high-water mark through fork and exec); each part also
records its CPU time (all threads) and the load average, since other work on the machine stretches the wall time.
Every statement the engine sends is counted and its execute timed. With `--full-rows` below `--rows`, (a) to (e)
run on the `--rows` file and the whole flow on its first `--full-rows` rows (the import runs at 40 to 100 rows/s on
two cores: 100k rows take over half an hour per database). Once, on the big file: (a) and (b) again under
tracemalloc (the Python heap's peak). Then the import phase of the first `--profile-rows` rows on a fresh database
of each kind, under cProfile. Report to stdout and between the markers of the "Imports (issue 7)" section of
bench/RESULTS.md.
"""

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import random
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from api.benchdata.rows import Ids
from bench import common
from bench.common import create_database

console = Console(width=160, stderr=True)
RESULTS = Path(__file__).with_name("RESULTS.md")
ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Imports (issue 7)"
START, END = "<!-- imports:start -->", "<!-- imports:end -->"
RESULT_MARK = "@@bench.imports "

DEFAULT_DATABASE = "fieldbook_imports"
PROFILE_DATABASE = "fieldbook_imports_profile"
ORG_NAME = "Bench Imports"
DOMAIN = "imports.bench.example"
ADMIN_EMAIL = f"admin@{DOMAIN}"
ORG_SETTINGS = {"locale": "es-ES", "currency": "EUR", "phone_region": "ES", "time_zone": "Europe/Madrid"}

HEADERS = [
    "Fieldbook id",
    "Nombre",
    "Apellidos",
    "Empresa",
    "Cargo",
    "Email",
    "Teléfono",
    "Etiquetas",
    "Origen",
    "Fecha alta",
    "Notas",
]
COMPANY_POOL = 5_000
SEEDED_COMPANIES, SEEDED_CONTACTS = 300, 1_000
# Shares of the rows.
BAD_EMAIL, EXACT_COPY, SAME_EMAIL, KNOWN_EMAIL, KNOWN_ID = 0.01, 0.005, 0.005, 0.003, 0.003
NO_EMAIL, TWO_EMAILS, NO_PHONE, NO_COMPANY, SHOUTED_COMPANY = 0.05, 0.05, 0.15, 0.03, 0.02
# Earlier rows a copy or a repeated e-mail is drawn from.
RECENT = 5_000
OUTCOMES = ("create", "update", "merge", "reject", "skip")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_ES = (
    *_words(
        "Ana Luis Marta Jorge Sofía Diego Elena Javier Lucía Pablo Carmen Andrés Inés Raúl Nuria Iván Beatriz Óscar "
        "Francisco Antonio Manuel Isabel Pilar Rocío Alejandro Daniel Laura Cristina Fernando Teresa Begoña "
        "Íñigo Aitor Ainhoa Montserrat Jordi Xavier Gonzalo Valentina Camila Mateo Santiago Ximena Adrián Alba Irene "
        "Sergio Rubén Noelia Marina Álvaro Patricia Eva Rosa Vicente Ramón Julia Paula Hugo Lorena Mercedes "
        "Agustín Concepción"
    ),
    "María José",
    "José Luis",
    "Juan Carlos",
    "Miguel Ángel",
    "Ana Belén",
    "María del Mar",
    "José Antonio",
)
FIRST_EN = _words(
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Susan Richard Jessica Joseph Sarah "
    "Thomas Karen Emily Oliver Charlotte Harry Amelia George Olivia Siobhán Seán Chloé Zoë Liam Noah Emma Grace Jack"
)
LAST_ES = _words(
    "García Fernández González Rodríguez López Martínez Sánchez Pérez Gómez Martín Jiménez Ruiz Hernández Díaz Moreno "
    "Muñoz Álvarez Romero Alonso Gutiérrez Navarro Torres Domínguez Vázquez Ramos Gil Ramírez Serrano Blanco Molina "
    "Morales Suárez Ortega Delgado Castro Ortiz Rubio Marín Sanz Núñez Iglesias Medina Garrido Cortés Castillo Santos "
    "Lozano Guerrero Cano Prieto Méndez Cruz Calvo Gallego Vidal León Márquez Herrera Peña Flores Cabrera Campos Vega "
    "Fuentes Carrasco Díez Caballero Reyes Nieto Aguilar Pascual Santana Herrero Lorenzo Montero Hidalgo Giménez "
    "Ibáñez Ferrer Durán Benítez Mora Vicente Vargas Arias Carmona Crespo Román Pastor Soto Sáez Velasco Moya Soler "
    "Parra Esteban Bravo Gallardo Rojas Echeverría Goikoetxea Puig Etxeberria Oliveira"
)
LAST_EN = _words(
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Jackson White Harris Clark "
    "Lewis Walker Hall Young King Wright O'Brien O'Connor McDonald Murphy Kelly Evans Hughes Edwards Baker Cooper"
)
SECTORS_ES = (
    *_words(
        "Transportes Construcciones Distribuciones Talleres Instalaciones Reformas Suministros Alimentación Muebles "
        "Asesoría Consultoría Climatización Electricidad Fontanería Carpintería Gestoría Inmobiliaria Ferretería "
        "Panificadora Hostelería Logística Seguros Farmacia Autoescuela Imprenta Bodegas Conservas Aceites Cerámicas "
        "Textil Maquinaria Grúas Excavaciones Limpiezas Viajes Óptica Frutas Cárnicas Envases Recambios"
    ),
    "Clínica Dental",
    "Artes Gráficas",
    "Estructuras Metálicas",
)
FORMS_ES = ("S.L.", "S.A.", "SL", "S.L.U.", "S. Coop.", "", "", "")
SECTORS_EN = _words(
    "Logistics Builders Foods Engineering Consulting Software Supplies Freight Media Healthcare Partners Energy "
    "Design Analytics Manufacturing Properties Packaging Solutions"
)
FORMS_EN = ("Ltd", "Ltd.", "Inc.", "LLC", "plc", "Corp.", "Group", "")
PLACES = _words(
    "Madrid Sevilla Levante Norte Sur Atlántico Mediterráneo Castilla Galicia Aragón Cantábrico Andalucía Bogotá "
    "Lima Monterrey Valencia Bilbao Murcia Canarias Baleares Navarra Asturias Extremadura Rioja Málaga Córdoba"
)
BRANDS = _words("Nova Inno Tecno Eco Bio Agro Geo Info Iber Hispa Euro Medi Solu Vértice Nexo Órbita Prisma Alfa Omega")
BRAND_TAILS = _words("tec sur norte plus net data logic mar sol lab gest cop")
BRAND_WORDS = ("Soluciones", "Servicios", "Proyectos", "Sistemas", "Ingeniería", "Global", "Consulting", "Group")
FREE_MAIL = ("gmail.com", "hotmail.com", "yahoo.es", "outlook.es", "icloud.com", "telefonica.net", "hotmail.es")
TITLES = (
    "Gerente",
    "Director comercial",
    "Directora financiera",
    "Jefe de compras",
    "Responsable de logística",
    "Administración",
    "Técnico de mantenimiento",
    "CEO",
    "Purchasing manager",
    "Operations lead",
    "CFO",
    "Office manager",
    "Socio",
    "Encargado de tienda",
)
TAGS = ("cliente", "proveedor", "feria 2024", "VIP", "newsletter", "prospecto", "partner", "Madrid", "LATAM", "B2B")
SOURCES = ("web", "feria", "referido", "LinkedIn", "llamada en frío", "partner")
NOTES = ("Interesado en renovar flota", "Llamar en septiembre", "Pidió presupuesto", "Conocido en la feria", "")


def _ascii(text: str) -> str:
    """An e-mail's local part or a domain from a name: lower case, no accents, letters and digits only."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "", plain)


class Contacts:
    """The file's rows, and the companies and contacts the database starts with: all deterministic."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.companies = self._pool(rng)
        # Heavy-tailed: a few companies have hundreds of rows, most a handful.
        self.cum_weights = list(accumulate(1.0 / (rank + 10) ** 0.9 for rank in range(len(self.companies))))
        ids = Ids(rng)
        now = time.time()
        self.seeded_companies = [
            (ids.at(now - 400 * 86_400 + i), index)
            for i, index in enumerate(sorted(rng.sample(range(len(self.companies)), SEEDED_COMPANIES)))
        ]
        self.emails: set[str] = set()
        self.seeded_contacts: list[dict[str, Any]] = []
        for i in range(SEEDED_CONTACTS):
            company_id, index = rng.choice(self.seeded_companies)
            first, last = self._person(rng)
            email = self._email(rng, self.emails, first, last, self.companies[index][1])
            self.seeded_contacts.append(
                {
                    "id": ids.at(now - 300 * 86_400 + i),
                    "first": first,
                    "last": last,
                    "email": email,
                    "company": self.companies[index][0],
                    "company_id": company_id,
                    "title": rng.choice(TITLES),
                }
            )
        self.seed = seed

    @staticmethod
    def _pool(rng: random.Random) -> list[tuple[str, str]]:
        """COMPANY_POOL company names (unique once folded) with their web domains."""
        names: dict[str, tuple[str, str]] = {}
        domains: set[str] = set()
        while len(names) < COMPANY_POOL:
            roll = rng.random()
            surname = rng.choice(LAST_ES)
            if roll < 0.35:
                name = f"{rng.choice(SECTORS_ES)} {surname} {rng.choice(FORMS_ES)}"
            elif roll < 0.45:
                name = f"{rng.choice(SECTORS_ES)} {rng.choice(('Hermanos', 'Hnos.'))} {surname} {rng.choice(FORMS_ES)}"
            elif roll < 0.6:
                brand = f"{rng.choice(BRANDS)}{rng.choice(BRAND_TAILS)}"
                name = f"{brand} {rng.choice(BRAND_WORDS)} {rng.choice(FORMS_ES)}"
            elif roll < 0.75:
                name = f"{rng.choice(SECTORS_ES)} {rng.choice(PLACES)} {rng.choice(FORMS_ES)}"
            elif roll < 0.83:
                other = rng.choice(LAST_ES)
                name = f"{surname} {rng.choice(('&', 'y'))} {other} {rng.choice(('Abogados', 'Asesores', 'Asociados'))}"
            elif roll < 0.93:
                name = f"{rng.choice(LAST_EN)} {rng.choice(SECTORS_EN)} {rng.choice(FORMS_EN)}"
            else:
                name = f"{rng.choice(BRANDS)}{rng.choice(BRAND_TAILS)} {rng.choice(SECTORS_EN)} {rng.choice(FORMS_EN)}"
            name = " ".join(name.split())
            key = _ascii(name)
            if key in names:
                continue
            words = [w for w in name.split() if not w.endswith(".") and w not in ("SL", "&", "y", "Ltd", "LLC", "plc")]
            domain = _ascii("".join(words[:2]))[:24]
            tld = ".es" if rng.random() < 0.7 else ".com"
            while domain + tld in domains:
                domain += str(rng.randint(0, 9))
            domains.add(domain + tld)
            names[key] = (name, domain + tld)
        return list(names.values())

    @staticmethod
    def _person(rng: random.Random) -> tuple[str, str]:
        if rng.random() < 0.75:
            last = rng.choice(LAST_ES)
            if rng.random() < 0.5:
                last = f"{last} {rng.choice(LAST_ES)}"
            return rng.choice(FIRST_ES), last
        return rng.choice(FIRST_EN), rng.choice(LAST_EN)

    @staticmethod
    def _email(rng: random.Random, taken: set[str], first: str, last: str, domain: str | None) -> str:
        """A new e-mail for the person (`taken` gets it): at the company's domain or a free mail provider."""
        f, surnames = _ascii(first), [_ascii(p) for p in last.split()]
        roll = rng.random()
        local = (
            f"{f}.{surnames[0]}"
            if roll < 0.5
            else f"{f[0]}{surnames[0]}"
            if roll < 0.75
            else f"{f}.{'.'.join(surnames)}"
            if roll < 0.9
            else f
        )
        at = domain if domain and rng.random() < 0.6 else rng.choice(FREE_MAIL)
        email, n = f"{local}@{at}", 1
        while email in taken:
            n += 1
            email = f"{local}{n}@{at}"
        taken.add(email)
        return email

    @staticmethod
    def _phone(rng: random.Random) -> str:
        mobile = f"6{rng.randrange(10**8):08d}"
        land = f"9{rng.choice('1345678')}{rng.randrange(2 * 10**6, 10**7):07d}"
        roll = rng.random()
        if roll < 0.25:
            return f"+34 {mobile[:3]} {mobile[3:6]} {mobile[6:]}"
        if roll < 0.45:
            return mobile
        if roll < 0.55:
            return f"{mobile[:3]} {mobile[3:5]} {mobile[5:7]} {mobile[7:]}"
        if roll < 0.6:
            return f"0034{mobile}"
        if roll < 0.7:
            return f"(+34) {land[:2]} {land[2:5]} {land[5:7]} {land[7:]}"
        if roll < 0.77:
            return f"{land[:3]}-{land[3:6]}-{land[6:]}"
        if roll < 0.82:
            exchange = rng.choice([n for n in range(201, 990) if n != 555])
            return f"+1 ({rng.choice(('212', '305', '415', '646'))}) {exchange}-{rng.randrange(10**4):04d}"
        if roll < 0.86:
            return f"+52 55 {rng.randrange(1000, 10**4)} {rng.randrange(10**4):04d}"
        if roll < 0.89:
            return f"+44 20 7{rng.randrange(100, 1000)} {rng.randrange(10**4):04d}"
        if roll < 0.95:
            return f"{mobile[:3]} {mobile[3:6]} {mobile[6:]} (móvil)"
        return f"{mobile} / {land}"

    @staticmethod
    def _bad(rng: random.Random, email: str) -> str:
        local, domain = email.split("@")
        return rng.choice(
            (
                f"{local}@@{domain}",
                f"{local}@",
                f"{local}.{domain}",
                f"{local} @{domain}",
                f"{local}@{domain.rsplit('.', 1)[0]}",
                f"{local}@{domain}.",
            )
        )

    def rows(self, count: int) -> Iterator[list[Any]]:
        """The data rows, in file order; the same for any count (a shorter file is a prefix of a longer one)."""
        rng = random.Random(self.seed * 1_000_003 + 1)
        taken = set(self.emails)
        # Earlier rows, to copy; and those with a good e-mail, to repeat it.
        recent: deque[list[Any]] = deque(maxlen=RECENT)
        mailed: deque[list[Any]] = deque(maxlen=RECENT)
        today = date(2026, 11, 30)
        for _ in range(count):
            roll = rng.random()
            if roll < EXACT_COPY and recent:
                yield list(rng.choice(recent))
                continue
            if roll < EXACT_COPY + SAME_EMAIL and mailed:
                # The same person again (another fair, another list): same e-mail, other details.
                earlier = rng.choice(mailed)
                row = [None, earlier[1], earlier[2], earlier[3], rng.choice(TITLES), earlier[5], self._phone(rng)]
                yield [*row, rng.choice(TAGS), rng.choice(SOURCES), today - timedelta(days=rng.randrange(5)), None]
                continue
            if roll < EXACT_COPY + SAME_EMAIL + KNOWN_EMAIL + KNOWN_ID:
                # A contact already in Fieldbook: by its id (an exported row sent back) or by its e-mail alone.
                known = rng.choice(self.seeded_contacts)
                row = [str(known["id"]) if roll >= EXACT_COPY + SAME_EMAIL + KNOWN_EMAIL else None]
                row += [known["first"], known["last"], known["company"], rng.choice(TITLES), known["email"]]
                yield [*row, self._phone(rng), "cliente", "feria", today - timedelta(days=rng.randrange(5)), None]
                continue
            first, last = self._person(rng)
            company: tuple[str, str] | None = None
            if rng.random() >= NO_COMPANY:
                company = rng.choices(self.companies, cum_weights=self.cum_weights)[0]
            company_name = company[0] if company else None
            if company_name and rng.random() < SHOUTED_COMPANY:
                company_name = company_name.upper()
            email_roll = rng.random()
            email: str | None = None
            good = False
            if email_roll >= NO_EMAIL:
                email = self._email(rng, taken, first, last, company[1] if company else None)
                if email_roll >= 1 - TWO_EMAILS:
                    email = f"{email}; {self._email(rng, taken, first, last, None)}"
                good = rng.random() >= BAD_EMAIL
                if not good:
                    email = self._bad(rng, email.split(";")[0])
            row = [
                None,
                first,
                last,
                company_name,
                rng.choice(TITLES) if rng.random() < 0.7 else None,
                email,
                self._phone(rng) if rng.random() >= NO_PHONE else None,
                ", ".join(rng.sample(TAGS, rng.randint(1, 3))) if rng.random() < 0.6 else None,
                rng.choice(SOURCES) if rng.random() < 0.8 else None,
                today - timedelta(days=rng.randrange(2_000)),
                (rng.choice(NOTES) or None) if rng.random() < 0.1 else None,
            ]
            recent.append(row)
            if good:
                mailed.append(row)
            yield row


def write_xlsx(path: Path, contacts: Contacts, count: int) -> float:
    """The file, written row by row (openpyxl's write-only mode); seconds taken."""
    from openpyxl import Workbook

    started = time.perf_counter()
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Contactos")
    sheet.append(HEADERS)
    for row in contacts.rows(count):
        sheet.append(row)
    book.save(path)
    return time.perf_counter() - started


# The databases


def _principal(org_id: str, admin_id: str) -> Any:
    from api.auth.models import Role
    from api.auth.principals import Principal

    return Principal(kind="user", org_id=uuid.UUID(org_id), id=uuid.UUID(admin_id), role=Role.admin, team_id=None)


async def prepare(url: str, contacts: Contacts) -> dict[str, Any]:
    """A fresh, migrated database with the organisation, its admin, and the companies and contacts the file names."""
    from api.auth.models import Role
    from api.auth.principals import Principal
    from api.auth.schemas import UserCreate
    from api.auth.service import create_organization, create_user
    from api.clients import service as clients
    from api.clients.schemas import CompanyCreate, ContactCreate
    from api.core.db import Database, commit, make_engine
    from api.core.migrate import upgrade
    from api.sharing.visibility import viewer_for

    started = time.perf_counter()
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url, null_pool=True)
    db = Database(engine)
    try:
        async with db.writer() as session:
            org = await create_organization(session, name=ORG_NAME, settings=ORG_SETTINGS)
            admin, _ = await create_user(
                session=session,
                principal=Principal.system(org.id),
                data=UserCreate(email=ADMIN_EMAIL, name="Admin User", role=Role.admin, password=common.PASSWORD),
            )
            await commit(session, None)
            org_id, admin_id = org.id, admin.id
        principal = _principal(str(org_id), str(admin_id))
        async with db.writer() as session:
            viewer = await viewer_for(session, principal)
            for company_id, index in contacts.seeded_companies:
                name, domain = contacts.companies[index]
                data = CompanyCreate(id=company_id, name=name, domain=domain)
                await clients.create_client(
                    session=session, viewer=viewer, spec=clients.COMPANY, data=data, confirm_duplicate=True
                )
            for known in contacts.seeded_contacts:
                contact = ContactCreate(
                    id=known["id"],
                    name=f"{known['first']} {known['last']}",
                    emails=[known["email"]],
                    company_id=known["company_id"],
                    title=known["title"],
                )
                await clients.create_client(
                    session=session, viewer=viewer, spec=clients.CONTACT, data=contact, confirm_duplicate=True
                )
            await commit(session, None)
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("VACUUM (ANALYZE)")
    finally:
        await engine.dispose()
    return {"org_id": str(org_id), "admin_id": str(admin_id), "seconds": time.perf_counter() - started}


# The parts, each run in a child process


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _peak_kib() -> int:
    """This process's peak RSS. Not ru_maxrss alone: Linux carries the parent's high-water mark over fork and exec
    into it (the first runs read 171 MiB, the parent's size, for every part); VmHWM starts afresh at exec."""
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def part_openpyxl(spec: dict[str, Any]) -> dict[str, Any]:
    from openpyxl import load_workbook

    started = time.perf_counter()
    book = load_workbook(spec["file"], read_only=True, data_only=True)
    rows = cells = 0
    try:
        for row in book.worksheets[0].iter_rows(values_only=True):
            rows += 1
            for value in row:
                if value is not None:
                    cells += 1
    finally:
        book.close()
    return {"seconds": time.perf_counter() - started, "rows": rows - 1, "cells": cells}


def part_reading(spec: dict[str, Any]) -> dict[str, Any]:
    from api.imports.reading import open_table

    started = time.perf_counter()
    opened, records, _ = open_table(Path(spec["file"]))
    rows = cells = 0
    for _, row in records:
        rows += 1
        cells += sum(value is not None for value in row)
    return {"seconds": time.perf_counter() - started, "rows": rows, "cells": cells, "headers": opened.headers}


class Statements:
    """Every statement the engine sends: how many, and the time spent in the driver's execute."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.count, self.seconds, self._started = 0, 0.0, 0.0
        event.listen(engine.sync_engine, "before_cursor_execute", self.before)
        event.listen(engine.sync_engine, "after_cursor_execute", self.after)

    def before(self, *_: Any) -> None:
        self.count += 1
        self._started = time.perf_counter()

    def after(self, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._started


async def _flow(spec: dict[str, Any], phase: str, profiler: cProfile.Profile | None = None) -> dict[str, Any]:
    """One phase of the import on the database at spec["url"]."""
    from api.core.db import Database, commit, make_engine
    from api.imports import runner, service
    from api.imports.models import ImportEntity
    from api.imports.schemas import Decisions, MappingIn

    principal = _principal(spec["org_id"], spec["admin_id"])
    engine = make_engine(spec["url"], null_pool=True)
    db = Database(engine)
    statements = Statements(engine)
    out: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        if phase == "upload":
            async with db.writer() as session:
                with open(spec["file"], "rb") as data:
                    job = await service.upload(
                        session=session,
                        principal=principal,
                        entity=ImportEntity.contact,
                        file_name=Path(spec["file"]).name,
                        data=data,
                        sheet=None,
                    )
                await commit(session, None)
            out |= {"job_id": str(job.id), "rows_total": job.rows_total, "mapping": job.mapping}
        elif phase == "mapping":
            async with db.writer() as session:
                job = await runner.get_job(session, principal.org_id, uuid.UUID(spec["job_id"]))
                columns = {h: job.mapping.get(h) for h in job.headers}
                job = await service.set_mapping(
                    session=session,
                    principal=principal,
                    job_id=job.id,
                    data=MappingIn(columns=columns),
                    expected_version=None,
                )
                waiting = await runner.undecided(session, job)
                await commit(session, None)
            out |= {"mapping": job.mapping, "options": job.options, "undecided": waiting}
        elif phase == "decide":
            async with db.writer() as session:
                job = await service.decide(
                    session=session,
                    principal=principal,
                    job_id=uuid.UUID(spec["job_id"]),
                    data=Decisions(defaults={"company": "create"}),
                    expected_version=None,
                )
                await commit(session, None)
        else:
            steps = 0
            if profiler is not None:
                profiler.enable()
            while True:
                job = await runner.step(db, None, principal, uuid.UUID(spec["job_id"]), phase)
                steps += 1
                if job.status != runner.PHASES[phase][1].value:
                    break
            if profiler is not None:
                profiler.disable()
            out |= {"steps": steps, "status": job.status, "totals": job.planned if phase == "preview" else job.counts}
        out["seconds"] = time.perf_counter() - started
        out |= {"statements": statements.count, "sql_seconds": statements.seconds}
        if phase == "import":
            out["records"] = await _records(db, principal.org_id)
    finally:
        await engine.dispose()
    return out


async def _records(db: Any, org_id: uuid.UUID) -> dict[str, int]:
    import sqlalchemy as sa

    from api.clients.models import Company, Contact, ContactPoint

    found = {}
    async with db.reader() as session:
        for model in (Company, Contact, ContactPoint):
            table = model.__table__
            found[table.name] = int(
                await session.scalar(sa.select(sa.func.count()).select_from(table).where(table.c.org_id == org_id)) or 0
            )
    return found


PLUMBING = (
    *("asyncio/", "greenlet", "_concurrency_py3k", "bench/imports.py", "{built-in method _asyncio", "<frozen"),
    *("/selectors.py", "'select.epoll'"),
)
# The runner's loop around every row, and SQLAlchemy's generated wrappers (the same time as what they wrap).
LOOP = ("api.imports.runner:step", "api.imports.runner:_work", "api.imports.runner:_batch")
TOP_FUNCTIONS = 10


def _where(key: tuple[str, int, str]) -> str:
    """A profile entry as module:function (api.imports.plan:plan_row, sqlalchemy.orm.session:flush)."""
    filename, _, name = key
    if filename == "~":
        return _c_name(name)
    path = filename.replace("\\", "/")
    for marker in ("/site-packages/", f"{ROOT}/", "/lib/python3.11/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    return f"{module}:{name}"


def _c_name(name: str) -> str:
    """`<method 'poll' of 'select.epoll' objects>` as `select.epoll.poll` (C)."""
    method = re.fullmatch(r"<method '(\w+)' of '([\w.]+)' objects>", name)
    if method:
        return f"{method[2]}.{method[1]} (C)"
    builtin = re.fullmatch(r"<built-in method ([\w.]+)>", name)
    return f"{builtin[1] if builtin else name} (C)"


def _package(key: tuple[str, int, str]) -> str:
    """Where a function's own time is counted: api.<domain>, a library, the standard library, or a C function."""
    filename = key[0]
    if filename == "~":
        return _c_name(key[2])
    path = filename.replace("\\", "/")
    if f"{ROOT}/api/" in path:
        parts = path.split(f"{ROOT}/", 1)[1].removesuffix(".py").split("/")
        return ".".join(parts[:2])
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/")[0].removesuffix(".py")
    if "/lib/python3" in path:
        return "stdlib asyncio" if "/asyncio/" in path else "stdlib (other)"
    return _where(key).split(":")[0]


def summarise(raw: dict[Any, Any]) -> dict[str, Any]:
    """cProfile's numbers, for the report: the top functions by cumulative time within the runner's step (without
    the loop itself, the event loop's and greenlets' frames and SQLAlchemy's generated wrappers), and the self time
    summed per package (C functions one by one)."""
    step = max((ct for key, (_, _, _, ct, _) in raw.items() if _where(key) == LOOP[0]), default=0.0)
    cumulative = []
    for key, (_, _, _, ct, _) in sorted(raw.items(), key=lambda item: -item[1][3]):
        where = _where(key)
        if any(p in key[0] or p in key[2] for p in PLUMBING) or where in LOOP or "generated" in where:
            continue
        cumulative.append([where, ct])
        if len(cumulative) == 25:
            break
    by_package: dict[str, float] = defaultdict(float)
    for key, (_, _, tt, _, _) in raw.items():
        by_package[_package(key)] += tt
    packages = sorted(by_package.items(), key=lambda item: -item[1])[:15]
    return {
        "step_seconds": step,
        "self_seconds": sum(by_package.values()),
        "cumulative": cumulative,
        "packages": [[name, seconds] for name, seconds in packages],
    }


def part_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """The whole flow on a small file, the import phase under cProfile."""
    for phase in ("upload", "mapping", "decide", "preview"):
        done = asyncio.run(_flow(spec, phase))
        if phase == "upload":
            spec = {**spec, "job_id": done["job_id"]}
    profiler = cProfile.Profile()
    done = asyncio.run(_flow(spec, "import", profiler))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
    Path(spec["dump"]).write_text(text.getvalue())
    profiler.dump_stats(spec["dump"].removesuffix(".txt") + ".prof")
    return {**done, **summarise(pstats.Stats(profiler).stats)}  # type: ignore[attr-defined]


def run_part(spec: dict[str, Any]) -> dict[str, Any]:
    """In this (child) process: one part, its time and its memory peak."""
    import tracemalloc

    if spec["part"] in ("openpyxl", "reading"):
        import openpyxl  # noqa: F401  # imported before the measure, as the app has it loaded

        from api.imports import reading  # noqa: F401
    else:
        from api.imports import runner, service  # noqa: F401
    start_rss, start_peak = _status_kib("VmRSS"), _peak_kib()
    load_before, cpu_before = os.getloadavg()[0], _cpu_seconds()
    if spec.get("tracemalloc"):
        tracemalloc.start()
    part = spec["part"]
    if part == "openpyxl":
        out = part_openpyxl(spec)
    elif part == "reading":
        out = part_reading(spec)
    elif part == "profile":
        out = part_profile(spec)
    else:
        out = asyncio.run(_flow(spec, part))
    if spec.get("tracemalloc"):
        out["traced_peak_kib"] = tracemalloc.get_traced_memory()[1] // 1024
        tracemalloc.stop()
    return {
        **out,
        "start_rss_kib": start_rss,
        "start_peak_kib": start_peak,
        "peak_rss_kib": _peak_kib(),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "cpu_seconds": _cpu_seconds() - cpu_before,
        "load": [load_before, os.getloadavg()[0]],
    }


def _cpu_seconds() -> float:
    """User and system CPU time of this process, all its threads (aiosqlite's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one part in a fresh Python process; what it measured."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.imports", "--child", json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"part {spec['part']} failed ({done.returncode}): {done.stdout[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT_MARK))
    return result


# The run


PHASES = (
    ("openpyxl", "(a) openpyxl read_only: every value"),
    ("reading", "(b) Fieldbook's reading (`open_table`)"),
    ("upload", "(c) upload: read into import_row"),
    ("mapping", "(d) mapping (suggested) + column checks"),
    ("decide", "(e) decisions (companies: create)"),
    ("preview", "(f) dry run"),
    ("import", "(g) import"),
)
FLOW = ("upload", "mapping", "decide", "preview", "import")
# What a block of the run measures: the whole flow, or the file's reading and upload up to the decisions.
ALL = tuple(part for part, _ in PHASES)
UP_TO_DECISIONS = ALL[:5]


def _backends(args: argparse.Namespace) -> list[str]:
    return [name for name, key in (("SQLite", "sqlite"), ("PostgreSQL", "postgres")) if args.db in (key, "both")]


def _fresh(name: str, directory: Path, database: str, sqlite_name: str) -> str:
    """The URL of a new, empty database: a SQLite file in `directory`, or PostgreSQL's `database` recreated."""
    if name == "SQLite":
        path = directory / sqlite_name
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite+aiosqlite:///{path}"
    asyncio.run(create_database(database))
    return common.sqlalchemy_url(database)


def run_backend(
    name: str, url: str, file: Path, contacts: Contacts, parts: tuple[str, ...], rows: int
) -> dict[str, Any]:
    setup = asyncio.run(prepare(url, contacts))
    console.log(f"{name}, {rows:,} rows: database ready in {setup['seconds']:.1f} s")
    results: dict[str, Any] = {"setup": setup}
    spec: dict[str, Any] = {"file": str(file), "url": url, "org_id": setup["org_id"], "admin_id": setup["admin_id"]}
    for part, label in PHASES:
        if part not in parts:
            continue
        done = child({**spec, "part": part})
        results[part] = done
        if part == "upload":
            spec["job_id"] = done["job_id"]
        extra = f", {done['steps']} steps, {done['totals']}" if "totals" in done else ""
        console.log(
            f"{name}, {rows:,} rows: {label}: {done['seconds']:.1f} s, peak RSS "
            f"{done['peak_rss_kib'] / 1024:.0f} MiB{extra}"
        )
    if url.startswith("postgresql"):
        results["postgres"] = asyncio.run(_server_version(url.rsplit("/", 1)[1]))
    return results


def run_profile(name: str, url: str, file: Path, contacts: Contacts, args: argparse.Namespace) -> dict[str, Any]:
    setup = asyncio.run(prepare(url, contacts))
    dump = file.with_name(f"profile-{name.lower()}.txt")
    spec = {"file": str(file), "url": url, "org_id": setup["org_id"], "admin_id": setup["admin_id"]}
    done = child({**spec, "part": "profile", "dump": str(dump)})
    console.log(f"{name}: import of {args.profile_rows:,} rows under cProfile: {done['seconds']:.1f} s")
    if args.keep_profiles:
        shutil.copy(dump, Path.cwd() / dump.name)
        shutil.copy(dump.with_suffix(".prof"), Path.cwd() / dump.with_suffix(".prof").name)
    return done


async def _server_version(database: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(common.dsn(database))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(common.dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# Reporting


def _s(seconds: float) -> str:
    if seconds >= 600:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds:,.1f} s" if seconds < 100 else f"{seconds:,.0f} s"


def _cpu(seconds: float) -> str:
    return f"{seconds:,.1f}" if seconds < 100 else f"{seconds:,.0f}"


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "-"


def table_rows(runs: dict[str, dict[str, Any]], rows: int) -> list[list[str]]:
    names = list(runs)
    first = runs[names[0]]
    done = [(part, label) for part, label in PHASES if part in first]
    flow = [part for part in FLOW if part in first]
    total_label = "(c) to (g): the import, all phases" if "import" in first else "(c) to (e) together"
    out = []
    for part, label in [*done, ("total", total_label)]:
        line = [label]
        for name in names:
            r = runs[name]
            seconds = sum(r[p]["seconds"] for p in flow) if part == "total" else r[part]["seconds"]
            # The decisions touch the job's values, not its rows: a rate per row would mean nothing.
            rate = "-" if part == "decide" else _rate(rows, seconds)
            line += [_s(seconds), rate, f"{seconds / r['openpyxl']['seconds']:,.1f}x"]
        if part == "total":
            peaks = [max(runs[n][p]["peak_rss_kib"] for p in flow) for n in names]
            cpu = [sum(runs[n][p].get("cpu_seconds", 0.0) for p in flow) for n in names]
            line += [" / ".join(_mib(p) for p in peaks), "", " / ".join(_cpu(c) for c in cpu), "", ""]
        else:
            parts = [runs[n][part] for n in names]
            line.append(" / ".join(_mib(d["peak_rss_kib"]) for d in parts))
            line.append(" / ".join(_mib(d["start_rss_kib"]) for d in parts))
            line.append(" / ".join(_cpu(d.get("cpu_seconds", 0.0)) for d in parts))
            sql = [d for d in parts if "statements" in d]
            line.append(
                " / ".join(f"{d['statements']:,} ({d['sql_seconds'] / d['seconds']:.0%})" for d in sql) if sql else ""
            )
            line.append(" / ".join(f"{d['load'][0]:.1f}" if "load" in d else "?" for d in parts))
        out.append(line)
    return out


def header(runs: dict[str, dict[str, Any]]) -> list[str]:
    names = list(runs)
    out = ["phase"]
    for name in names:
        out += [f"{name} time", "rows/s", "÷ (a)"]
    both = " / ".join(names)
    return [
        *out,
        f"peak RSS MiB ({both})",
        "RSS at start",
        "CPU s",
        "statements (time in SQL execute)",
        "load at start",
    ]


def _totals(done: dict[str, Any]) -> str:
    totals = done["totals"]
    return ", ".join(f"{totals.get(k, 0):,} {k}" for k in OUTCOMES)


def checks(runs: dict[str, dict[str, Any]], rows: int) -> list[str]:
    out = []
    for name, r in runs.items():
        if "import" not in r:
            continue
        for phase in ("preview", "import"):
            total = sum(r[phase]["totals"].values())
            verdict = "adds up" if total == rows == r["upload"]["rows_total"] else "DOES NOT ADD UP"
            what = "dry run" if phase == "preview" else "import"
            out.append(f"- {name} {what}: {_totals(r[phase])} = {total:,} of {rows:,} rows ({verdict})")
        records = r["import"]["records"]
        out.append(
            f"- {name} after the import: {records['contact']:,} contacts, {records['company']:,} companies, "
            f"{records['contact_point']:,} contact points (it started with {SEEDED_CONTACTS:,} contacts and "
            f"{SEEDED_COMPANIES} companies)"
        )
    return out


def profile_lines(profiles: dict[str, dict[str, Any]], rows: int) -> list[str]:
    out: list[str] = []
    for name, p in profiles.items():
        out += [
            f"##### {name}: the import phase of {rows:,} rows under cProfile ({_s(p['seconds'])}, "
            f"{_rate(rows, p['seconds'])} rows/s with the profiler on; {p['statements']:,} statements)",
            "",
            "| # | function (module:function) | cumulative s | of the step's |",
            "|---:|---|---:|---:|",
        ]
        for i, (where, seconds) in enumerate(p["cumulative"][:TOP_FUNCTIONS], 1):
            out.append(f"| {i} | `{where}` | {seconds:,.1f} | {seconds / p['step_seconds']:.0%} |")
        out += ["", f"Self time by package ({p['self_seconds']:,.0f} s in all):", ""]
        out += ["| package or C function | self s | share |", "|---|---:|---:|"]
        for package, seconds in p["packages"][:10]:
            out.append(f"| {package} | {seconds:,.1f} | {seconds / p['self_seconds']:.0%} |")
        out.append("")
    return out


def _memory_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024**2:.0f} GiB"
    return "?"


def facts(blocks: dict[int, dict[str, dict[str, Any]]], info: dict[str, Any]) -> list[str]:
    import openpyxl
    import sqlalchemy

    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as lines:
        cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    try:
        import lxml  # noqa: F401

        xml = "lxml installed"
    except ImportError:
        xml = "no lxml: openpyxl parses with the standard library's ElementTree"
    runs = [r for block in blocks.values() for r in block.values()]
    postgres = next((r["postgres"] for r in runs if "postgres" in r), "not run")
    files = "; ".join(
        f"{rows:,} rows: {size / 1024**2:.1f} MiB, written in {seconds:.0f} s" for rows, size, seconds in info["files"]
    )
    return [
        f"- {os.cpu_count()} cores ({cpu}), {_memory_total()} RAM; Python {platform.python_version()}, "
        f"SQLAlchemy {sqlalchemy.__version__}, SQLite {sqlite3.sqlite_version}, PostgreSQL {postgres}, "
        f"openpyxl {openpyxl.__version__} ({xml})",
        f"- the files ({len(HEADERS)} columns; the smaller one is the first rows of the larger): {files}",
        f"- the mapping the headers suggested: {info['mapping']}; company names that matched nothing (created, "
        f'`defaults: {{"company": "create"}}`): {info["undecided"]}',
        f"- each database made fresh (migrate, organisation, admin, {SEEDED_COMPANIES} companies and "
        f"{SEEDED_CONTACTS:,} contacts through `create_client`), before each block; the import runs as "
        "`fieldbook import` does (no app: no goal watchers, no after-commit hooks)",
        f"- the Python heap's peak under tracemalloc ({info['traced_rows']:,} rows, separate runs): openpyxl "
        f"{info['traced']['openpyxl'] / 1024:,.1f} MiB, Fieldbook's reading {info['traced']['reading'] / 1024:,.1f} "
        "MiB",
        f"- load average (1/5/15 min) at the end: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}",
    ]


def markdown(
    blocks: dict[int, dict[str, dict[str, Any]]],
    profiles: dict[str, dict[str, Any]],
    info: dict[str, Any],
    command: str,
    total_s: float,
) -> str:
    out = [
        START,
        f"_Generated by `{command}` at {datetime.now(UTC).isoformat(timespec='seconds')} in {total_s / 60:.0f} min; "
        "the text between the markers is rewritten on each run._",
        "",
        *facts(blocks, info),
        "",
    ]
    for rows, runs in blocks.items():
        whole = "import" in next(iter(runs.values()))
        what = "the whole flow" if whole else "reading, upload, mapping and decisions (no dry run, no import)"
        out += [f"#### {rows:,} rows: {what}", "", *_md(header(runs), table_rows(runs, rows)), ""]
    out += [
        "Wall time; `÷ (a)`: over openpyxl's read of the same file in the same block (it runs just before the "
        "import on each database). `peak RSS`: the child process's peak resident set (VmHWM: Python, the app's "
        "modules and the part); `RSS at start`: its RSS once the modules are imported, before the part. `CPU s`: "
        "the child's user + system time, all its threads (PostgreSQL's own work is not in it). `statements`: what "
        "the engine sent, and the share of the phase's wall time spent in the driver's execute. `load at start`: "
        "the machine's 1-minute load average when the part started (2 cores: above 2, parts wait for a CPU).",
        "",
    ]
    lines = [line for rows, runs in blocks.items() for line in checks(runs, rows)]
    if lines:
        out += ["#### The outcomes", "", *lines, ""]
    if profiles:
        out += [
            "#### Where the import's time goes",
            "",
            "The top functions by cumulative time, as a share of `runner.step`'s (without the runner's loop, the "
            "event loop's and greenlets' frames and SQLAlchemy's generated wrappers; cProfile counts each resumption "
            "of a coroutine as a call and times greenlet switches loosely, so the times are approximate and call "
            "counts are left out), then the self time of every function summed per package, C functions one by one "
            "(`select.epoll.poll`: the event loop waiting for the database; `_queue.SimpleQueue.put_nowait`: "
            "aiosqlite handing a call to its thread). cProfile slows Python code more than waits. A fresh database "
            "of each kind, seeded as above.",
            "",
            *profile_lines(profiles, info["profile_rows"]),
        ]
    out.append(END)
    return "\n".join(out)


def _md(head: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in body)]


def show(
    blocks: dict[int, dict[str, dict[str, Any]]], profiles: dict[str, dict[str, Any]], info: dict[str, Any]
) -> None:
    for rows, runs in blocks.items():
        t = Table(title=f"{rows:,} contacts")
        for i, name in enumerate(header(runs)):
            t.add_column(name, justify="left" if i == 0 else "right")
        for row in table_rows(runs, rows):
            t.add_row(*row)
        console.print(t)
        for line in checks(runs, rows):
            console.print(line, markup=False, highlight=False)
    for name, p in profiles.items():
        t = Table(title=f"{name}: import of {info['profile_rows']:,} rows under cProfile ({_s(p['seconds'])})")
        for column in ("function", "cumulative s", "of the step's"):
            t.add_column(column)
        for where, seconds in p["cumulative"][:15]:
            t.add_row(where, f"{seconds:.1f}", f"{seconds / p['step_seconds']:.0%}")
        console.print(t)
        t = Table(title=f"{name}: self time by package")
        t.add_column("package")
        t.add_column("self s")
        for package, seconds in p["packages"]:
            t.add_row(package, f"{seconds:.2f}")
        console.print(t)


INTRO = """A contacts spreadsheet imported through `api/imports` (upload, mapping, decisions, dry run, import, as
`fieldbook import` runs them), timed next to reading the same file with openpyxl alone in the same run, with each
part's memory peak, on SQLite and PostgreSQL (`bench/imports.py`, whose docstring says how the file and the
databases are made).

```sh
.venv/bin/python -m bench.imports --rows 100000 --full-rows 20000   # ~26 min: see the reading for why 20k
.venv/bin/python -m bench.imports --rows 100000                     # the whole flow at 100k: over an hour
.venv/bin/python -m bench.imports --rows 5000 --db sqlite --no-write
```
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="data rows in the file")
    parser.add_argument(
        "--full-rows",
        type=int,
        help="rows that go through the whole flow (default: --rows); when fewer, the --rows file is read, uploaded, "
        "mapped and decided, and the whole flow runs on its first --full-rows rows",
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--profile-rows", type=int, default=5_000, help="rows of the profiled import (0: none)")
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="PostgreSQL database to (re)create")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--keep-profiles", action="store_true", help="copy cProfile's output into the working directory"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file to write the report into")
    parser.add_argument("--json", type=Path, help="also write what was measured, as JSON")
    parser.add_argument("--no-write", action="store_true", help="print only; write no report")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Before anything reads the settings: production, with the bench's secret (as the other benchmarks).
    os.environ["FIELDBOOK_ENV"] = "production"
    os.environ["FIELDBOOK_SECRET_KEY"] = common.SECRET_KEY
    if args.child:
        print(RESULT_MARK + json.dumps(run_part(json.loads(args.child))), flush=True)
        return
    full = min(args.full_rows or args.rows, args.rows)
    plan = [(args.rows, ALL)] if full == args.rows else [(args.rows, UP_TO_DECISIONS), (full, ALL)]
    started = time.perf_counter()
    directory = Path(tempfile.mkdtemp(prefix="fieldbook-imports-"))
    contacts = Contacts(args.seed)
    info: dict[str, Any] = {"profile_rows": args.profile_rows, "files": []}
    blocks: dict[int, dict[str, dict[str, Any]]] = {}
    profiles: dict[str, dict[str, Any]] = {}
    try:
        files: dict[int, Path] = {}
        for rows in sorted({args.rows, full, args.profile_rows} - {0}, reverse=True):
            files[rows] = directory / f"contactos-{rows}.xlsx"
            seconds = write_xlsx(files[rows], contacts, rows)
            info["files"].append((rows, files[rows].stat().st_size, seconds))
            console.log(f"Wrote {files[rows].name}: {files[rows].stat().st_size / 1024**2:.1f} MiB in {seconds:.0f} s")
        big = files[args.rows]
        traced = {
            part: child({"part": part, "file": str(big), "tracemalloc": True}) for part in ("openpyxl", "reading")
        }
        info["traced"] = {part: done["traced_peak_kib"] for part, done in traced.items()}
        info["traced_rows"] = args.rows
        for rows, parts in plan:
            blocks[rows] = {}
            for name in _backends(args):
                url = _fresh(name, directory, args.database, f"imports-{rows}.db")
                blocks[rows][name] = run_backend(name, url, files[rows], contacts, parts, rows)
        first = next(iter(blocks[args.rows].values()))
        info["mapping"] = ", ".join(f"{h} → {k}" for h, k in first["mapping"]["mapping"].items())
        info["undecided"] = f"{first['mapping']['undecided']:,} in the {args.rows:,} rows" + "".join(
            f", {next(iter(blocks[rows].values()))['mapping']['undecided']:,} in the {rows:,}" for rows, _ in plan[1:]
        )
        if args.profile_rows:
            for name in _backends(args):
                url = _fresh(name, directory, PROFILE_DATABASE, "imports-profile.db")
                profiles[name] = run_profile(name, url, files[args.profile_rows], contacts, args)
                if url.startswith("postgresql"):
                    asyncio.run(_drop_database(PROFILE_DATABASE))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    total = time.perf_counter() - started
    if args.json:
        args.json.write_text(json.dumps({"blocks": blocks, "profiles": profiles, "info": info}, indent=1, default=str))
    show(blocks, profiles, info)
    console.print(f"Done in {total / 60:.1f} min")
    if not args.no_write:
        command = "python -m bench.imports " + " ".join(argv if argv is not None else sys.argv[1:])
        common.write_section(
            args.results,
            (START, END),
            markdown(blocks, profiles, info, command.strip(), total),
            f"{SECTION}\n\n{INTRO.rstrip()}",
        )
        console.print(f"Written to {args.results}")


if __name__ == "__main__":
    main()
