"""The columns of each export, in their documented order (docs/exports.md), with their headers in English and
Spanish. A key names the value in the exported row. The organisation's custom fields come after an entity's own
columns, titled by their labels, and the timestamps last."""

from typing import Literal

Language = Literal["en", "es"]
# key, English, Spanish
Header = tuple[str, str, str]

OWNER: tuple[Header, ...] = (
    ("owner_name", "Owner", "Responsable"),
    ("owner_email", "Owner e-mail", "Correo del responsable"),
)
# What companies and contacts share: classification, owner and the client card's numbers.
CLIENT: tuple[Header, ...] = (
    ("segment", "Segment", "Segmento"),
    ("source", "Source", "Origen"),
    ("tags", "Tags", "Etiquetas"),
    *OWNER,
    ("open_deals", "Open deals", "Negocios abiertos"),
    ("won_amount", "Lifetime value", "Valor ganado"),
    ("won_currency", "Lifetime value currency", "Moneda del valor ganado"),
    ("last_touch_at", "Last touch", "Último contacto"),
)

COMPANIES: tuple[Header, ...] = (
    ("id", "ID", "ID"),
    ("name", "Name", "Nombre"),
    ("domain", "Domain", "Dominio"),
    ("industry", "Industry", "Sector"),
    ("size", "Employees", "Empleados"),
    ("phone", "Phone", "Teléfono"),
    ("address", "Address", "Dirección"),
    ("city", "City", "Ciudad"),
    ("country", "Country", "País"),
    *CLIENT,
)

CONTACTS: tuple[Header, ...] = (
    ("id", "ID", "ID"),
    ("name", "Name", "Nombre"),
    ("title", "Job title", "Cargo"),
    ("company_id", "Company ID", "ID de la empresa"),
    ("company_name", "Company", "Empresa"),
    ("emails", "E-mails", "Correos"),
    ("phones", "Phones", "Teléfonos"),
    ("email_consent", "E-mail consent", "Consiente correos"),
    ("phone_consent", "Phone consent", "Consiente llamadas"),
    *CLIENT,
)

DEALS: tuple[Header, ...] = (
    ("id", "ID", "ID"),
    ("title", "Title", "Título"),
    ("company_id", "Company ID", "ID de la empresa"),
    ("company_name", "Company", "Empresa"),
    ("contact_id", "Contact ID", "ID del contacto"),
    ("contact_name", "Contact", "Contacto"),
    ("pipeline_name", "Pipeline", "Embudo"),
    ("stage_name", "Stage", "Etapa"),
    ("status", "Status", "Estado"),
    ("amount", "Amount", "Importe"),
    ("currency", "Currency", "Moneda"),
    ("expected_close_on", "Expected close", "Cierre previsto"),
    ("rotten", "Rotten", "Estancado"),
    ("last_activity_at", "Last activity", "Última actividad"),
    ("won_at", "Won at", "Ganado el"),
    ("lost_at", "Lost at", "Perdido el"),
    ("lost_reason_name", "Lost reason", "Motivo de pérdida"),
    ("lost_note", "Lost note", "Nota de pérdida"),
    *OWNER,
)

ACTIVITIES: tuple[Header, ...] = (
    ("id", "ID", "ID"),
    ("kind", "Kind", "Tipo"),
    ("subject", "Subject", "Asunto"),
    ("body", "Notes", "Notas"),
    ("company_id", "Company ID", "ID de la empresa"),
    ("company_name", "Company", "Empresa"),
    ("contact_id", "Contact ID", "ID del contacto"),
    ("contact_name", "Contact", "Contacto"),
    ("deal_id", "Deal ID", "ID del negocio"),
    ("deal_title", "Deal", "Negocio"),
    ("due_at", "Due", "Vence"),
    ("done_at", "Done", "Hecha"),
    ("duration_seconds", "Duration (s)", "Duración (s)"),
    ("direction", "Direction", "Sentido"),
    ("outcome", "Outcome", "Resultado"),
    *OWNER,
    ("assignee_name", "Assignee", "Asignada a"),
    ("assignee_email", "Assignee e-mail", "Correo de la persona asignada"),
)

TIMESTAMPS: tuple[Header, ...] = (
    ("created_at", "Created", "Creado"),
    ("updated_at", "Updated", "Actualizado"),
)

# The sheet's name in an XLSX file and the word in the file's name.
TITLES: dict[str, tuple[str, str]] = {
    "companies": ("Companies", "Empresas"),
    "contacts": ("Contacts", "Contactos"),
    "deals": ("Deals", "Negocios"),
    "activities": ("Activities", "Actividades"),
}


def title(header: Header, language: Language) -> str:
    return header[1] if language == "en" else header[2]
