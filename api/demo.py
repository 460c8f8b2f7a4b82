"""The demo organisation: a Spanish field-sales company with a year of history, to try Fieldbook on.

Three sales teams (a manager and three reps each), an administrator and a marketing user; companies and their
contacts in each team's region; deals that walk the default pipeline stage by stage and are won or lost (with
the organisation's lost reasons), repeat sales to won clients; a year of calls, meetings, e-mails, notes and
tasks, some planned for the coming weeks and some overdue; and what the services would have written alongside:
contact points, feed events and one change-log `create` entry per record. Some reps are clearly better than
others (higher win rates, shorter cycles, more touches per deal), so that insights have something to find.

Deterministic: the same seed on the same day gives the same rows, ids included (UUIDv7s drawn from the seeded
generator and stamped with each record's creation time). Everything is dated relative to the start of today in
Madrid. The rows are generated in memory and written with bulk Core inserts in one transaction, not through the
services one by one, so the full size loads in seconds. Loading twice is harmless: the organisation has a fixed
id, and a second load finds it and stops.
"""

import bisect
import itertools
import math
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import SQLModel, col, select

from api.activities.models import Activity
from api.auth.models import Organization, Role, Team, User
from api.clients.models import ClientKind, Company, Contact, ContactPoint
from api.core.changes import REDACTED, SECRET_FIELDS, UNTRACKED_FIELDS, Change
from api.core.errors import Conflict
from api.core.types import fold
from api.deals.deals import line_amount
from api.deals.models import Deal, DealLine, DealStageEvent, DealStatus, LostReason, Pipeline, Product, Stage, StageKind
from api.deals.service import DEFAULTS
from api.feed.models import FeedEvent, FeedKind
from api.insights import goals
from api.insights.models import Goal, GoalMetric
from api.settings import get_settings

DEMO_ORG_ID = uuid.UUID("018f0000-0000-7000-8000-00000000d3e0")
# Printed for anyone to sign in with, and written as a hash without the password rules (api/auth/passwords.py), which
# would refuse it for naming the product: a demo's password is public on purpose.
DEMO_PASSWORD = "fieldbook-demo"
ADMIN_EMAIL = "admin@demo.fieldbook.app"
DEFAULT_SEED = 2026
ORG_NAME = "Demo Comercial S.L."
TIME_ZONE = ZoneInfo("Europe/Madrid")
ORG_SETTINGS = {"locale": "es-ES", "currency": "EUR", "phone_region": "ES", "time_zone": "Europe/Madrid"}
CURRENCY = "EUR"
# The deals start over the last year; the organisation (and its first clients) a little earlier.
HISTORY_DAYS = 365
SETUP_DAYS = 400

Row = dict[str, Any]


# Size


@dataclass(frozen=True)
class Counts:
    companies: int
    contacts: int
    deals: int
    activities: int


FULL = Counts(companies=2_000, contacts=4_000, deals=3_000, activities=40_000)


def counts(scale: float = 1.0) -> Counts:
    """How many records of each kind a load at `scale` makes (1 is the full demo)."""
    if not 0 < scale <= 10:
        raise ValueError("scale must be in (0, 10]")
    return Counts(*(max(1, round(n * scale)) for n in (FULL.companies, FULL.contacts, FULL.deals, FULL.activities)))


# People


@dataclass(frozen=True)
class Profile:
    """How a seller works; what sets the good ones apart."""

    name: str
    advance: float  # chance of moving a deal on from each open stage (so wins ≈ advance ** 4)
    pace: float  # days spent in each stage, relative to the usual
    touches: float  # activities per stage, relative to the usual
    share: float  # share of the clients and deals
    forgets: float  # chance of leaving a deal without follow-up (it rots)
    late: float  # chance that a planned next step is already overdue


TOP = Profile("top", advance=0.84, pace=0.6, touches=1.6, share=1.15, forgets=0.003, late=0.08)
STEADY = Profile("steady", advance=0.76, pace=1.0, touches=1.0, share=1.0, forgets=0.008, late=0.2)
LEARNING = Profile("learning", advance=0.66, pace=1.5, touches=0.6, share=0.95, forgets=0.02, late=0.4)
MANAGER = Profile("manager", advance=0.79, pace=0.85, touches=1.2, share=0.4, forgets=0.005, late=0.15)


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    role: Role
    team: str | None = None
    profile: Profile | None = None  # sellers only


TEAMS = ("Ventas Norte", "Ventas Centro", "Ventas Sur")
PEOPLE = (
    Person("Ana García", ADMIN_EMAIL, Role.admin),
    Person("Luis Fernández", "luis@demo.fieldbook.app", Role.manager, "Ventas Norte", MANAGER),
    Person("Marta López", "marta@demo.fieldbook.app", Role.rep, "Ventas Norte", TOP),
    Person("Pablo Herrera", "pablo@demo.fieldbook.app", Role.rep, "Ventas Norte", STEADY),
    Person("Jorge Ruiz", "jorge@demo.fieldbook.app", Role.rep, "Ventas Norte", LEARNING),
    Person("Isabel Romero", "isabel@demo.fieldbook.app", Role.manager, "Ventas Centro", MANAGER),
    Person("Lucía Sánchez", "lucia@demo.fieldbook.app", Role.rep, "Ventas Centro", TOP),
    Person("Álvaro Gómez", "alvaro@demo.fieldbook.app", Role.rep, "Ventas Centro", STEADY),
    Person("Raquel Molina", "raquel@demo.fieldbook.app", Role.rep, "Ventas Centro", LEARNING),
    Person("Carmen Díaz", "carmen@demo.fieldbook.app", Role.manager, "Ventas Sur", MANAGER),
    Person("Sofía Martín", "sofia@demo.fieldbook.app", Role.rep, "Ventas Sur", TOP),
    Person("Diego Torres", "diego@demo.fieldbook.app", Role.rep, "Ventas Sur", STEADY),
    Person("Manuel Ortega", "manuel@demo.fieldbook.app", Role.rep, "Ventas Sur", LEARNING),
    Person("Elena Navarro", "elena@demo.fieldbook.app", Role.marketing),
)

# Vocabulary

