from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from babel.numbers import format_decimal
from hypothesis import given
from hypothesis import strategies as st
from openpyxl.utils.datetime import from_excel

from api.imports.reading import Cell
from api.imports.values import (
    choice,
    currency_hint,
    date_order,
    decimal_mark,
    parse_amount,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_int,
    phones_in,
    split_list,
    to_minor,
)

MADRID = ZoneInfo("Europe/Madrid")


# Dates


@pytest.mark.parametrize(
    ("column", "order"),
    [
        (["01/02/2025", "31/12/2025"], "dmy"),
        (["01/02/2025", "12/31/2025 10:30"], "mdy"),
        (["01/02/2025", "03.04.25", None, 45657], None),
        (["13/01/2025", "14/01/2025", "01/13/2025"], "dmy"),  # the majority; parse_date refuses the odd one
        (["13/01/2025", "01/13/2025"], None),
        (["2025-12-31", "Dec 31, 2025"], None),
    ],
)
def test_date_order(column: list[Cell], order: str | None) -> None:
    assert date_order(column) == order


@pytest.mark.parametrize(
    ("value", "order", "expected"),
    [
        ("31/12/2025", "dmy", date(2025, 12, 31)),
        ("12/31/2025", "mdy", date(2025, 12, 31)),
        ("2025-12-31", "mdy", date(2025, 12, 31)),
        ("2025-12-31T23:30:00+01:00", "dmy", date(2025, 12, 31)),
        ("2025/12/31", "dmy", date(2025, 12, 31)),
        ("2025-1-5", "mdy", date(2025, 1, 5)),
        ("31.12.2025", "dmy", date(2025, 12, 31)),
        ("31-12-2025", "dmy", date(2025, 12, 31)),
        ("5/1/2025", "dmy", date(2025, 1, 5)),
        ("5/1/2025", "mdy", date(2025, 5, 1)),
        ("31/12/25", "dmy", date(2025, 12, 31)),
        ("1/1/69", "dmy", date(2069, 1, 1)),
        ("1/1/70", "dmy", date(1970, 1, 1)),
        ("31/12/2025 14:30", "dmy", date(2025, 12, 31)),
        ("20251231", "dmy", date(2025, 12, 31)),
        (45657, "dmy", date(2024, 12, 31)),
        (45657.75, "dmy", date(2024, 12, 31)),
        ("45657", "mdy", date(2024, 12, 31)),
        (10_000, "dmy", date(1927, 5, 18)),
        ("31 dic 2025", "mdy", date(2025, 12, 31)),
        ("31 de diciembre de 2025", "mdy", date(2025, 12, 31)),
        ("1 sept. 2025", "mdy", date(2025, 9, 1)),
        ("lunes, 1 de septiembre de 2025", "mdy", date(2025, 9, 1)),
        ("Dec 31, 2025", "dmy", date(2025, 12, 31)),
        ("December 31st, 2025", "dmy", date(2025, 12, 31)),
        ("31-Dec-2025", "mdy", date(2025, 12, 31)),
        ("31-DIC-25", "mdy", date(2025, 12, 31)),
        ("2025 Dec 31", "dmy", date(2025, 12, 31)),
        ("  31/12/2025  ", "dmy", date(2025, 12, 31)),
    ],
)
def test_parse_date(value: Cell, order: str, expected: date) -> None:
    assert parse_date(value, order) == expected


