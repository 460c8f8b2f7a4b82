"""One spelling for e-mails, phones and web domains, so that duplicates and exact searches match however they
were typed ("+34 611 22 33 44", "611223344", "(611) 22-33-44" are one phone in Spain)."""

import re
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from api.core.errors import ValidationFailed

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def email(value: str, pointer: str) -> str:
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed.field(pointer, str(exc)) from exc
    # Mailboxes are case-insensitive in practice; one spelling keeps duplicates findable.
    return checked.normalized.lower()


def phone(value: str, region: str | None, pointer: str) -> str:
    """E.164. A number without a country code is read in the organisation's region."""
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed.field(pointer, "Not a phone number.") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise ValidationFailed.field(pointer, "Not a possible phone number for its country.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_or_none(value: str, region: str | None) -> str | None:
    """A search term read as a phone, if it is one (search must not fail on words)."""
    digits = sum(ch.isdigit() for ch in value)
    if digits < 6 or any(ch.isalpha() for ch in value):
        return None
    try:
        return phone(value, region, "#")
    except ValidationFailed:
        return None


def domain(value: str, pointer: str) -> str:
    """The host of a web address: "https://www.Acme.es/contacto" → "acme.es"."""
    text = value.strip().lower()
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    host = host.removeprefix("www.").rstrip(".")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValidationFailed.field(pointer, "Not a web domain.") from exc
    if not _HOSTNAME.match(host):
        raise ValidationFailed.field(pointer, "Not a web domain.")
    return host