# (city, phone prefix, postal code prefix) per team's region.
REGIONS = {
    "Ventas Norte": (
        ("Bilbao", "944", "480"),
        ("Getxo", "944", "489"),
        ("San Sebastián", "943", "200"),
        ("Vitoria-Gasteiz", "945", "010"),
        ("Santander", "942", "390"),
        ("Oviedo", "985", "330"),
        ("Gijón", "985", "332"),
        ("Pamplona", "948", "310"),
        ("Logroño", "941", "260"),
        ("A Coruña", "981", "150"),
        ("Vigo", "986", "362"),
    ),
    "Ventas Centro": (
        ("Madrid", "91", "280"),
        ("Alcalá de Henares", "91", "288"),
        ("Getafe", "91", "289"),
        ("Móstoles", "91", "289"),
        ("Toledo", "925", "450"),
        ("Guadalajara", "949", "190"),
        ("Valladolid", "983", "470"),
        ("Salamanca", "923", "370"),
        ("Segovia", "921", "400"),
        ("Ávila", "920", "050"),
        ("Cuenca", "969", "160"),
    ),
    "Ventas Sur": (
        ("Sevilla", "954", "410"),
        ("Dos Hermanas", "955", "417"),
        ("Málaga", "952", "290"),
        ("Marbella", "952", "296"),
        ("Córdoba", "957", "140"),
        ("Granada", "958", "180"),
        ("Cádiz", "956", "110"),
        ("Jerez de la Frontera", "956", "114"),
        ("Almería", "950", "040"),
        ("Huelva", "959", "210"),
        ("Jaén", "953", "230"),
    ),
}
# (industry, name prefixes, usual legal form)
INDUSTRIES = (
    ("Hostelería", ("Restaurante", "Cafetería", "Hotel", "Hostal", "Asador", "Bar", "Marisquería"), ""),
    ("Comercio", ("Ferretería", "Librería", "Panadería", "Pastelería", "Óptica", "Droguería", "Moda"), ""),
    ("Salud", ("Farmacia", "Clínica Dental", "Centro Médico", "Fisioterapia", "Clínica Veterinaria"), ""),
    ("Automoción", ("Talleres", "Recambios", "Autoescuela", "Neumáticos"), " S.L."),
    ("Construcción", ("Construcciones", "Reformas", "Carpintería", "Aluminios", "Instalaciones"), " S.L."),
    ("Distribución", ("Distribuciones", "Suministros", "Almacenes", "Transportes", "Logística"), " S.L."),
    ("Servicios profesionales", ("Asesoría", "Gestoría", "Consultoría", "Abogados", "Inmobiliaria"), ""),
    ("Alimentación", ("Conservas", "Bodegas", "Embutidos", "Quesería", "Aceites", "Frutas"), " S.L."),
    ("Educación", ("Academia", "Colegio", "Escuela Infantil", "Centro de Formación"), ""),
    ("Belleza", ("Peluquería", "Centro de Estética", "Barbería"), ""),
    ("Industria", ("Metalúrgica", "Plásticos", "Envases", "Mecanizados", "Gráficas"), " S.A."),
)
PLACES = (
    "del Norte", "Cantábrico", "La Ribera", "El Olivo", "Los Arcos", "San Roque", "La Estación", "El Puerto",
    "Santa Ana", "La Plaza", "Mediterráneo", "Atlántico", "La Sierra", "El Valle", "La Huerta", "El Faro",
    "Los Pinos", "La Alameda", "El Molino", "Los Robles", "La Fuente", "El Castillo", "San Miguel", "La Vega",
    "Altamira", "Bahía", "Horizonte", "Ibérica", "Hispania", "La Costa", "Guadalquivir", "Ebro", "Duero", "Tajo",
    "Nervión", "Miño", "Genil", "Las Dunas", "El Mirador", "La Torre", "Buenavista", "Los Álamos", "La Rosaleda",
)  # fmt: skip
SURNAMES = (
    "García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Martín",
    "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Alonso", "Gutiérrez",
    "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Ramírez", "Serrano", "Blanco", "Molina",
    "Morales", "Suárez", "Ortega", "Delgado", "Castro", "Ortiz", "Rubio", "Marín", "Sanz", "Núñez", "Iglesias",
    "Medina", "Garrido", "Cortés", "Castillo", "Santos", "Lozano", "Guerrero", "Cano", "Prieto", "Méndez",
    "Cruz", "Calvo", "Gallego", "Vidal", "León", "Márquez", "Herrera", "Peña", "Flores", "Cabrera", "Campos",
    "Vega", "Fuentes", "Carrasco", "Díez", "Caballero", "Reyes", "Nieto", "Aguilar", "Pascual", "Santana",
    "Herrero", "Montero", "Lorenzo", "Hidalgo", "Giménez", "Ibáñez", "Ferrer", "Durán", "Benítez", "Mora",
    "Vargas", "Arias", "Carmona", "Crespo", "Román", "Pastor", "Soto", "Sáez", "Velasco", "Moya", "Soler",
    "Parra", "Esteban", "Bravo", "Gallardo", "Rojas", "Aranda", "Echeverría", "Goikoetxea", "Etxeberria",
    "Arrieta", "Zubizarreta", "Otero", "Varela", "Castaño", "Quintana", "Valverde", "Robles", "Salinas",
)  # fmt: skip
WOMEN = (
    "María", "Carmen", "Ana", "Isabel", "Laura", "Lucía", "Marta", "Cristina", "Paula", "Elena", "Sara", "Raquel",
    "Pilar", "Rocío", "Beatriz", "Nuria", "Silvia", "Patricia", "Teresa", "Alicia", "Irene", "Andrea", "Sonia",
    "Eva", "Natalia", "Inés", "Clara", "Julia", "Rosa", "Mercedes", "Lorena", "Noelia", "Verónica", "Alba",
    "Marina", "Susana", "Yolanda", "Montserrat", "Esther", "Amparo", "Begoña", "Ainhoa", "Macarena", "Consuelo",
)  # fmt: skip
MEN = (
    "Antonio", "José", "Manuel", "Francisco", "David", "Juan", "Javier", "Daniel", "Carlos", "Miguel", "Alejandro",
    "Rafael", "Pedro", "Pablo", "Ángel", "Sergio", "Fernando", "Jorge", "Luis", "Alberto", "Álvaro", "Adrián",
    "Diego", "Raúl", "Enrique", "Ramón", "Vicente", "Andrés", "Joaquín", "Santiago", "Víctor", "Rubén", "Óscar",
    "Ignacio", "Jaime", "Gonzalo", "Marcos", "Hugo", "Iván", "Emilio", "Iñaki", "Xabier", "Borja", "Rodrigo",
)  # fmt: skip
# ((man's title, woman's title), weight)
TITLES = (
    (("Gerente", "Gerente"), 20),
    (("Propietario", "Propietaria"), 14),
    (("Director de Compras", "Directora de Compras"), 10),
    (("Director Financiero", "Directora Financiera"), 6),
    (("Responsable de Administración", "Responsable de Administración"), 10),
    (("Jefe de Taller", "Jefa de Taller"), 4),
    (("Encargado de Tienda", "Encargada de Tienda"), 8),
    (("Responsable de Mantenimiento", "Responsable de Mantenimiento"), 5),
    (("Director Comercial", "Directora Comercial"), 6),
    (("Socio", "Socia"), 5),
    (("Administrativo", "Administrativa"), 8),
)
LEGAL_FORMS = frozenset({"s.l.", "s.a.", "s.l.u.", "e"})
DECIDERS = frozenset({"Gerente", "Propietario", "Propietaria", "Director de Compras", "Directora de Compras", "Socio"})
STREETS = (
    "Calle Mayor", "Calle Real", "Avenida de la Constitución", "Calle San Francisco", "Calle del Carmen",
    "Avenida de Andalucía", "Calle Nueva", "Plaza Mayor", "Gran Vía", "Calle de la Iglesia", "Avenida de Europa",
    "Calle Colón", "Calle Cervantes", "Calle Goya", "Calle Velázquez", "Paseo de la Estación", "Calle Ancha",
    "Avenida de la Libertad", "Calle del Sol", "Calle Santiago", "Ronda de la Muralla", "Calle Alfonso XIII",
)  # fmt: skip
FREE_MAIL = ("gmail.com", "hotmail.com", "yahoo.es", "outlook.es", "telefonica.net")
SOURCES = (("Referido", 25), ("Web", 20), ("Llamada en frío", 20), ("Feria", 12), ("LinkedIn", 10), ("Campaña", 13))
# (name, sku, price in cents, usual quantity range)
PRODUCTS = (
    ("Terminal TPV Pro", "TPV-PRO", 89_900, (1, 6)),
    ("Impresora de tickets", "IMP-TK", 18_900, (1, 6)),
    ("Lector de códigos de barras", "LEC-CB", 12_900, (1, 8)),
    ("Licencia Gestión Comercial (anual)", "LIC-GC", 48_000, (1, 25)),
    ("Módulo de inventario (anual)", "LIC-INV", 24_000, (1, 25)),
    ("Instalación y puesta en marcha", "SRV-INST", 60_000, (1, 1)),
    ("Formación in situ (jornada)", "SRV-FORM", 45_000, (1, 3)),
    ("Mantenimiento anual", "SRV-MANT", 39_000, (1, 4)),
    ("Soporte Premium 24/7 (anual)", "SRV-PREM", 95_000, (1, 1)),
)
# What a deal is for, by the products it starts from.
BUNDLES = (
    ("Equipamiento TPV", (0, 1, 2, 5)),
    ("Software de gestión", (3, 4, 6)),
    ("Mantenimiento y soporte", (7, 8)),
    ("Puesta en marcha", (0, 3, 5, 6)),
)
REPEAT_TITLES = ("Ampliación", "Renovación de licencias", "Segunda tienda", "Renovación del mantenimiento")
# Days a deal usually spends in each open stage, and how many activities it usually gets there.
STAGE_DAYS = (6.0, 9.0, 12.0, 8.0)
STAGE_TOUCHES = (1.4, 2.2, 2.6, 2.2)
# Lost reasons (in the organisation's order: price, competitor, no budget, no decision, timing) by stage.
REASON_WEIGHTS = ((8, 8, 30, 26, 28), (12, 14, 28, 26, 20), (34, 30, 12, 16, 8), (38, 34, 8, 14, 6))
LOST_NOTES = (
    ("La competencia ofrece un 15 % menos.", "No llegan al precio ni con el descuento máximo."),
    ("Se quedan con su proveedor de siempre.", "Han firmado con una empresa de la zona."),
    ("Congelan inversiones hasta el año que viene.", "No tienen partida este ejercicio."),
    ("No hay forma de hablar con quien decide.", "Aplazan la decisión sin fecha."),
    ("Están en plena temporada alta; volver a llamar en unos meses.", "Cambio de dirección en la empresa."),
)
ACCOUNT = 4  # subject lists' index for client care outside a deal
KIND_WEIGHTS = (
    (("call", 50), ("email", 32), ("note", 10), ("task", 8)),
    (("call", 35), ("meeting", 28), ("email", 24), ("note", 8), ("task", 5)),
    (("email", 32), ("meeting", 25), ("call", 25), ("task", 10), ("note", 8)),
    (("call", 40), ("meeting", 24), ("email", 26), ("note", 10)),
    (("call", 40), ("email", 28), ("meeting", 10), ("note", 12), ("task", 10)),
)
SUBJECTS = {
    "call": (
        ("Primera llamada", "Llamada de presentación", "Llamada de prospección"),
        ("Llamada de cualificación", "Revisar necesidades", "Confirmar presupuesto disponible"),
        ("Seguimiento de la propuesta", "Resolver dudas de la propuesta"),
        ("Negociar condiciones", "Llamada sobre el descuento", "Confirmar plazos de entrega"),
        ("Llamada de seguimiento", "Llamada de satisfacción", "Revisión de la cuenta", "Llamada de prospección"),
    ),
    "meeting": (
        ("Visita de presentación",),
        ("Reunión de necesidades", "Visita a sus instalaciones"),
        ("Presentación de la propuesta", "Demostración del producto"),
        ("Reunión de negociación", "Reunión con gerencia"),
        ("Visita de cortesía", "Revisión anual de la cuenta"),
    ),
    "email": (
        ("Envío de catálogo", "Presentación de la empresa"),
        ("Resumen de la reunión", "Cuestionario de necesidades"),
        ("Propuesta comercial", "Presupuesto detallado"),
        ("Presupuesto revisado", "Condiciones de pago", "Contrato para firma"),
        ("Novedades de producto", "Encuesta de satisfacción", "Factura y documentación"),
    ),
    "note": (
        ("Tienen proveedor actual; contrato hasta fin de año.", "Contacto a través de un cliente de la zona."),
        ("Deciden entre dos opciones; les importa el soporte.", "Quieren verlo funcionando en otro cliente."),
        ("Piden referencias de clientes del sector.", "El gerente revisará la propuesta el lunes."),
        ("Aprietan en precio; margen para un 5 % más.", "Falta la firma del socio."),
        ("Contentos con la instalación.", "Preguntan por el módulo de inventario.", "Incidencia resuelta."),
    ),
    "task": (
        ("Buscar el contacto de compras", "Investigar la empresa"),
        ("Preparar la demostración", "Pedir datos de volumen"),
        ("Preparar la propuesta", "Enviar el presupuesto"),
        ("Revisar el descuento con dirección", "Preparar el contrato"),
        ("Llamar para la renovación", "Enviar la encuesta", "Revisar incidencias abiertas"),
    ),
}
CALL_NOTES = {
    "connected": (
        "Interesados; piden más información.",
        "Hablamos de plazos y precio.",
        "Quedamos en vernos la semana que viene.",
        "Les encaja, pero decide el gerente.",
        "Resolvemos dudas técnicas.",
    ),
    "no_answer": ("Sin respuesta.",),
    "voicemail": ("Dejo mensaje en el buzón.",),
    "busy": ("Comunica; reintentar más tarde.",),
}
OUTCOMES = (("connected", 60), ("no_answer", 18), ("voicemail", 14), ("busy", 8))


