"""What a column can be mapped to, per kind of record, and the mapping suggested from the file's headers."""

from dataclasses import dataclass, field
from enum import StrEnum

from rapidfuzz import fuzz, process

from api.clients.models import CustomField
from api.core.types import fold
from api.imports.models import ImportEntity


class Kind(StrEnum):
    text = "text"
    long_text = "long_text"
    first_name = "first_name"
    last_name = "last_name"
    emails = "emails"
    phones = "phones"
    phone = "phone"
    domain = "domain"
    integer = "integer"
    minutes = "minutes"
    date = "date"
    datetime = "datetime"
    amount = "amount"
    currency = "currency"
    boolean = "boolean"
    tags = "tags"
    country = "country"
    choice = "choice"
    # A reference: the value names another record (an owner, a stage...), matched by name, e-mail or id.
    ref = "ref"
    custom = "custom"


# Fields several columns may fill together.
LISTS = frozenset({Kind.emails, Kind.phones, Kind.tags})


class Ref(StrEnum):
    user = "user"
    company = "company"
    contact = "contact"
    deal = "deal"
    pipeline = "pipeline"
    stage = "stage"
    product = "product"
    lost_reason = "lost_reason"


@dataclass(frozen=True)
class Spec:
    key: str
    kind: Kind
    label: str
    # Header names this field is suggested for, in English and Spanish, compared case- and accent-folded.
    names: tuple[str, ...]
    ref: Ref | None = None
    max_length: int = 200
    # For choices: folded label -> stored value.
    options: dict[str, str] = field(default_factory=dict)
    custom: CustomField | None = None


ID = Spec("id", Kind.text, "Fieldbook id", ("id", "fieldbook id", "uuid", "identificador"))
OWNER = Spec(
    "owner",
    Kind.ref,
    "Owner (name or e-mail)",
    (
        "owner",
        "owner email",
        "sales rep",
        "rep",
        "salesperson",
        "responsable",
        "propietario",
        "vendedor",
        "comercial",
        "asesor",
        "ejecutivo",
    ),
    ref=Ref.user,
)
COMPANY = Spec(
    "company",
    Kind.ref,
    "Company",
    (
        "company",
        "company name",
        "organization",
        "account",
        "empresa",
        "compania",
        "razon social",
        "cliente",
        "organizacion",
        "cuenta",
    ),
    ref=Ref.company,
)
TAGS = Spec("tags", Kind.tags, "Tags", ("tags", "labels", "etiquetas"))
SEGMENT = Spec("segment", Kind.text, "Segment", ("segment", "segmento", "tier", "categoria"), max_length=100)
SOURCE = Spec("source", Kind.text, "Source", ("source", "lead source", "origen", "fuente", "canal"), max_length=100)

_CLIENT = (ID, TAGS, SEGMENT, SOURCE, OWNER)

COMPANY_FIELDS = (
    Spec(
        "name",
        Kind.text,
        "Name",
        (
            "name",
            "company",
            "company name",
            "nombre",
            "empresa",
            "razon social",
            "nombre de la empresa",
            "cliente",
            "organizacion",
            "cuenta",
        ),
    ),
    Spec("domain", Kind.domain, "Website", ("website", "web", "domain", "url", "sitio web", "pagina web", "dominio")),
    Spec("industry", Kind.text, "Industry", ("industry", "sector", "industria", "rubro", "giro"), max_length=100),
    Spec(
        "size",
        Kind.integer,
        "Employees",
        ("employees", "size", "headcount", "empleados", "tamano", "numero de empleados"),
    ),
    Spec("phone", Kind.phone, "Phone", ("phone", "telephone", "phone number", "telefono", "tel", "movil", "celular")),
    Spec("address", Kind.text, "Address", ("address", "street", "direccion", "domicilio", "calle"), max_length=500),
    Spec("city", Kind.text, "City", ("city", "town", "ciudad", "localidad", "poblacion", "municipio"), max_length=100),
    Spec("country", Kind.country, "Country", ("country", "pais")),
    *_CLIENT,
)