@pytest.mark.parametrize(
    ("value", "order", "reason"),
    [
        ("31/13/2025", "dmy", "'31/13/2025' is not a date (day/month/year)"),
        ("12/31/2025", "dmy", "'12/31/2025' is not a date (day/month/year)"),
        ("31/12/2025", "mdy", "'31/12/2025' is not a date (month/day/year)"),
        ("30 feb 2025", "dmy", "'30 feb 2025' is not a date"),
        ("31 dic", "dmy", "'31 dic' is not a date"),
        ("mañana", "dmy", "'mañana' is not a date"),
        ("31/12/1899", "dmy", "'31/12/1899' is not between the years 1900 and 2199"),
        ("2200-01-01", "dmy", "'2200-01-01' is not between the years 1900 and 2199"),
        (2025, "dmy", "'2025' is not a date"),
        (60, "dmy", "'60' is not a date"),
        (0, "dmy", "'0' is not a date"),
        (2_958_466, "dmy", "'2958466' is not a date"),
        (2_958_465, "dmy", "'2958465' is not between the years 1900 and 2199"),
        (True, "dmy", "'True' is not a date"),
        ("1/1/202", "dmy", "'1/1/202' is not a date"),
        # A year alone is not a serial number: written serials have five digits.
        ("2025", "dmy", "'2025' is not a date"),
        ({"error": "The cell shows #N/A"}, "dmy", "The cell shows #N/A"),
        (None, "dmy", "The cell is empty"),
        ("  ", "dmy", "The cell is empty"),
    ],
)
def test_parse_date_refuses(value: Cell, order: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_date(value, order)
    assert str(caught.value) == reason


@given(st.integers(min_value=10_000, max_value=109_574))
def test_excel_serials_match_openpyxl(serial: int) -> None:
    assert parse_date(serial, "dmy") == from_excel(serial).date()


@pytest.mark.parametrize(
    ("value", "order", "tz", "expected"),
    [
        ("31/12/2025 14:30", "dmy", MADRID, datetime(2025, 12, 31, 13, 30, tzinfo=UTC)),
        ("31/12/2025 14:30:15", "dmy", MADRID, datetime(2025, 12, 31, 13, 30, 15, tzinfo=UTC)),
        ("12/31/2025 2:30 PM", "mdy", MADRID, datetime(2025, 12, 31, 13, 30, tzinfo=UTC)),
        ("31/12/2025 2:30 p. m.", "dmy", MADRID, datetime(2025, 12, 31, 13, 30, tzinfo=UTC)),
        ("31/12/2025 12:05 a.m.", "dmy", MADRID, datetime(2025, 12, 30, 23, 5, tzinfo=UTC)),
        ("2025-07-01T10:30:00", "dmy", MADRID, datetime(2025, 7, 1, 8, 30, tzinfo=UTC)),
        ("2025-07-01 10:30", "dmy", MADRID, datetime(2025, 7, 1, 8, 30, tzinfo=UTC)),
        ("2025-07-01T10:30:00+02:00", "mdy", ZoneInfo("America/Bogota"), datetime(2025, 7, 1, 8, 30, tzinfo=UTC)),
        ("2025-07-01T10:30:00Z", "mdy", MADRID, datetime(2025, 7, 1, 10, 30, tzinfo=UTC)),
        ("Dec 31, 2025 10:30", "mdy", MADRID, datetime(2025, 12, 31, 9, 30, tzinfo=UTC)),
        # A bare date is noon where the organisation is.
        ("31/12/2025", "dmy", MADRID, datetime(2025, 12, 31, 11, 0, tzinfo=UTC)),
        ("2025-12-31", "dmy", ZoneInfo("America/Mexico_City"), datetime(2025, 12, 31, 18, 0, tzinfo=UTC)),
        (45657, "dmy", MADRID, datetime(2024, 12, 31, 11, 0, tzinfo=UTC)),
        (45657.25, "dmy", MADRID, datetime(2024, 12, 31, 5, 0, tzinfo=UTC)),
        (45657.604166666664, "dmy", MADRID, datetime(2024, 12, 31, 13, 30, tzinfo=UTC)),
    ],
)
def test_parse_datetime(value: Cell, order: str, tz: ZoneInfo, expected: datetime) -> None:
    parsed = parse_datetime(value, order, tz)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("31/12/2025 25:00", "'31/12/2025 25:00' is not a time of day"),
        ("31/12/2025 13:00 PM", "'31/12/2025 13:00 PM' is not a time of day"),
        ("31/13/2025 10:00", "'31/13/2025 10:00' is not a date (day/month/year)"),
        ("a las 10:00", "'a las 10:00' is not a date"),
        (False, "'False' is not a date and time"),
    ],
)
def test_parse_datetime_refuses(value: Cell, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_datetime(value, "dmy", MADRID)
    assert str(caught.value) == reason


# Amounts


@pytest.mark.parametrize(
    ("column", "mark"),
    [
        (["1.234,56"], ","),
        (["12,5", "1.234"], ","),
        (["0,125"], ","),
        (["1.234.567"], ","),
        (["1,234.56"], "."),
        (["12.5"], "."),
        (["$1,234,567"], "."),
        (["(1,234.56)"], "."),
        (["1.234"], None),
        (["1,234", "€ 1 234", 12.5, 1234, None], None),
        (["12,5", "3,25", "1,234.56"], ","),
        ([], None),
    ],
)
def test_decimal_mark(column: list[Cell], mark: str | None) -> None:
    assert decimal_mark(column) == mark


@pytest.mark.parametrize(
    ("value", "mark", "expected"),
    [
        ("1.234,56", ",", "1234.56"),
        ("1.234,56", ".", "1234.56"),
        ("1,234.56", ".", "1234.56"),
        ("1,234.56", ",", "1234.56"),
        ("€ 1 234", ",", "1234"),
        ("1 234,56 €", ",", "1234.56"),
        ("1\u00a0234,56\u00a0€", ",", "1234.56"),
        ("1\u202f234,56", ",", "1234.56"),
        ("1\u2009234", ".", "1234"),
        ("1'234.50 CHF", ".", "1234.50"),
        ("$1,234.56", ".", "1234.56"),
        ("US$ 1,234.56", ".", "1234.56"),
        ("USD 1,234.56", ".", "1234.56"),
        ("1.234.567 COP", ",", "1234567"),
        ("1.234.567", ".", "1234567"),
        ("1,234,567", ",", "1234567"),
        ("1.234", ",", "1234"),
        ("1.234", ".", "1.234"),
        ("1,234", ".", "1234"),
        ("1,234", ",", "1.234"),
        ("12,5", ".", "12.5"),
        ("12.5", ",", "12.5"),
        ("0,125", ".", "0.125"),
        ("1234", ",", "1234"),
        ("-5", ",", "-5"),
        ("- 5 €", ",", "-5"),
        ("€-5", ",", "-5"),
        ("\u22125", ",", "-5"),
        ("+5", ",", "5"),
        ("(1,234.56)", ".", "-1234.56"),
        ("500 euros", ",", "500"),
        ("1.500 mxn", ",", "1500"),
        (1234, ",", "1234"),
        (12.5, ",", "12.5"),
        (0.1, ".", "0.1"),
    ],
)
def test_parse_amount(value: Cell, mark: str, expected: str) -> None:
    parsed = parse_amount(value, mark)
    assert parsed == Decimal(expected)
    assert str(parsed) == expected


@pytest.mark.parametrize(
    "value",
    ["about 500", "abc 5", "12 34", "1,2,3", "1.234,5.6", "5 € €", "€", "5 EUR USD", "--5", "(-5)", "1e5", True],
)
def test_parse_amount_refuses(value: Cell) -> None:
    with pytest.raises(ValueError) as caught:
        parse_amount(value, ",")
    assert str(caught.value) == f"'{value}' is not an amount"


@given(st.decimals(min_value=0, max_value=10**12, places=2))
def test_amounts_round_trip_through_spanish_english_and_french_formats(amount: Decimal) -> None:
    for locale, mark in (("es_ES", ","), ("en_US", "."), ("fr_FR", ",")):
        text = format_decimal(amount, format="#,##0.00", locale=locale)
        assert parse_amount(text, mark) == amount, text
        assert parse_amount(f"{text} €", mark) == amount, text


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("€ 5", "EUR"),
        ("5 €", "EUR"),
        ("500 euros", "EUR"),
        ("EUR", "EUR"),
        ("£5", "GBP"),
        ("$5", None),
        ("US$ 5", "USD"),
        ("USD 1,234.56", "USD"),
        ("1.000 MXN", "MXN"),
        ("cop 5", "COP"),
        ("5", None),
        ("about 500", None),
        (5, None),
    ],
)
def test_currency_hint(value: Cell, code: str | None) -> None:
    assert currency_hint(value) == code


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("12.34", "EUR", 1234), ("12.5", "EUR", 1250), ("12.340", "EUR", 1234), ("1234", "JPY", 1234), ("0", "EUR", 0)],
)
def test_to_minor(amount: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(amount), currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency", "reason"),
    [
        ("12.345", "EUR", "'12.345' has more decimals than EUR allows (2)"),
        ("12.5", "JPY", "'12.5' has more decimals than JPY allows (0)"),
        ("-5", "EUR", "'-5' is below zero"),
        ("10000000000000.01", "EUR", "'10000000000000.01' is too large"),
    ],
)
def test_to_minor_refuses(amount: str, currency: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        to_minor(Decimal(amount), currency)
    assert str(caught.value) == reason
    assert to_minor(Decimal(10**13), "EUR") == 10**15


# Other types


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1200", 1200),
        ("1.200", 1200),
        ("1,200", 1200),
        ("1\u00a0200", 1200),
        ("1.200.000", 1_200_000),
        ("12.0", 12),
        ("12,00", 12),
        ("-5", -5),
        (12, 12),
        (12.0, 12),
    ],
)
def test_parse_int(value: Cell, expected: int) -> None:
    assert parse_int(value) == expected


