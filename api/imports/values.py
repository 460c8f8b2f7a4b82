"""Typed values from spreadsheet cells, read the way Spanish- and English-speaking teams type them.

Each parser takes one `Cell` and raises ValueError with a short English reason quoting the value. What cannot be told
from one cell (day/month order, the decimal mark) is decided per column by `date_order` and `decimal_mark`, and the
caller falls back to the organisation's locale when a column holds no evidence."""

import math
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

import phonenumbers
from babel.numbers import get_currency_precision, list_currencies

from api.clients import normalise
from api.core.types import FIRST_DAY, LAST_DAY, fold
from api.imports.reading import Cell

MAX_MINOR = 10**15

_MONTHS = {
    **dict.fromkeys(("ene", "enero", "jan", "january"), 1),
    **dict.fromkeys(("feb", "febrero", "february"), 2),
    **dict.fromkeys(("mar", "marzo", "march"), 3),
    **dict.fromkeys(("abr", "abril", "apr", "april"), 4),
    **dict.fromkeys(("may", "mayo"), 5),
    **dict.fromkeys(("jun", "junio", "june"), 6),
    **dict.fromkeys(("jul", "julio", "july"), 7),
    **dict.fromkeys(("ago", "agosto", "aug", "august"), 8),
    **dict.fromkeys(("sep", "sept", "set", "septiembre", "setiembre", "september"), 9),
    **dict.fromkeys(("oct", "octubre", "october"), 10),
    **dict.fromkeys(("nov", "noviembre", "november"), 11),
    **dict.fromkeys(("dic", "diciembre", "dec", "december"), 12),
}
# Words around a written date that carry no part of it. Spanish "mar" (martes) is left out: it is also March.
_DATE_FILLERS = {
    *("de", "del", "of", "the", "st", "nd", "rd", "th"),
    *("lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo", "lun", "mie", "jue", "vie", "sab"),
    *("dom", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    *("mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun"),
}
_NUMERIC_DATE = re.compile(r"(\d{1,4})([/.\-])(\d{1,2})\2(\d{1,4})")
_LEADING_DAY_MONTH = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2\d{2,4}\b")
_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]|$)")
_COMPACT_DATE = re.compile(r"(19|20|21)\d{6}")
# Written serials have five digits or more (from 1927 on): "2025" or "45" in a date column is a mistake, not a day
# in 1905.
_SERIAL = re.compile(r"\d{5,7}(?:[.,]\d+)?")
# The same for numbers: below 10,000 (1927-05-18) a number in a date column is a year, a quantity or a typo.
FIRST_SERIAL = 10_000
# A clock time ending the text: "14:30", "2:30 PM", "2:30 p. m." (Spanish), "14:30:15.250", "14:30 h".
_CLOCK = re.compile(
    r"(?:^|[\s,T]+)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?(?:\s*([ap])\.?\s?m\.?)?(?:\s*h)?$", re.IGNORECASE
)
# Excel's day 0. Serials count from 1900-01-01 = 1 but include 1900-02-29 (60), a day that never was (Lotus 1-2-3's
# leap-year bug, kept for compatibility), so for the serials read (10,000 on) this epoch gives the right day.
_EXCEL_EPOCH = datetime(1899, 12, 30)
_LAST_SERIAL = 2_958_465  # 9999-12-31

# Thousands separators besides "." and ",": spaces (\s covers the no-break and thin ones) and apostrophes (Swiss).
_SPACES = "\\s'\u2019"
_DOLLARS = {"US$": "USD", "MX$": "MXN", "COL$": "COP", "CA$": "CAD", "AU$": "AUD", "R$": "BRL"}
_SYMBOLS = {"€": "EUR", "£": "GBP", "euro": "EUR", "euros": "EUR"}
_CURRENCY_MARK = r"(?:US|MX|COL|CA|AU|R)?\$|[€£¥]|euros?\b|[A-Za-z]{3}\b"
_AMOUNT = re.compile(
    rf"(?P<lead_sign>[-\u2212+])?\s*(?P<lead>{_CURRENCY_MARK})?\s*(?P<sign>[-\u2212+])?\s*"
    rf"(?P<number>\d(?:[\d.,{_SPACES}]*\d)?)\s*(?P<trail>{_CURRENCY_MARK})?",
    re.IGNORECASE,
)
_CURRENCY_IN_TEXT = re.compile(rf"(?<![A-Za-z]){_CURRENCY_MARK}", re.IGNORECASE)
_CODES = frozenset(list_currencies())

_TRUE = frozenset(("yes", "y", "true", "1", "x", "si", "s", "verdadero", "✓", "✔"))
_FALSE = frozenset(("no", "n", "false", "0", "falso"))
_LIST_SEPARATORS = re.compile(r"[;,|\r\n]|\s+/\s+")