CONTACT_FIELDS = (
    Spec(
        "name",
        Kind.text,
        "Full name",
        ("name", "full name", "contact", "contact name", "nombre completo", "contacto", "nombre y apellidos", "nombre"),
    ),
    Spec("first_name", Kind.first_name, "First name", ("first name", "given name", "nombre", "nombre de pila")),
    Spec("last_name", Kind.last_name, "Last name", ("last name", "surname", "family name", "apellido", "apellidos")),
    Spec(
        "title",
        Kind.text,
        "Job title",
        ("title", "job title", "position", "role", "cargo", "puesto", "titulo"),
        max_length=100,
    ),
    COMPANY,
    Spec(
        "emails",
        Kind.emails,
        "E-mail",
        ("email", "e-mail", "mail", "email address", "correo", "correo electronico", "e-mail address", "emails"),
    ),
    Spec(
        "phones",
        Kind.phones,
        "Phone",
        (
            "phone",
            "phones",
            "mobile",
            "telephone",
            "phone number",
            "telefono",
            "telefonos",
            "movil",
            "celular",
            "tel",
            "whatsapp",
        ),
    ),
    Spec(
        "email_consent",
        Kind.boolean,
        "E-mail consent",
        (
            "email consent",
            "email opt in",
            "newsletter",
            "consentimiento email",
            "acepta correos",
            "consentimiento correo",
        ),
    ),
    Spec(
        "phone_consent",
        Kind.boolean,
        "Phone consent",
        ("phone consent", "call consent", "consentimiento telefono", "acepta llamadas"),
    ),
    *_CLIENT,
)

DEAL_FIELDS = (
    ID,
    Spec(
        "title",
        Kind.text,
        "Title",
        (
            "title",
            "deal",
            "deal name",
            "opportunity",
            "name",
            "titulo",
            "negocio",
            "oportunidad",
            "trato",
            "nombre del negocio",
            "nombre",
        ),
    ),
    COMPANY,
    Spec(
        "contact",
        Kind.ref,
        "Contact (e-mail or name)",
        ("contact", "contact email", "person", "contacto", "persona", "correo del contacto"),
        ref=Ref.contact,
    ),
    Spec("pipeline", Kind.ref, "Pipeline", ("pipeline", "embudo", "flujo", "proceso"), ref=Ref.pipeline),
    Spec("stage", Kind.ref, "Stage", ("stage", "status", "deal stage", "etapa", "fase", "estado"), ref=Ref.stage),
    OWNER,
    Spec(
        "amount",
        Kind.amount,
        "Amount",
        ("amount", "value", "deal value", "monto", "importe", "valor", "precio", "total"),
    ),
    Spec("currency", Kind.currency, "Currency", ("currency", "moneda", "divisa")),
    Spec("product", Kind.ref, "Product", ("product", "item", "producto", "servicio", "articulo"), ref=Ref.product),
    Spec("quantity", Kind.integer, "Quantity", ("quantity", "qty", "units", "cantidad", "unidades")),
    Spec(
        "expected_close_on",
        Kind.date,
        "Expected close date",
        (
            "expected close date",
            "close date",
            "fecha de cierre",
            "fecha estimada de cierre",
            "cierre previsto",
            "fecha prevista",
        ),
    ),
    Spec(
        "created_on",
        Kind.date,
        "Created on",
        (
            "created",
            "created on",
            "created date",
            "date created",
            "fecha de creacion",
            "creado",
            "fecha de alta",
            "alta",
        ),
    ),
    Spec(
        "closed_on",
        Kind.date,
        "Won or lost on",
        (
            "closed on",
            "won date",
            "lost date",
            "won on",
            "fecha ganado",
            "fecha de cierre real",
            "cerrado el",
            "fecha de ganado",
        ),
    ),
    Spec(
        "lost_reason",
        Kind.ref,
        "Lost reason",
        ("lost reason", "reason lost", "motivo de perdida", "razon de perdida", "motivo"),
        ref=Ref.lost_reason,
    ),
)

ACTIVITY_KINDS = {
    **{k: k for k in ("call", "meeting", "email", "note", "task")},
    "phone call": "call",
    "llamada": "call",
    "llamada telefonica": "call",
    "telefono": "call",
    "reunion": "meeting",
    "visita": "meeting",
    "visit": "meeting",
    "cita": "meeting",
    "meet": "meeting",
    "e-mail": "email",
    "correo": "email",
    "mail": "email",
    "correo electronico": "email",
    "nota": "note",
    "comentario": "note",
    "tarea": "task",
    "to-do": "task",
    "todo": "task",
    "pendiente": "task",
}
DIRECTIONS = {
    "inbound": "inbound",
    "in": "inbound",
    "entrante": "inbound",
    "recibida": "inbound",
    "outbound": "outbound",
    "out": "outbound",
    "saliente": "outbound",
    "realizada": "outbound",
}
OUTCOMES = {
    "connected": "connected",
    "answered": "connected",
    "contestada": "connected",
    "conectada": "connected",
    "atendida": "connected",
    "no answer": "no_answer",
    "no_answer": "no_answer",
    "sin respuesta": "no_answer",
    "no contesta": "no_answer",
    "voicemail": "voicemail",
    "buzon": "voicemail",
    "buzon de voz": "voicemail",
    "busy": "busy",
    "ocupado": "busy",
    "comunica": "busy",
}