# Progress


class Progress(Protocol):
    """Starts a phase of `total` steps and returns the function that reports steps done."""

    def __call__(self, phase: str, total: int, /) -> Callable[[int], object]: ...


def _quiet(phase: str, total: int) -> Callable[[int], object]:
    return lambda done: None


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str


LOGIN = DemoLogin(email=ADMIN_EMAIL, password=DEMO_PASSWORD)


async def load(
    session: AsyncSession,
    *,
    seed: int = DEFAULT_SEED,
    scale: float = 1.0,
    today: date | None = None,
    progress: Progress = _quiet,
) -> DemoLogin:
    """Load the demo organisation unless it is there already (the caller commits). Dates are relative to the
    start of `today` in Madrid (default: the real today)."""
    if await session.get(Organization, DEMO_ORG_ID) is not None:
        return LOGIN
    emails = [p.email for p in PEOPLE]
    taken = (await session.scalars(select(User.email).where(col(User.email).in_(emails)))).first()
    if taken is not None:
        raise Conflict(f"{taken} belongs to another organisation: the demo cannot be loaded into this database.")
    demo = _Demo(seed=seed, size=counts(scale), today=today or datetime.now(TIME_ZONE).date(), progress=progress)
    demo.build()
    await demo.write(await session.connection())
    # Who is already over a goal's target is recorded as the services would have (with their feed entries).
    await goals.check(session, DEMO_ORG_ID, None)
    return LOGIN


# Generation


@lru_cache
def _cumulative(weighted: tuple[tuple[Any, int], ...]) -> tuple[tuple[Any, ...], tuple[int, ...]]:
    return tuple(value for value, _ in weighted), tuple(itertools.accumulate(weight for _, weight in weighted))


def _json(value: Any, texts: dict[uuid.UUID, str]) -> Any:
    """`jsonable` for the values the demo makes, faster (the change log holds ~900,000 of them); `texts` keeps
    the ids already spelled out."""
    kind = type(value)
    if kind is uuid.UUID:
        text = texts.get(value)
        if text is None:
            text = texts[value] = str(value)
        return text
    if kind is datetime:
        return value.isoformat()  # already UTC
    if kind is date:
        return str(value)
    if kind is list:
        return [_json(v, texts) for v in value]
    if kind is dict:
        return {str(k): _json(v, texts) for k, v in value.items()}
    return value


def _table(model: type[SQLModel]) -> sa.Table:
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    return table


# The tables written, in insertion order, with the change-log entity of their records (None: not logged) and
# the progress phase they are written in.
TABLES: tuple[tuple[type[SQLModel], str | None, str], ...] = (
    (Organization, None, "Writing users, pipeline"),
    (Team, "team", "Writing users, pipeline"),
    (User, "user", "Writing users, pipeline"),
    (Product, "product", "Writing users, pipeline"),
    (Pipeline, "pipeline", "Writing users, pipeline"),
    (Stage, "stage", "Writing users, pipeline"),
    (LostReason, "lost_reason", "Writing users, pipeline"),
    (Goal, "goal", "Writing users, pipeline"),
    (Company, "company", "Writing companies"),
    (Contact, "contact", "Writing contacts"),
    (ContactPoint, None, "Writing contacts"),
    (Deal, "deal", "Writing deals"),
    (DealLine, "deal_line", "Writing deals"),
    (DealStageEvent, "deal_stage_event", "Writing deals"),
    (Activity, "activity", "Writing activities"),
    (FeedEvent, None, "Writing the feed"),
    (Change, None, "Writing the change log"),
)
ENTITIES = {model: entity for model, entity, _phase in TABLES}
TRACKED = {
    entity: [name for name in model.model_fields if name not in UNTRACKED_FIELDS]
    for model, entity, _phase in TABLES
    if entity
}
DAY = timedelta(days=1)
CHUNK = 5_000