def _quote(value: object) -> str:
    text = _text(value) if isinstance(value, str | int | float) else str(value)
    return f"'{text[:60]}…'" if len(text) > 60 else f"'{text}'"


def _text(value: str | int | float) -> str:
    # 12.0 is how a spreadsheet hands over the number typed as 12.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _present(value: Cell) -> str | int | float | bool:
    """The cell's value, stripped, or the reason it has none."""
    if isinstance(value, dict):
        raise ValueError(value.get("error", "The cell shows an error"))
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("The cell is empty")
    return value.strip() if isinstance(value, str) else value


# Dates


def date_order(values: Iterable[Cell]) -> str | None:
    """Which part is the day in the column's numeric dates, "dmy" or "mdy", as shown by parts above 12 (by
    majority); None when no value tells (all parts up to 12, or as many votes each way)."""
    votes: Counter[str] = Counter()
    for value in values:
        match = _LEADING_DAY_MONTH.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            continue
        first, second = int(match[1]), int(match[3])
        if 12 < first <= 31 and second <= 12:
            votes["dmy"] += 1
        elif 12 < second <= 31 and first <= 12:
            votes["mdy"] += 1
    if votes["dmy"] == votes["mdy"]:
        return None
    return "dmy" if votes["dmy"] > votes["mdy"] else "mdy"


def parse_date(value: Cell, order: str) -> date:
    """A calendar day. `order` ("dmy" or "mdy") reads numeric dates whose first part is not a year."""
    present = _present(value)
    if isinstance(present, bool):
        raise ValueError(f"{_quote(present)} is not a date")
    if isinstance(present, int | float):
        return _from_serial(present, present).date()
    return _date_and_clock(present, order)[0]


def parse_datetime(value: Cell, order: str, tz: ZoneInfo) -> datetime:
    """A moment, in UTC. Times without an offset are wall-clock times in `tz`.

    A bare date becomes 12:00 in `tz`: midnight would show as the previous day to anyone a few hours west, while noon
    stays on the same calendar day in every zone within 12 hours, so "31/12/2025" keeps reading as 31 December."""
    present = _present(value)
    if isinstance(present, bool):
        raise ValueError(f"{_quote(present)} is not a date and time")
    zone: tzinfo = tz
    if isinstance(present, int | float):
        moment = _from_serial(present, present)
        if float(present).is_integer():
            moment = moment.replace(hour=12)
    else:
        day, clock, offset = _date_and_clock(present, order)
        moment = datetime.combine(day, clock or time(12))
        zone = offset or tz
    return moment.replace(tzinfo=zone).astimezone(UTC)