@pytest.mark.parametrize("value", ["12.5", "1,5", "1.2.3", "doce", "1 2", 12.5, True])
def test_parse_int_refuses(value: Cell) -> None:
    with pytest.raises(ValueError) as caught:
        parse_int(value)
    assert str(caught.value) == f"'{value}' is not a whole number"


@pytest.mark.parametrize(
    "value", ["yes", "Y", "TRUE", "1", "x", "X", "Sí", "si", "S", "verdadero", "✓", "✔", True, 1, 1.0]
)
def test_parse_bool_true(value: Cell) -> None:
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", ["no", "N", "false", "0", "FALSO", "No", False, 0, 0.0])
def test_parse_bool_false(value: Cell) -> None:
    assert parse_bool(value) is False


def test_parse_bool_refuses() -> None:
    for value in ("quizá", 2):
        with pytest.raises(ValueError) as caught:
            parse_bool(value)
        assert str(caught.value) == f"'{value}' is not yes or no"


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("vip; mayorista, Madrid\nnorte | sur / este", ["vip", "mayorista", "Madrid", "norte", "sur", "este"]),
        ("VIP, vip, Vip , , ;", ["VIP"]),
        ("I+D/Marketing", ["I+D/Marketing"]),
        ("Léon, leon", ["Léon"]),
        ("", []),
        (None, []),
        (12, ["12"]),
    ],
)
def test_split_list(value: Cell, items: list[str]) -> None:
    assert split_list(value) == items