ACTIVITY_FIELDS = (
    ID,
    Spec(
        "kind",
        Kind.choice,
        "Type",
        ("type", "kind", "activity type", "tipo", "tipo de actividad", "actividad"),
        options=ACTIVITY_KINDS,
    ),
    Spec("subject", Kind.text, "Subject", ("subject", "title", "asunto", "titulo", "tema")),
    Spec(
        "body",
        Kind.long_text,
        "Notes",
        ("notes", "body", "description", "details", "notas", "descripcion", "detalle", "comentarios", "observaciones"),
        max_length=10_000,
    ),
    Spec(
        "done_at",
        Kind.datetime,
        "Done at",
        ("date", "done", "done at", "occurred", "completed", "fecha", "realizada", "fecha de realizacion", "hecha el"),
    ),
    Spec(
        "due_at",
        Kind.datetime,
        "Due",
        ("due", "due date", "deadline", "vence", "fecha limite", "fecha de vencimiento", "vencimiento", "para el"),
    ),
    COMPANY,
    Spec(
        "contact",
        Kind.ref,
        "Contact (e-mail or name)",
        ("contact", "contact email", "person", "contacto", "persona"),
        ref=Ref.contact,
    ),
    Spec("deal", Kind.ref, "Deal", ("deal", "opportunity", "negocio", "oportunidad", "trato"), ref=Ref.deal),
    OWNER,
    Spec(
        "duration", Kind.minutes, "Duration (minutes)", ("duration", "minutes", "duracion", "minutos", "duracion (min)")
    ),
    Spec("direction", Kind.choice, "Call direction", ("direction", "direccion", "sentido"), options=DIRECTIONS),
    Spec("outcome", Kind.choice, "Call outcome", ("outcome", "result", "resultado"), options=OUTCOMES),
)

FIELDS: dict[ImportEntity, tuple[Spec, ...]] = {
    ImportEntity.company: COMPANY_FIELDS,
    ImportEntity.contact: CONTACT_FIELDS,
    ImportEntity.deal: DEAL_FIELDS,
    ImportEntity.activity: ACTIVITY_FIELDS,
}

# What an existing record can be matched on for an update, besides its Fieldbook id.
MATCH_KEYS: dict[ImportEntity, tuple[str, ...]] = {
    ImportEntity.company: ("id", "domain", "name"),
    ImportEntity.contact: ("id", "emails", "phones"),
    ImportEntity.deal: ("id",),
    ImportEntity.activity: ("id",),
}

CUSTOM_PREFIX = "custom."
_CUSTOM_KIND = {"text": Kind.text, "number": Kind.text, "date": Kind.date, "choice": Kind.text}


def specs(entity: ImportEntity, custom_fields: list[CustomField]) -> dict[str, Spec]:
    """Every field a column of this file may be mapped to, the organisation's custom fields included."""
    found = {s.key: s for s in FIELDS[entity]}
    for cf in custom_fields:
        if cf.entity == entity.value:
            key = CUSTOM_PREFIX + cf.key
            found[key] = Spec(key, Kind.custom, cf.label, (cf.label, cf.key), custom=cf, max_length=2000)
    return found


SUGGEST_AT = 85


def suggest(headers: list[str], fields: dict[str, Spec]) -> dict[str, str]:
    """A field for each header whose name matches one of the field's names: exactly (folded) first, then closely
    (rapidfuzz), each field used once. Exact matches win over close ones, so "Nombre" next to "Apellidos" maps to
    the first name and "Nombre" alone to the name."""
    names: dict[str, str] = {}
    for spec in fields.values():
        for name in (*spec.names, spec.label):
            names.setdefault(fold(name), spec.key)
    folded = {h: fold(h) for h in headers}
    has_last_name = any(names.get(f) == "last_name" for f in folded.values())
    chosen: dict[str, str] = {}
    used: set[str] = set()

    def take(header: str, key: str) -> None:
        if key == "name" and has_last_name and "first_name" in fields and "first_name" not in used:
            key = "first_name"
        if key not in used and header not in chosen:
            chosen[header] = key
            used.add(key)

    for header, name in folded.items():
        if name in names:
            take(header, names[name])
    for header, name in folded.items():
        if header in chosen or not name:
            continue
        best = process.extractOne(name, list(names), scorer=fuzz.WRatio, score_cutoff=SUGGEST_AT)
        if best is not None:
            take(header, names[best[0]])
    return chosen