def _date_and_clock(text: str, order: str) -> tuple[date, time | None, tzinfo | None]:
    """The day, the time of day if written, and the offset if written (ISO only)."""
    if _ISO_START.match(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass  # not a full ISO value after all ("2025-12-31 2pm"): read it piece by piece below
        else:
            clock = moment.time() if len(text) > 10 else None
            return _in_range(moment.date(), text), clock, moment.tzinfo
    clock = None
    day_text = text
    if match := _CLOCK.search(text):
        clock = _clock(match, text)
        day_text = text[: match.start()].strip()
    if _COMPACT_DATE.fullmatch(day_text):
        return _day(int(day_text[:4]), int(day_text[4:6]), int(day_text[6:]), text), clock, None
    if _SERIAL.fullmatch(day_text):
        moment = _from_serial(float(day_text.replace(",", ".")), text)
        return moment.date(), clock or (moment.time() if moment.time() != time() else None), None
    if match := _NUMERIC_DATE.fullmatch(day_text):
        first, _, second, third = match.groups()
        if len(first) == 4:
            return _day(int(first), int(second), int(third), text), clock, None
        if len(first) > 2:
            raise ValueError(f"{_quote(text)} is not a date")
        year = _year(third, text)
        day, month = (first, second) if order == "dmy" else (second, first)
        written = "day/month/year" if order == "dmy" else "month/day/year"
        try:
            found = date(year, int(month), int(day))
        except ValueError:
            raise ValueError(f"{_quote(text)} is not a date ({written})") from None
        return _in_range(found, text), clock, None
    return _written_date(day_text, text), clock, None


def _written_date(day_text: str, text: str) -> date:
    """A date with the month in words: "31 dic 2025", "31 de diciembre de 2025", "Dec 31, 2025", "31-Dec-2025"."""
    tokens = [token for token in re.findall(r"[^\W\d_]+|\d+", fold(day_text)) if token not in _DATE_FILLERS]
    months = [_MONTHS[token] for token in tokens if token in _MONTHS]
    numbers = [token for token in tokens if token.isdigit()]
    if len(months) != 1 or len(numbers) != 2 or len(tokens) != 3:
        raise ValueError(f"{_quote(text)} is not a date")
    day, year = numbers if len(numbers[0]) <= 2 else numbers[::-1]
    return _day(_year(year, text), months[0], int(day), text)


def _year(digits: str, text: str) -> int:
    if len(digits) == 4:
        return int(digits)
    if len(digits) == 2:
        # The spreadsheet convention (Excel's default cut-off is 29; 69 keeps birth years of the 70s right).
        return 2000 + int(digits) if int(digits) < 70 else 1900 + int(digits)
    raise ValueError(f"{_quote(text)} is not a date")


def _day(year: int, month: int, day: int, text: str) -> date:
    try:
        found = date(year, month, day)
    except ValueError:
        raise ValueError(f"{_quote(text)} is not a date") from None
    return _in_range(found, text)


def _in_range(day: date, text: object) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{_quote(text)} is not between the years {FIRST_DAY.year} and {LAST_DAY.year}")
    return day


def _clock(match: re.Match[str], text: str) -> time:
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if meridiem := match[4]:
        if not 1 <= hour <= 12:
            raise ValueError(f"{_quote(text)} is not a time of day")
        hour = hour % 12 + (12 if meridiem.lower() == "p" else 0)
    try:
        return time(hour, minute, second)
    except ValueError:
        raise ValueError(f"{_quote(text)} is not a time of day") from None


def _from_serial(serial: float, shown: object) -> datetime:
    """An Excel serial number (1900 date system; days, with the time of day as the fraction)."""
    if not FIRST_SERIAL <= serial <= _LAST_SERIAL:
        raise ValueError(f"{_quote(shown)} is not a date")
    # Rounded to the second: 14:30 is stored as a fraction that reads back as 14:29:59.99.
    moment = _EXCEL_EPOCH + timedelta(seconds=round(serial * 86_400))
    _in_range(moment.date(), shown)
    return moment


# Amounts


def decimal_mark(values: Iterable[Cell]) -> str | None:
    """The decimal mark the column's amounts show, "," or "." (by majority); None when no value tells ("1.234"
    alone is a thousand in Spain and one and a bit in the US)."""
    votes: Counter[str] = Counter()
    for value in values:
        match = _AMOUNT.fullmatch(value.strip().strip("()")) if isinstance(value, str) else None
        if match is not None and (mark := _evident_mark(match["number"])):
            votes[mark] += 1
    if votes[","] == votes["."]:
        return None
    return "," if votes[","] > votes["."] else "."


def _evident_mark(number: str) -> str | None:
    if "," in number and "." in number:
        return "," if number.rfind(",") > number.rfind(".") else "."
    for mark, other in ((",", "."), (".", ",")):
        if mark not in number:
            continue
        whole, *fractions = number.split(mark)
        if len(fractions) > 1:
            return other
        whole = re.sub(f"[{_SPACES}]", "", whole)
        # Three digits after it is the only shape a thousands separator has: "12,5", "0,125", "1234,567" are decimals.
        if len(fractions[0]) != 3 or whole == "0" or len(whole) > 3:
            return mark
    return None


def parse_amount(value: Cell, mark: str) -> Decimal:
    """A number of money, with `mark` ("," or ".") as the decimal mark when the value itself does not show it.

    Thousands separators, a currency symbol or ISO code on either side, a sign and accounting parentheses are read;
    negative amounts are returned for the caller to refuse."""
    present = _present(value)
    if isinstance(present, bool):
        raise ValueError(f"{_quote(present)} is not an amount")
    if isinstance(present, int):
        return Decimal(present)
    if isinstance(present, float):
        if not math.isfinite(present):
            raise ValueError(f"{_quote(present)} is not an amount")
        # repr is the shortest text that reads back as this float: 0.1, not 0.1000000000000000055511151231257827.
        return Decimal(repr(present))
    negative = present.startswith("(") and present.endswith(")")
    match = _AMOUNT.fullmatch(present[1:-1].strip() if negative else present)
    if (
        match is None
        or (match["lead"] and match["trail"])
        or not all(map(_is_currency, (match["lead"], match["trail"])))
    ):
        raise ValueError(f"{_quote(present)} is not an amount")
    signs = [sign for sign in (match["lead_sign"], match["sign"]) if sign]
    if len(signs) + negative > 1:
        raise ValueError(f"{_quote(present)} is not an amount")
    number = _decimal(match["number"], mark, present)
    return -number if negative or any(sign != "+" for sign in signs) else number


def _is_currency(mark: str | None) -> bool:
    """Whether a currency-like mark is one: a symbol, or three letters that are an ISO code ("abc 5" is not)."""
    return mark is None or not (len(mark) == 3 and mark.isalpha()) or mark.upper() in _CODES


def _decimal(number: str, mark: str, shown: str) -> Decimal:
    # The value's own evidence beats the column's mark: "1.234,56" in a column of "12.5" is still 1234.56.
    decimal_sep = _evident_mark(number) or mark
    whole, fraction = number, ""
    if decimal_sep in number:
        whole, _, fraction = number.rpartition(decimal_sep)
        if not fraction.isdigit():
            raise ValueError(f"{_quote(shown)} is not an amount")
    groups = re.split(f"[{_SPACES}.,]", whole)
    if len(groups) > 1 and not (1 <= len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:])):
        raise ValueError(f"{_quote(shown)} is not an amount")
    return Decimal("".join(groups) + (f".{fraction}" if fraction else ""))