@dataclass
class _Seller:
    user: Row
    person: Person
    profile: Profile
    manager_id: uuid.UUID
    companies: list[Row] = field(default_factory=list)  # by creation time
    fresh: list[Row] = field(default_factory=list)  # companies without a deal yet, by creation time
    repeatable: list["_Deal"] = field(default_factory=list)  # won deals whose client may buy again


@dataclass
class _Deal:
    row: Row
    seller: _Seller
    company: Row
    contact: Row | None
    # The stages entered (indexes into the pipeline's stages) and when; the won or lost stage last when closed.
    path: list[tuple[int, datetime]]
    # Until when the deal is worked on: its close, today, or the day it was forgotten.
    until: datetime
    forgotten: bool
    activities: list[Row] = field(default_factory=list)


class _Demo:
    def __init__(self, *, seed: int, size: Counts, today: date, progress: Progress) -> None:
        self.rng = random.Random(seed)
        self.size = size
        self.progress = progress
        self.now = datetime.combine(today, time(), TIME_ZONE).astimezone(UTC)
        self.start = self.now - timedelta(days=SETUP_DAYS)
        self.rows: dict[type[SQLModel], list[Row]] = {model: [] for model, _entity, _phase in TABLES}
        # (at, entity, row, actor) of every record, for the change log
        self.logged: list[tuple[datetime, str, Row, uuid.UUID | None]] = []
        self.names: set[str] = set()
        self.handles: set[str] = set()
        self.dropped: set[uuid.UUID] = set()

    # Helpers

    def _id(self, at: datetime) -> uuid.UUID:
        """A UUIDv7 for `at` (48 bits of Unix milliseconds, version, variant) with seeded random bits."""
        ms = int(at.timestamp() * 1000)
        bits = self.rng.getrandbits(74)
        value = (ms << 80) | (0x7 << 76) | ((bits >> 62) << 64) | (0b10 << 62) | (bits & ((1 << 62) - 1))
        return uuid.UUID(int=value)

    def _record(self, model: type[SQLModel], at: datetime, actor: uuid.UUID | None, /, **values: Any) -> Row:
        row = {"id": self._id(at), "org_id": DEMO_ORG_ID, "created_at": at, "updated_at": at, "version": 1}
        row.update(deleted_at=None, **values)
        self.rows[model].append(row)
        entity = ENTITIES[model]
        if entity is not None:
            self.logged.append((at, entity, row, actor))
        return row

    def _working(self, moment: datetime, later: bool = False) -> datetime:
        """The same day at a working hour in Madrid; a weekend's Friday (its Monday when `later`)."""
        day = moment.astimezone(TIME_ZONE).date()
        if day.weekday() >= 5:
            day += timedelta(days=7 - day.weekday()) if later else -timedelta(days=day.weekday() - 4)
        seconds = self.rng.randrange(8 * 3600 + 1800, 19 * 3600)
        return (datetime.combine(day, time(), TIME_ZONE) + timedelta(seconds=seconds)).astimezone(UTC)

    def _when(self, lo: datetime, hi: datetime, later: bool = False) -> datetime:
        """A moment in [lo, hi), at a working hour when one falls in the span (weekends move back to Friday, or
        on to Monday when `later`, so that planned work does not pile up on one day); whole seconds."""
        span = int((hi - lo).total_seconds())
        if span <= 1:
            return lo
        moment = lo + timedelta(seconds=self.rng.randrange(span))
        for direction in (later, not later):
            working = self._working(moment, direction)
            if lo <= working < hi:
                return working
        return moment

    def _coming(self) -> datetime:
        """A due time from today on, mostly this week and the next (agendas fill up near term)."""
        horizon = 4 + min(24.0, self.rng.expovariate(1 / 10))
        return self._when(self.now + timedelta(hours=8), self.now + horizon * DAY, later=True)

    def _after(self, at: datetime, low_minutes: int, high_minutes: int) -> datetime:
        return at + timedelta(seconds=self.rng.randrange(low_minutes * 60, high_minutes * 60 + 1))

    def _poisson(self, mean: float) -> int:
        limit, count, product = math.exp(-mean), 0, self.rng.random()
        while product > limit:
            count += 1
            product *= self.rng.random()
        return count

    def _pick(self, weighted: tuple[tuple[Any, int], ...]) -> Any:
        values, cumulative = _cumulative(weighted)
        return values[bisect.bisect(cumulative, self.rng.random() * cumulative[-1])]

    @staticmethod
    def _unique(taken: set[str], candidate: Callable[[int], str]) -> str:
        for attempt in range(1_000):
            value = candidate(attempt)
            if value not in taken:
                taken.add(value)
                return value
        raise RuntimeError("ran out of unique demo values")  # pragma: no cover

    # The whole organisation

    def build(self) -> None:
        self._organisation()
        self._clients()
        self._deals()
        self._activities()
        self._derive()
        self._change_log()

    def _organisation(self) -> None:
        at = self.founded = self._working(self.start)
        self.rows[Organization].append(
            {
                "id": DEMO_ORG_ID,
                "name": ORG_NAME,
                "settings": dict(ORG_SETTINGS),
                "change_seq": 0,  # the last change's seq: set by _change_log
                "created_at": at,
                "version": 1,
            }
        )
        # Heads are set once the users exist (team.head_id and user.team_id refer to each other).
        teams = {
            name: self._record(Team, at, None, name=name, parent_id=None, head_id=None, go_live_on=None)
            for name in TEAMS
        }
        settings = get_settings()
        hasher = PasswordHasher(time_cost=settings.password_time_cost, memory_cost=settings.password_memory_kib)
        # One hash for the one shared password, salted from the seed so that a load is reproducible.
        password_hash = hasher.hash(DEMO_PASSWORD, salt=self.rng.randbytes(16))
        users: dict[str, Row] = {}
        for person in PEOPLE:
            users[person.email] = self._record(
                User,
                at,
                None,
                email=person.email,
                name=person.name,
                name_folded=fold(person.name),
                role=person.role.value,
                team_id=teams[person.team]["id"] if person.team else None,
                is_active=True,
                password_hash=password_hash,
                invite_hash=None,
                invite_expires_at=None,
                last_login_at=None,
            )
        heads = {p.team: users[p.email]["id"] for p in PEOPLE if p.role is Role.manager and p.team}
        for name, team in teams.items():
            team["head_id"] = heads[name]
        self.sellers = [
            _Seller(users[p.email], p, p.profile, heads[p.team])
            for p in PEOPLE
            if p.profile is not None and p.team is not None
        ]
        self.products = [
            self._record(
                Product,
                at,
                None,
                name=name,
                name_folded=fold(name),
                sku=sku,
                price_minor=price,
                currency=CURRENCY,
                is_active=True,
            )
            for name, sku, price, _quantities in PRODUCTS
        ]
        # The default pipeline and lost reasons in Spanish, as a new organisation gets them (deals.service).
        defaults = DEFAULTS["es"]
        self.pipeline = self._record(Pipeline, at, None, name=defaults.pipeline, team_id=None, is_default=True)
        specs = [(name, StageKind.open, p, rotten) for name, p, rotten in defaults.stages]
        specs += [(defaults.won, StageKind.won, 100, None), (defaults.lost, StageKind.lost, 0, None)]
        self.stages = [
            self._record(
                Stage,
                at,
                None,
                pipeline_id=self.pipeline["id"],
                name=name,
                position=position,
                kind=kind.value,
                probability=probability,
                rotten_days=rotten,
            )
            for position, (name, kind, probability, rotten) in enumerate(specs, start=1)
        ]
        self.open_stages = len(defaults.stages)
        self.won, self.lost = self.open_stages, self.open_stages + 1  # indexes into self.stages
        self.reasons = [
            self._record(LostReason, at, None, name=name, position=position, is_active=True)
            for position, name in enumerate(defaults.lost_reasons, start=1)
        ]
        self._goals(users[ADMIN_EMAIL]["id"])

    def _goals(self, admin_id: uuid.UUID) -> None:
        """This month's and this quarter's goals, as an admin sets them to get the CRM used."""
        today = self.now.astimezone(TIME_ZONE).date()
        month = today.replace(day=1)
        next_month = (month + timedelta(days=32)).replace(day=1)
        quarter = month.replace(month=3 * ((month.month - 1) // 3) + 1)
        next_quarter = (quarter + timedelta(days=95)).replace(day=1)
        for name, metric, target, starts, ends, reward in (
            (
                "250 clientes bien desarrollados este mes",
                GoalMetric.well_developed_clients,
                250,
                month,
                next_month - DAY,
                "Comida pagada por la empresa",
            ),
            (
                "8 negocios ganados en el trimestre",
                GoalMetric.deals_won,
                8,
                quarter,
                next_quarter - DAY,
                "Un día libre",
            ),
        ):
            at = self._working(datetime.combine(starts, time(), TIME_ZONE))
            self._record(
                Goal,
                min(at, self.now),
                admin_id,
                name=name,
                metric=metric.value,
                target=target,
                starts_on=starts,
                ends_on=ends,
                reward=reward,
                team_id=None,
            )

    # Companies and contacts

    def _company_name(self, prefixes: Sequence[str], form: str, city: str) -> str:
        def candidate(attempt: int) -> str:
            core = self.rng.random()
            if core < 0.45:
                name = f"{self.rng.choice(prefixes)} {self.rng.choice(SURNAMES)}"
            elif core < 0.6:
                name = f"{self.rng.choice(prefixes)} Hermanos {self.rng.choice(SURNAMES)}"
            elif core < 0.7:
                name = f"{self.rng.choice(prefixes)} {self.rng.choice(SURNAMES)} e Hijos"
            else:
                name = f"{self.rng.choice(prefixes)} {self.rng.choice(PLACES)}"
            if attempt >= 5:
                name = f"{name} {city}"
            if attempt >= 20:
                name = f"{name} {attempt}"
            return name + (form if self.rng.random() < 0.7 else self.rng.choice(("", " S.L.", " S.L.U.")))

        return self._unique(self.names, candidate)

    def _domain(self, name: str) -> str:
        words = fold(name).replace("-", " ").split()
        slugs = ["".join(ch for ch in w if ch.isascii() and ch.isalnum()) for w in words if w not in LEGAL_FORMS]
        slugs = [s for s in slugs if s]

        def candidate(attempt: int) -> str:
            stem = ("-" if attempt % 2 else "").join(slugs)[:50] + (str(attempt // 2) if attempt > 1 else "")
            return stem + self.rng.choice((".es", ".es", ".com"))

        return self._unique(self.handles, candidate)

    def _phone(self, prefix: str) -> str:
        def candidate(_attempt: int) -> str:
            rest = "".join(str(self.rng.randrange(10)) for _ in range(8 - len(prefix)))
            return f"+34{prefix}{self.rng.randint(2, 8)}{rest}"

        return self._unique(self.handles, candidate)

    def _mobile(self) -> str:
        def candidate(_attempt: int) -> str:
            start = "6" if self.rng.random() < 0.85 else self.rng.choice(("71", "72", "73", "74"))
            return f"+34{start}" + "".join(str(self.rng.randrange(10)) for _ in range(9 - len(start)))

        return self._unique(self.handles, candidate)

    def _clients(self) -> None:
        size = self.size
        advance = self.progress("Planning clients", size.companies + size.contacts)
        # A third were imported when the organisation started (one for each seller at least, so that every
        # seller has a client before their first deal); the rest came in over the year.
        opened, setup = self.founded + timedelta(hours=1), self.founded + timedelta(days=4)
        first = min(size.companies, len(self.sellers))
        times = sorted(
            [self._when(opened, setup) for _ in range(first)]
            + [
                self._when(opened, setup)
                if self.rng.random() < 0.35
                else self._when(setup, self.now - timedelta(days=1))
                for _ in range(size.companies - first)
            ]
        )
        shares = [s.profile.share for s in self.sellers]
        owners = self.sellers[:first] + self.rng.choices(self.sellers, weights=shares, k=size.companies - first)
        self.companies: list[Row] = []
        self.owner_of: dict[uuid.UUID, _Seller] = {}
        self.contacts_of: dict[uuid.UUID, list[Row]] = {}
        for at, seller in zip(times, owners, strict=True):
            assert seller.person.team is not None
            city, prefix, postal = self.rng.choice(REGIONS[seller.person.team])
            industry, prefixes, form = self.rng.choice(INDUSTRIES)
            name = self._company_name(prefixes, form, city)
            employees = max(1, int(self.rng.lognormvariate(2.4, 1.1)))
            digits = 5 - len(postal)
            postcode = f"{postal}{self.rng.randrange(10**digits):0{digits}d}"
            company = self._record(
                Company,
                at,
                seller.user["id"],
                name=name,
                name_folded=fold(name),
                owner_id=seller.user["id"],
                tags=[],  # set by _derive, from how the client did
                segment="Pyme" if employees < 50 else "Mediana empresa" if employees < 250 else "Gran cuenta",
                source=self._pick(SOURCES),
                custom={},
                domain=self._domain(name) if self.rng.random() < 0.75 else None,
                industry=industry,
                size=employees,
                phone=self._phone(prefix) if self.rng.random() < 0.9 else None,
                address=f"{self.rng.choice(STREETS)}, {self.rng.randint(1, 140)}, {postcode}",
                city=city,
                country="ES",
            )
            self.companies.append(company)
            self.owner_of[company["id"]] = seller
            self.contacts_of[company["id"]] = []
            seller.companies.append(company)
        advance(size.companies)
        for seller in self.sellers:
            seller.fresh = list(seller.companies)
        # Every company gets a contact first (added with it); the rest go to companies at random, a few alone.
        homes: list[Row | None] = list(self.companies[: size.contacts])
        while len(homes) < size.contacts:
            homes.append(self.rng.choice(self.companies) if self.rng.random() < 0.96 else None)
        self.contacts = [self._contact(home) for home in homes]
        advance(size.contacts)

    def _contact(self, company: Row | None) -> Row:
        rng = self.rng
        woman = rng.random() < 0.5
        first = rng.choice(WOMEN if woman else MEN)
        surnames = rng.sample(SURNAMES, 2)
        name = f"{first} {surnames[0]} {surnames[1]}" if rng.random() < 0.7 else f"{first} {surnames[0]}"
        title = self._pick(TITLES)[1 if woman else 0]
        owner = self.owner_of[company["id"]] if company else rng.choice(self.sellers)
        if company is None:
            at = self._when(self.founded + DAY, self.now - DAY)
        elif self.contacts_of[company["id"]]:
            at = self._when(company["created_at"] + timedelta(hours=1), self.now)
        else:
            at = self._after(company["created_at"], 2, 50)
        parts = ["".join(ch for ch in fold(part) if ch.isascii() and ch.isalnum()) for part in (first, *surnames)]
        domain = company["domain"] if company and company["domain"] and rng.random() < 0.8 else None
        mail_domain = domain or rng.choice(FREE_MAIL)
        patterns = (f"{parts[0]}.{parts[1]}", f"{parts[0][0]}{parts[1]}", f"{parts[0]}.{parts[1]}.{parts[2]}")

        def candidate(attempt: int) -> str:
            local = patterns[min(attempt, 2)] if domain else f"{parts[0]}.{parts[1]}{rng.randint(1, 99)}"
            return f"{local}{attempt if attempt > 2 else ''}@{mail_domain}"

        emails = [self._unique(self.handles, candidate)] if rng.random() < 0.9 else []
        phones = [self._mobile()] if rng.random() < 0.85 or not emails else []
        contact = self._record(
            Contact,
            at,
            owner.user["id"],
            name=name,
            name_folded=fold(name),
            owner_id=owner.user["id"],
            tags=["decisor"] if title in DECIDERS else [],
            segment=None,
            source=company["source"] if company else self._pick(SOURCES),
            custom={},
            title=title,
            company_id=company["id"] if company else None,
            emails=emails,
            phones=phones,
            email_consent=bool(emails) and rng.random() < 0.6,
            phone_consent=bool(phones) and rng.random() < 0.5,
        )
        if company is not None:
            self.contacts_of[company["id"]].append(contact)
        return contact

    # Deals

    def _deals(self) -> None:
        count = self.size.deals
        advance = self.progress("Planning deals", count)
        first = self.now - timedelta(days=HISTORY_DAYS)
        # A growing team: a little more new business lately.
        times = sorted(
            min(self._working(first + HISTORY_DAYS * DAY * self.rng.random() ** 0.85), self.now - timedelta(hours=2))
            for _ in range(count)
        )
        sellers = [s for s in self.sellers if s.companies]  # all of them, but at the tiniest scales
        weights = [s.profile.share for s in sellers]
        self.deals: list[_Deal] = []
        for at in times:
            seller = self.rng.choices(sellers, weights=weights)[0]
            self.deals.append(self._deal(seller, at))
        advance(count)

    def _client_for(self, seller: _Seller, at: datetime) -> Row:
        """A client of the seller's that existed an hour before: a new one when there is one."""
        cutoff = at - timedelta(hours=1)
        fresh = [c for c in seller.fresh if c["created_at"] <= cutoff]
        if fresh and self.rng.random() < 0.9:
            company = self.rng.choice(fresh)
            seller.fresh.remove(company)
            return company
        known = [c for c in seller.companies if c["created_at"] <= cutoff]
        return self.rng.choice(known)

    def _deal(self, seller: _Seller, at: datetime) -> _Deal:
        rng, profile = self.rng, seller.profile
        ready = [d for d in seller.repeatable if d.path[-1][1] + timedelta(days=21) <= at]
        previous = rng.choice(ready) if ready and rng.random() < 0.4 else None
        bundle = rng.choice(BUNDLES)
        if previous is not None:
            seller.repeatable.remove(previous)
            company = previous.company
            title = f"{rng.choice(REPEAT_TITLES)} · {company['name']}"
        else:
            company = self._client_for(seller, at)
            title = f"{bundle[0]} · {company['name']}"
        people = [c for c in self.contacts_of[company["id"]] if c["created_at"] < at]
        contact = rng.choice(people) if people else None
        repeat = previous is not None
        # Walk the pipeline: each open stage takes its time, then the deal moves on or is lost, unless today
        # comes first (it is open there) or its seller forgets it (it stays open there, untouched, and rots).
        path: list[tuple[int, datetime]] = [(0, at)]
        entered, status, until, forgotten = at, DealStatus.open, self.now, False
        reason: Row | None = None
        for index in range(self.open_stages):
            if rng.random() < profile.forgets:
                forgotten, until = True, min(self.now, self._after(entered, 60, 60 * 24 * 4))
                break
            days = STAGE_DAYS[index] * profile.pace * (0.7 if repeat else 1.0) * rng.lognormvariate(0, 0.45)
            leaves = entered + days * DAY
            leaves = max(entered + timedelta(minutes=30), self._working(leaves)) if days >= 1 else leaves
            leaves = leaves.replace(microsecond=0)
            if leaves >= self.now:
                break
            if rng.random() >= min(0.97, profile.advance + (0.08 if repeat else 0.0)):
                status, until = DealStatus.lost, leaves
                reason = rng.choices(self.reasons, weights=REASON_WEIGHTS[index])[0]
                path.append((self.lost, leaves))
                break
            entered = leaves
            if index + 1 == self.open_stages:
                status, until = DealStatus.won, leaves
                path.append((self.won, leaves))
            else:
                path.append((index + 1, leaves))
        lines = self._lines(bundle[1], profile)
        stage_index, stage_at = path[-1]
        note = rng.choice(LOST_NOTES[reason["position"] - 1]) if reason and rng.random() < 0.7 else None
        row = self._record(
            Deal,
            at,
            seller.user["id"],
            title=title,
            title_folded=fold(title),
            company_id=company["id"],
            contact_id=contact["id"] if contact else None,
            pipeline_id=self.pipeline["id"],
            stage_id=self.stages[stage_index]["id"],
            owner_id=seller.user["id"],
            amount_minor=sum(line_amount(quantity, price, off) for _, quantity, price, off in lines),
            currency=CURRENCY,
            expected_close_on=(at + rng.randint(21, 75) * DAY).astimezone(TIME_ZONE).date(),
            status=status.value,
            lost_reason_id=reason["id"] if reason else None,
            lost_note=note,
            won_at=stage_at if status is DealStatus.won else None,
            lost_at=stage_at if status is DealStatus.lost else None,
            previous_deal_id=previous.row["id"] if previous else None,
            stage_entered_at=stage_at,
            last_activity_at=None,  # set by _derive
            rots_at=None,  # set by _derive
            custom={},
        )
        for position, (product, quantity, price, off) in enumerate(lines, start=1):
            self._record(
                DealLine,
                at,
                seller.user["id"],
                deal_id=row["id"],
                product_id=product["id"],
                name=product["name"],
                quantity=quantity,
                unit_price_minor=price,
                discount_percent=off,
                position=position,
            )
        deal = _Deal(row, seller, company, contact, path, until, forgotten)
        self._moves(deal, reason)
        if status is DealStatus.won:
            seller.repeatable.append(deal)
        return deal

    def _lines(self, choices: Sequence[int], profile: Profile) -> list[tuple[Row, int, int, int]]:
        picked = sorted(self.rng.sample(list(choices), self.rng.randint(1, min(3, len(choices)))))
        # Good sellers sell value rather than discounts.
        discounts = (0, 0, 5, 10) if profile is TOP else (0, 5, 10, 15, 20)
        return [
            (
                self.products[i],
                self.rng.randint(*PRODUCTS[i][3]),
                self.products[i]["price_minor"],
                self.rng.choice(discounts),
            )
            for i in picked
        ]

    def _moves(self, deal: _Deal, reason: Row | None) -> None:
        """A deal's stage events and what the feed said of them."""
        row, owner = deal.row, deal.seller.user["id"]
        previous: tuple[int, datetime] | None = None
        for stage_index, at in deal.path:
            stage = self.stages[stage_index]
            self._record(
                DealStageEvent,
                at,
                owner,
                deal_id=row["id"],
                from_stage_id=self.stages[previous[0]]["id"] if previous else None,
                to_stage_id=stage["id"],
                at=at,
                by_id=owner,
                seconds_in_previous=int((at - previous[1]).total_seconds()) if previous else None,
            )
            money = {"amount_minor": row["amount_minor"], "currency": row["currency"]}
            data: dict[str, Any]
            if previous is None:
                kind, data = FeedKind.deal_created, {"stage": stage["name"], **money}
            else:
                kind = {self.won: FeedKind.deal_won, self.lost: FeedKind.deal_lost}.get(
                    stage_index, FeedKind.stage_moved
                )
                data = {
                    "from_stage": self.stages[previous[0]]["name"],
                    "to_stage": stage["name"],
                    "days_in_previous": (at - previous[1]).days,
                    **money,
                }
                if kind is not FeedKind.stage_moved:
                    data["days_open"] = (at - row["created_at"]).days
                if kind is FeedKind.deal_lost and reason is not None:
                    data["reason"] = reason["name"]
            self._feed(kind, at, owner, row["company_id"], row["contact_id"], row["id"], None, data)
            previous = (stage_index, at)

    def _feed(
        self,
        kind: FeedKind,
        at: datetime,
        actor: uuid.UUID,
        company_id: uuid.UUID | None,
        contact_id: uuid.UUID | None,
        deal_id: uuid.UUID | None,
        activity_id: uuid.UUID | None,
        data: dict[str, Any],
        user_id: uuid.UUID | None = None,
    ) -> None:
        self.rows[FeedEvent].append(
            {
                "id": self._id(at),
                "org_id": DEMO_ORG_ID,
                "kind": kind.value,
                "at": at,
                "actor_id": actor,
                "company_id": company_id,
                "contact_id": contact_id,
                "deal_id": deal_id,
                "activity_id": activity_id,
                "user_id": user_id,
                "data": data,
            }
        )

    # Activities

    def _activity(
        self,
        kind: str,
        stage: int,
        owner: _Seller,
        *,
        company: Row | None,
        contact: Row | None,
        deal: _Deal | None,
        done_at: datetime | None,
        due_at: datetime | None = None,
        created_at: datetime | None = None,
        outcome: str | None = None,
    ) -> Row:
        """One activity of a kind, with the words of its stage (or of client care): done, or planned."""
        rng = self.rng
        if created_at is None:
            assert done_at is not None
            created_at = min(self._after(done_at, 1, 25), self.now)  # logged just after
        subject = rng.choice(SUBJECTS[kind][stage])
        body: str | None = None
        direction = duration = None
        if kind == "call":
            direction = "outbound" if rng.random() < 0.85 else "inbound"
            if done_at is not None:
                outcome = outcome or self._pick(OUTCOMES)
                duration = rng.randint(90, 1500) if outcome == "connected" else rng.randint(0, 40)
                body = rng.choice(CALL_NOTES[outcome or "connected"])
        elif kind == "meeting" and done_at is not None:
            duration = rng.choice((1800, 2700, 3600, 5400))
        elif kind == "note":
            body, subject = subject, subject.split(";")[0].split(".")[0]
        mentioned: list[str] = []
        if kind == "note" and owner.profile is not MANAGER and rng.random() < 0.05:
            mentioned = [str(owner.manager_id)]
            body = f"{body} ¿Lo vemos en la reunión del lunes?"
        row = self._record(
            Activity,
            created_at,
            owner.user["id"],
            kind=kind,
            subject=subject,
            body=body,
            company_id=company["id"] if company else (contact["company_id"] if contact else None),
            contact_id=contact["id"] if contact else None,
            deal_id=deal.row["id"] if deal else None,
            owner_id=owner.user["id"],
            assignee_id=owner.user["id"],
            due_at=due_at,
            done_at=done_at,
            duration_seconds=duration,
            direction=direction,
            outcome=outcome if kind == "call" and done_at is not None else None,
            next_step_id=None,  # set when its follow-up is planned
            mentioned_ids=mentioned,
        )
        row["updated_at"] = max(created_at, done_at or created_at)
        if deal is not None:
            deal.activities.append(row)
        return row

    def _touch(
        self, deal: _Deal, stage: int, lo: datetime, hi: datetime, kind: str | None = None, outcome: str | None = None
    ) -> Row:
        """A done activity on a deal, between lo and hi."""
        kind = kind or self._pick(KIND_WEIGHTS[stage])
        at = self._when(lo, hi)
        created_at = due_at = None
        if kind in ("task", "meeting"):
            # Planned a few days before, then done.
            created_at = max(deal.row["created_at"], at - self.rng.randint(1, 6) * DAY)
            due_at = at if kind == "meeting" else max(created_at, self._after(at, -600, 1440))
        people = self.contacts_of[deal.company["id"]]
        contact = deal.contact
        if len(people) > 1 and self.rng.random() < 0.2:
            contact = self.rng.choice([c for c in people if c["created_at"] < at] or people[:1])
        return self._activity(
            kind,
            stage,
            deal.seller,
            company=deal.company,
            contact=contact,
            deal=deal,
            done_at=at,
            due_at=due_at,
            created_at=created_at,
            outcome=outcome,
        )

    def _deal_activities(self, deal: _Deal) -> None:
        profile, path = deal.seller.profile, deal.path
        for step, (stage, entered) in enumerate(path):
            if stage >= self.open_stages:
                break
            closed = step + 1 < len(path)
            leaves = path[step + 1][1] if closed else deal.until
            # The stage the deal is in today has had only part of its usual share of work so far.
            usual = STAGE_DAYS[stage] * profile.pace * 86_400
            share = 1.0 if closed else min(1.0, (leaves - entered).total_seconds() / usual)
            for _ in range(self._poisson(STAGE_TOUCHES[stage] * profile.touches * share)):
                self._touch(deal, stage, entered, leaves)
            if closed:
                # What moved it on, or closed it, the day it happened.
                following = path[step + 1][0]
                kind = "meeting" if following in (2, self.won) else "email" if following == 3 else "call"
                lo = max(entered, leaves - timedelta(hours=6))
                touch = self._touch(deal, stage, lo, leaves, kind, outcome="connected")
                if following == self.won:
                    euros = f"{deal.row['amount_minor'] // 100:,}".replace(",", ".")
                    touch["subject"], touch["body"] = "Cierre: pedido confirmado", f"Pedido firmado por {euros} €."
                elif following == self.lost:
                    reason = next(r for r in self.reasons if r["id"] == deal.row["lost_reason_id"])
                    touch["subject"], touch["body"] = "Oportunidad perdida", deal.row["lost_note"] or reason["name"]
        if deal.row["status"] == DealStatus.open.value:
            self._next_step(deal)

    def _next_step(self, deal: _Deal) -> None:
        """An open deal's next step: planned, and overdue when the seller let it slip (or forgot the deal)."""
        if deal.forgotten:
            due = self._when(deal.until + 2 * DAY, deal.until + 9 * DAY)
        elif self.rng.random() < deal.seller.profile.late:
            due = self._when(max(deal.until - 20 * DAY, deal.path[-1][1]), self.now - timedelta(hours=1))
        else:
            due = self._coming()
        done = [a for a in deal.activities if a["done_at"] is not None]
        parent = max(done, key=lambda a: (a["done_at"], a["id"])) if done else None
        created_at = parent["created_at"] if parent else self._after(deal.row["created_at"], 5, 60)
        created_at = min(created_at, due, self.now - timedelta(minutes=1))
        planned = self._activity(
            self.rng.choice(("task", "call", "meeting")),
            deal.path[-1][0],
            deal.seller,
            company=deal.company,
            contact=deal.contact,
            deal=deal,
            done_at=None,
            due_at=due,
            created_at=created_at,
        )
        if parent is not None:
            parent["next_step_id"] = planned["id"]

    def _client_activities(self, budget: int) -> None:
        """Client care outside deals: prospecting, after-sales calls, notes and tasks, some of them planned."""
        rng = self.rng
        won = {d.row["company_id"] for d in self.deals if d.row["status"] == DealStatus.won.value}
        weights = [(3.0 if c["id"] in won else 1.0) * self.owner_of[c["id"]].profile.touches for c in self.companies]
        for company in sorted(rng.choices(self.companies, weights=weights, k=budget), key=lambda c: c["id"]):
            owner = self.owner_of[company["id"]]
            since = company["created_at"] + timedelta(hours=1)
            kind = self._pick(KIND_WEIGHTS[ACCOUNT])
            done_at = due_at = created_at = None
            if kind in ("task", "call") and rng.random() < (0.3 if kind == "task" else 0.03):
                # Planned: mostly in the coming weeks, some already late.
                if rng.random() < owner.profile.late:
                    due_at = self._when(max(since, self.now - 30 * DAY), self.now - timedelta(hours=1))
                else:
                    due_at = self._coming()
                latest = min(due_at, self.now - timedelta(minutes=1))
                created_at = self._when(min(max(since, due_at - 14 * DAY), latest), latest)
            else:
                done_at = self._when(since, self.now - timedelta(minutes=30))
                if kind == "task":
                    created_at = max(since, done_at - rng.randint(1, 5) * DAY)
                    due_at = max(created_at, self._after(done_at, -600, 1440))
            first = created_at or done_at
            assert first is not None
            people = [c for c in self.contacts_of[company["id"]] if c["created_at"] < first]
            contact = rng.choice(people) if people and rng.random() < 0.85 else None
            self._activity(
                kind,
                ACCOUNT,
                owner,
                company=company,
                contact=contact,
                deal=None,
                done_at=done_at,
                due_at=due_at,
                created_at=created_at,
            )

    def _activities(self) -> None:
        target = self.size.activities
        advance = self.progress("Planning activities", target)
        for deal in self.deals:
            self._deal_activities(deal)
        on_deals = sum(len(d.activities) for d in self.deals)
        if on_deals > target:
            # Tiny scales only: drop done touches at random (never a next step or its parent) until they fit.
            removable = [(d, a) for d in self.deals for a in d.activities if a["done_at"] and not a["next_step_id"]]
            for deal, activity in self.rng.sample(removable, min(on_deals - target, len(removable))):
                deal.activities.remove(activity)
                self.dropped.add(activity["id"])
            on_deals = sum(len(d.activities) for d in self.deals)
        advance(on_deals)
        self._client_activities(max(0, target - on_deals))
        advance(max(0, target - on_deals))

    # Derived values, contact points, feed and change log

    def _derive(self) -> None:
        advance = self.progress("Planning the feed", len(self.rows[Activity]) + len(self.deals))
        if self.dropped:
            self.rows[Activity] = [a for a in self.rows[Activity] if a["id"] not in self.dropped]
            self.logged = [entry for entry in self.logged if entry[2]["id"] not in self.dropped]
        value: dict[uuid.UUID, int] = {}
        for deal in self.deals:
            row = deal.row
            done = [a["done_at"] for a in deal.activities if a["done_at"] is not None]
            row["last_activity_at"] = max(done) if done else None
            # Activities do not change a deal (last_activity_at and rots_at are derived): its last stage move did.
            row["updated_at"] = row["stage_entered_at"]
            rotten_days = self.stages[deal.path[-1][0]]["rotten_days"]
            if row["status"] == DealStatus.open.value and rotten_days is not None:
                row["rots_at"] = max(row["stage_entered_at"], row["last_activity_at"] or row["created_at"])
                row["rots_at"] += rotten_days * DAY
            if row["status"] == DealStatus.won.value:
                value[row["company_id"]] = value.get(row["company_id"], 0) + row["amount_minor"]
        for company in self.companies:
            won = value.get(company["id"], 0)
            company["tags"] = ["cliente", "vip"] if won >= 2_000_000 else ["cliente"] if won else ["prospecto"]
        for model, kind in ((Company, ClientKind.company), (Contact, ClientKind.contact)):
            for client in self.rows[model]:
                if model is Company:
                    points = [("domain", client["domain"]), ("phone", client["phone"])]
                else:
                    points = [("email", e) for e in client["emails"]] + [("phone", p) for p in client["phones"]]
                for point, handle in points:
                    if handle:
                        self._point(client, kind, point, handle)
        advance(len(self.deals))
        for activity in self.rows[Activity]:
            if activity["done_at"] is not None:
                self._feed(
                    FeedKind.activity,
                    activity["done_at"],
                    activity["owner_id"],
                    activity["company_id"],
                    activity["contact_id"],
                    activity["deal_id"],
                    activity["id"],
                    {},
                )
            for user_id in activity["mentioned_ids"]:
                self._feed(
                    FeedKind.mentioned,
                    activity["created_at"],
                    activity["owner_id"],
                    activity["company_id"],
                    activity["contact_id"],
                    activity["deal_id"],
                    activity["id"],
                    {},
                    uuid.UUID(user_id),
                )
        advance(len(self.rows[Activity]))

    def _point(self, client: Row, kind: ClientKind, point: str, handle: str) -> None:
        self.rows[ContactPoint].append(
            {
                "id": self._id(client["created_at"]),
                "org_id": DEMO_ORG_ID,
                "created_at": client["created_at"],
                "updated_at": client["created_at"],
                "version": 1,
                "deleted_at": None,
                "kind": point,
                "value": handle,
                "client_kind": kind.value,
                "client_id": client["id"],
            }
        )

    def _change_log(self) -> None:
        """One `create` entry per record, numbered in the order the records were made, as `changes.create`
        writes it: the record's tracked fields, by the system (organisation set-up) or the owning user."""
        advance = self.progress("Planning the change log", len(self.logged))
        self.logged.sort(key=lambda entry: entry[0])
        changes = self.rows[Change]
        texts: dict[uuid.UUID, str] = {}
        for seq, (at, entity, row, actor) in enumerate(self.logged, start=1):
            # diff({}, values): every field that is set, secrets redacted (checked against changes.diff in tests).
            fields = {}
            for name in TRACKED[entity]:
                value = row[name]
                if value is not None:
                    shown = REDACTED if name in SECRET_FIELDS else _json(value, texts)
                    fields[name] = {"before": None, "after": shown}
            changes.append(
                {
                    "id": self._id(at),
                    "org_id": DEMO_ORG_ID,
                    "seq": seq,
                    "entity": entity,
                    "entity_id": row["id"],
                    "op": "create",
                    "version": row["version"],
                    "actor_kind": "user" if actor else "system",
                    "actor_id": actor,
                    "at": at,
                    "fields": fields,
                }
            )
            if seq % CHUNK == 0:
                advance(CHUNK)
        advance(len(changes) % CHUNK)
        self.rows[Organization][0]["change_seq"] = len(changes)

    # Writing

    async def write(self, connection: AsyncConnection) -> None:
        """Bulk inserts (executemany), parents before children, in the caller's transaction."""
        phases: dict[str, list[type[SQLModel]]] = {}
        for model, _entity, phase in TABLES:
            phases.setdefault(phase, []).append(model)
        for phase, models in phases.items():
            advance = self.progress(phase, sum(len(self.rows[m]) for m in models))
            for model in models:
                await self._insert(connection, model, advance)

    async def _insert(
        self, connection: AsyncConnection, model: type[SQLModel], advance: Callable[[int], object]
    ) -> None:
        table = _table(model)
        # In id order (time order): index pages fill up one after the other.
        rows = sorted(self.rows[model], key=lambda r: r["id"].int)
        missing = set(table.c.keys()) - set(rows[0])
        assert not missing, f"{table.name} rows lack {sorted(missing)}"
        if model is Team:
            # Without their heads first: the heads are users, inserted next.
            rows = [{**row, "head_id": None} for row in rows]
        # A row that refers to another of its table (a repeat sale, a next step) comes after it.
        refers = {Deal: "previous_deal_id", Activity: "next_step_id"}.get(model)
        if refers is not None:
            rows = [r for r in rows if r[refers] is None] + [r for r in rows if r[refers] is not None]
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            await connection.execute(sa.insert(table), chunk)
            advance(len(chunk))
        if model is User:
            teams = _table(Team)
            await connection.execute(
                sa.update(teams).where(teams.c.id == sa.bindparam("team_id")).values(head_id=sa.bindparam("head")),
                [{"team_id": t["id"], "head": t["head_id"]} for t in self.rows[Team]],
            )