@pytest.mark.parametrize(
    ("text", "region", "found"),
    [
        ("600 123 456 (móvil)", "ES", (["+34600123456"], "(móvil)")),
        ("600 123 456 / 611 222 333 (Juan)", "ES", (["+34600123456", "+34611222333"], "(Juan)")),
        ("600 123 456, 600123456", "ES", (["+34600123456"], "")),
        ("Tel. +44 20 7946 0958", "ES", (["+442079460958"], "Tel.")),
        ("+34 600 123 456", None, (["+34600123456"], "")),
        ("600 123 456", None, ([], "600 123 456")),
        # Not a valid number (555), so the matcher skips it, but a possible one read alone.
        ("555-555-5555", "US", (["+15555555555"], "")),
        ("sin teléfono", "ES", ([], "sin teléfono")),
    ],
)
def test_phones_in(text: str, region: str | None, found: tuple[list[str], str]) -> None:
    assert phones_in(text, region) == found


KINDS = {"call": "call", "llamada": "call", "Reunión": "meeting", "meeting": "meeting", "Visita comercial": "visit"}


@pytest.mark.parametrize(
    ("value", "option"),
    [("LLAMADA", "call"), ("reunion", "meeting"), (" Reunión ", "meeting"), ("visita   COMERCIAL", "visit")],
)
def test_choice(value: Cell, option: str) -> None:
    assert choice(value, KINDS) == option


def test_choice_refuses_with_the_labels() -> None:
    with pytest.raises(ValueError) as caught:
        choice("correo", KINDS)
    assert str(caught.value) == "'correo' is not one of: call, llamada, Reunión, meeting, Visita comercial"