def currency_hint(value: Cell) -> str | None:
    """The ISO code a symbol or code in the cell names: "€ 5" → EUR, "USD 5" → USD; None for "$" alone, which is
    the currency of a dozen countries."""
    if not isinstance(value, str):
        return None
    for match in _CURRENCY_IN_TEXT.finditer(value):
        mark = match[0]
        if mark.upper() in _DOLLARS:
            return _DOLLARS[mark.upper()]
        if mark.lower() in _SYMBOLS:
            return _SYMBOLS[mark.lower()]
        if len(mark) == 3 and mark.upper() in _CODES:
            return mark.upper()
    return None


def to_minor(amount: Decimal, currency: str) -> int:
    """The amount in the currency's minor unit (cents), as money is stored."""
    digits = get_currency_precision(currency)
    scaled = amount.scaleb(digits)
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise ValueError(f"'{amount:f}' has more decimals than {currency} allows ({digits})")
    minor = int(scaled)
    if minor < 0:
        raise ValueError(f"'{amount:f}' is below zero")
    if minor > MAX_MINOR:
        raise ValueError(f"'{amount:f}' is too large")
    return minor


# Other types


def parse_int(value: Cell) -> int:
    """A whole number: "1200", "1.200", "1,200", "1 200", and 12.0 as spreadsheets send 12."""
    present = _present(value)
    if isinstance(present, bool):
        raise ValueError(f"{_quote(present)} is not a whole number")
    if isinstance(present, int):
        return present
    if isinstance(present, float):
        if present.is_integer():
            return int(present)
        raise ValueError(f"{_quote(present)} is not a whole number")
    match = re.fullmatch(r"([-\u2212+]?)\s*(\d{1,3}(?:([.,\s'\u2019])\d{3})(?:\3\d{3})*|\d+)(?:[.,]0+)?", present)
    if match is None:
        raise ValueError(f"{_quote(present)} is not a whole number")
    number = int(re.sub(r"\D", "", match[2]))
    return -number if match[1] in ("-", "\u2212") else number


def parse_bool(value: Cell) -> bool:
    present = _present(value)
    if isinstance(present, bool):
        return present
    if isinstance(present, int | float) and present in (0, 1):
        return bool(present)
    folded = fold(_text(present))
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError(f"{_quote(present)} is not yes or no")


def split_list(value: Cell) -> list[str]:
    """The items of a list typed in one cell, in order, each once (case- and accent-insensitively)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    present = _present(value)
    items: dict[str, str] = {}
    for part in _LIST_SEPARATORS.split(_text(present)):
        if item := part.strip():
            items.setdefault(fold(item), item)
    return list(items.values())


def phones_in(text: str, region: str | None) -> tuple[list[str], str]:
    """The phone numbers in free text, in E.164, and what is left when it holds words: "600 123 456 (móvil)" →
    (["+34600123456"], "(móvil)"). A number without a country code is read in `region`."""
    found: list[str] = []
    rest: list[str] = []
    end = 0
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if number not in found:
            found.append(number)
        rest.append(text[end : match.start])
        end = match.end
    if not found:
        # The matcher wants valid numbers; a lone possible one is accepted as the card's phone field accepts it.
        lone = normalise.phone_or_none(text, region)
        return ([lone], "") if lone else ([], text)
    rest.append(text[end:])
    # Separators left between numbers ("600 123 456 / 611 222 333") are not part of the words around them.
    leftover = " ".join(word for word in " ".join(rest).split() if word.strip("/,;|-"))
    return found, leftover if any(ch.isalpha() for ch in leftover) else ""


def choice(value: Cell, options: dict[str, str]) -> str:
    """The option whose label the cell spells, case-, accent- and spacing-insensitively."""
    present = _present(value)
    wanted = " ".join(fold(_text(present)).split())
    for label, option in options.items():
        if " ".join(fold(label).split()) == wanted:
            return option
    labels = list(options)
    listed = ", ".join(labels[:10]) + (", …" if len(labels) > 10 else "")
    raise ValueError(f"{_quote(present)} is not one of: {listed}")
