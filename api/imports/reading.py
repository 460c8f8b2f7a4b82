"""Read an uploaded spreadsheet (XLSX or CSV) as a header and a stream of rows, in constant memory.

The format is told from the bytes, not the file name: people rename files, and phones name downloads as they like.
Cells come out as plain values (text, numbers, booleans, ISO dates) for `api.imports.values` to type per column."""

import codecs
import csv
import io
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Generator, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import chain, islice, repeat, zip_longest
from pathlib import Path
from typing import IO, Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.formula import ArrayFormula

from api.core.types import fold

# A dict only as {"error": "<reason>"}: a cell whose value cannot be used, reported against its row.
Cell = str | int | float | bool | dict[str, str] | None
Records = Generator[tuple[int, list[Cell]], None, None]

HEADER_SEARCH_ROWS = 20
_SNIFF_BYTES = 64 * 1024
_CHUNK_BYTES = 1024 * 1024
_DELIMITERS = ",;\t|"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The stream an OLE2 container holds when it is a password-protected .xlsx (stream names are UTF-16LE).
_ENCRYPTION_STREAM = re.compile("EncryptionInfo".encode("utf-16-le"))
# C0 controls that never occur in text files (tab, line ends, form feed and ^Z, the DOS end-of-file, do).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\v\f\r\x1a")
_NOT_CONTROL_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)

# A formula cell with no cached result: `</f>` or `<f .../>` followed by an empty `<v>` or by the cell's end.
# Excel always writes a result; programs (openpyxl, many exporters) often do not. Namespace prefixes are optional.
_NS = rb"(?:[A-Za-z_][\w.-]*:)?"
_UNCACHED_FORMULA = re.compile(
    rb"(?:</" + _NS + rb"f>|<" + _NS + rb"f\b[^>]*/>)\s*"
    rb"(?:<" + _NS + rb"v\s*/>|<" + _NS + rb"v>\s*</" + _NS + rb"v>|</" + _NS + rb"c>)"
)
_PATTERN_OVERLAP = 256

NOT_A_SPREADSHEET = "The file is not a spreadsheet: upload an .xlsx or CSV file."
UNCALCULATED = "The cell holds a formula Excel never calculated: open and save the file in Excel."


class SpreadsheetError(ValueError):
    """The file cannot be read as a spreadsheet; `str(exc)` is the user-facing English reason."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Opened:
    format: str  # "csv" | "xlsx"
    sheets: list[str]  # [] for CSV
    sheet: str | None  # the sheet read: the one asked for, or the first (visible) sheet holding data
    encoding: str | None  # CSV: "utf-8", "utf-8-sig", "utf-16" (Excel's "Unicode text"), "cp1252" or "latin-1"
    delimiter: str | None  # CSV: one of , ; \t |
    # 1-based. XLSX: the sheet row. CSV: the record, counting blank lines and the header as records, which is the
    # row Excel shows when it opens the file (a quoted value spanning lines is one row there).
    header_row: int
    headers: list[str]


@dataclass
class Stats:
    """Filled in while the rows are consumed; read it once the iterator is exhausted."""

    rows: int = 0  # rows yielded, blank ones included
    blank_rows: int = 0
    # Non-empty cells right of the last titled column: they are not yielded, so the caller should warn.
    values_beyond_headers: int = 0
    first_row_beyond_headers: int | None = None


def open_table(
    path: Path, *, sheet: str | None = None, max_rows: int = 200_000, max_columns: int = 200
) -> tuple[Opened, Records, Stats]:
    """Sniff the format, find the header, and return the rows after it as (row number, cells aligned to headers).

    The rows are a generator holding the file open: exhaust it or `close()` it. It raises SpreadsheetError while
    iterating ("too-many-rows" when row `max_rows + 1` is reached, "damaged" or "malformed" on a broken file), so the
    caller must handle that error mid-import too. Trailing blank rows are not yielded; blank rows between data are.
    """
    with path.open("rb") as stream:
        head = stream.read(_SNIFF_BYTES)
    if not head:
        raise SpreadsheetError("The file is empty.", "empty")
    if head.startswith(b"PK\x03\x04"):
        # An OpenDocument file names its type in a `mimetype` entry stored first and uncompressed.
        if b"opendocument.spreadsheet" in head[:100]:
            raise SpreadsheetError(
                "OpenDocument .ods files are not supported: save it as .xlsx or CSV.", "ods-not-supported"
            )
        return _open_xlsx(path, sheet, max_rows=max_rows, max_columns=max_columns)
    if head.startswith(_OLE2_MAGIC):
        with path.open("rb") as stream:
            if _stream_has(stream, _ENCRYPTION_STREAM):
                raise SpreadsheetError(
                    "The file is protected with a password: remove the password in Excel and upload it again.",
                    "encrypted",
                )
        raise SpreadsheetError("Old Excel .xls files are not supported: save it as .xlsx or CSV.", "xls-not-supported")
    encoding = _csv_encoding(path, head)
    return _open_csv(path, encoding, max_rows=max_rows, max_columns=max_columns)


# CSV


def _csv_encoding(path: Path, head: bytes) -> str:
    """The encoding of a text file, decided on all of its bytes.

    Hand-written rather than a statistical detector (charset-normalizer, chardet): customers send UTF-8, Excel's
    Windows-1252 and, rarely, Latin-1, and these are told apart for certain by trying them in order (UTF-8 is strict,
    cp1252 leaves five bytes undefined, Latin-1 takes anything), whereas a detector guesses on short Spanish files.
    The whole file is checked, streamed, because an "ñ" may first appear on row 90,000."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        if _decodes(path, "utf-16"):
            return "utf-16"
        raise SpreadsheetError(NOT_A_SPREADSHEET, "not-a-spreadsheet")
    if not _looks_like_text(head):
        raise SpreadsheetError(NOT_A_SPREADSHEET, "not-a-spreadsheet")
    if head.startswith(codecs.BOM_UTF8) and _decodes(path, "utf-8"):
        return "utf-8-sig"
    for encoding in ("utf-8", "cp1252"):
        if _decodes(path, encoding):
            return encoding
    return "latin-1"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head or head.startswith(b"%PDF-"):
        return False
    # Binary formats without NUL bytes in their first 64 KiB still scatter control bytes; a stray one in text is fine.
    return len(head.translate(None, _NOT_CONTROL_BYTES)) * 100 <= len(head)


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _open_csv(path: Path, encoding: str, *, max_rows: int, max_columns: int) -> tuple[Opened, Records, Stats]:
    with path.open(encoding=encoding, newline="") as text:
        delimiter = _delimiter(text.read(_SNIFF_BYTES))
    header_row, headers, rows, stats = _table(
        _csv_records(path, encoding, delimiter), max_rows=max_rows, max_columns=max_columns
    )
    opened = Opened(
        format="csv",
        sheets=[],
        sheet=None,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
        headers=headers,
    )
    return opened, rows, stats


def _delimiter(sample: str) -> str:
    # The sample ends mid-record; the sniffer counts delimiters per line and would see the cut line as odd.
    end = sample.rfind("\n")
    if end > 0:
        sample = sample[:end]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        # max() keeps the first of equals, so "," wins when nothing decides.
        return max(_DELIMITERS, key=lambda delimiter: _consistency(sample, delimiter))


def _consistency(sample: str, delimiter: str) -> tuple[int, int]:
    """How many of the first lines share the commonest field count, and that count (1 field is no evidence)."""
    # newline="" as for the file itself: a bare CR ends a line there too, where the csv module refuses to meet one.
    text = io.StringIO(sample, newline="")
    widths = Counter(len(record) for record in islice(csv.reader(text, delimiter=delimiter), 50))
    widths.pop(0, None)
    widths.pop(1, None)
    if not widths:
        return 0, 0
    width, lines = widths.most_common(1)[0]
    return lines, width


def _csv_records(path: Path, encoding: str, delimiter: str) -> Records:
    with path.open(encoding=encoding, newline="") as text:
        reader = csv.reader(text, delimiter=delimiter)
        try:
            for number, record in enumerate(reader, start=1):
                yield number, [value.strip() or None for value in record]
        except csv.Error as exc:
            # Typically an opening quote never closed: the value swallows the rest of the file until the csv
            # module's field limit (128 KiB) stops it, which also bounds memory.
            raise SpreadsheetError(
                f"Line {reader.line_num} of the file cannot be read ({exc}): check for a quote that is never closed.",
                "malformed",
            ) from exc


# XLSX


def _open_xlsx(path: Path, sheet: str | None, *, max_rows: int, max_columns: int) -> tuple[Opened, Records, Stats]:
    with ExitStack() as stack:
        book = _load(stack, path, data_only=True)
        # Read-only sheets have no class of their own in the type stubs, hence Any.
        worksheets: list[Any] = book.worksheets
        names = [worksheet.title for worksheet in worksheets]
        chosen = _choose_sheet(worksheets, sheet)
        # Some writers store a wrong <dimension> (often "A1"); read-only mode would cut every row to it.
        chosen.reset_dimensions()
        formulas: Any = None
        if _has_uncached_formulas(path, chosen):
            formulas = _load(stack, path, data_only=False)[chosen.title]
            formulas.reset_dimensions()
        records = _xlsx_records(stack.pop_all(), chosen, formulas)
    header_row, headers, rows, stats = _table(records, max_rows=max_rows, max_columns=max_columns)
    opened = Opened(
        format="xlsx",
        sheets=names,
        sheet=chosen.title,
        encoding=None,
        delimiter=None,
        header_row=header_row,
        headers=headers,
    )
    return opened, rows, stats


def _load(stack: ExitStack, path: Path, *, data_only: bool) -> Workbook:
    # A stream, not the path: openpyxl refuses paths by their extension, and uploads are stored under any name.
    stream = stack.enter_context(path.open("rb"))
    try:
        book = load_workbook(stream, read_only=True, data_only=data_only)
    except Exception as exc:
        # A zip that is not a workbook (a .docx, a damaged file) fails in whichever openpyxl parser meets it first,
        # each with its own exception type; all mean the same to the user.
        raise SpreadsheetError(NOT_A_SPREADSHEET, "not-a-spreadsheet") from exc
    stack.callback(book.close)
    return book


def _choose_sheet(worksheets: list[Any], wanted: str | None) -> Any:
    if wanted is not None:
        for worksheet in worksheets:
            if worksheet.title == wanted:
                return worksheet
        names = ", ".join(f"'{worksheet.title}'" for worksheet in worksheets)
        raise SpreadsheetError(
            f"The workbook has no sheet named '{wanted}'; its sheets are {names}.", "sheet-not-found"
        )
    # Hidden sheets often hold the lists behind drop-downs: prefer a visible sheet, keeping the tab order.
    for worksheet in sorted(worksheets, key=lambda worksheet: worksheet.sheet_state != "visible"):
        worksheet.reset_dimensions()
        if any(value is not None for row in worksheet.iter_rows(values_only=True) for value in row):
            return worksheet
    raise SpreadsheetError("The file is empty: none of its sheets holds data.", "empty")


def _has_uncached_formulas(path: Path, worksheet: Any) -> bool:
    """Whether the sheet may hold a formula without a result, found by scanning its XML bytes.

    Reading the formulas means parsing the sheet a second time in lockstep, which more than doubles the read time
    (measured on an Excel-like sheet of 100,000 rows x 10 columns: 6 s in one pass, 13.5 s in lockstep). This scan
    takes 0.2 s, and sheets saved by Excel, or exported without formulas, never need the second pass."""
    # openpyxl keeps the sheet's part name private; it has been `_worksheet_path` since read-only mode appeared.
    part: str = worksheet._worksheet_path
    with zipfile.ZipFile(path) as archive, archive.open(part) as stream:
        return _stream_has(stream, _UNCACHED_FORMULA)


def _stream_has(stream: IO[bytes], pattern: re.Pattern[bytes]) -> bool:
    """Whether `pattern` (matching at most _PATTERN_OVERLAP bytes) occurs in the stream, read in chunks."""
    tail = b""
    while chunk := stream.read(_CHUNK_BYTES):
        window = tail + chunk
        if pattern.search(window):
            return True
        tail = window[-_PATTERN_OVERLAP:]
    return False


def _xlsx_records(stack: ExitStack, values: Any, formulas: Any) -> Records:
    with stack:
        # iter_rows yields every row number from 1, filling gaps in the XML with empty rows.
        value_rows = values.iter_rows()
        formula_rows = formulas.iter_rows() if formulas is not None else repeat(())
        try:
            for number, (cells, formula_cells) in enumerate(zip(value_rows, formula_rows, strict=False), start=1):
                yield number, [_xlsx_cell(cell, formula) for cell, formula in zip_longest(cells, formula_cells)]
        except (SyntaxError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            # XML parse errors subclass SyntaxError; the others come from a truncated or corrupt zip.
            raise SpreadsheetError(
                "The spreadsheet is damaged: open it in Excel, save it again and upload the new file.", "damaged"
            ) from exc


def _xlsx_cell(cell: Any, formula: Any) -> Cell:
    value = cell.value
    if value is None:
        text = formula.value if formula is not None else None
        # A formula whose result is "" has no cached value either, but Excel marks that cell t="str".
        if cell.data_type != "str" and (
            isinstance(text, ArrayFormula) or (isinstance(text, str) and text.startswith("="))
        ):
            return {"error": UNCALCULATED}
        return None
    if cell.data_type == "e":
        return {"error": f"The cell shows {value}"}
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        value = _nearest_second(value)
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return _nearest_second(datetime.combine(date.min, value)).time().isoformat()
    if isinstance(value, timedelta):
        # A duration cell ([h]:mm:ss), written as Excel shows it.
        seconds = round(value.total_seconds())
        sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
        return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02}:{seconds % 60:02}"
    return str(value)


def _nearest_second(value: datetime) -> datetime:
    # Excel stores times as fractions of a day: 14:30 reads back as 14:29:59.999999.
    return (value + timedelta(microseconds=500_000)).replace(microsecond=0)


# Both formats


def _table(records: Records, *, max_rows: int, max_columns: int) -> tuple[int, list[str], Records, Stats]:
    try:
        head = list(islice(records, HEADER_SEARCH_ROWS))
        index = _header_index(head)
        header_row, header_cells = head[index]
        headers = _header_names(header_cells)
        if len(headers) > max_columns:
            raise SpreadsheetError(
                f"The file has {len(headers):,} columns; at most {max_columns:,} can be imported.", "too-many-columns"
            )
    except BaseException:
        records.close()
        raise
    stats = Stats()
    rows = _data_rows(chain(head[index + 1 :], records), records, len(headers), max_rows, stats)
    return header_row, headers, rows, stats


def _header_index(head: list[tuple[int, list[Cell]]]) -> int:
    """The first row holding at least half as many values as the widest row near the top (and at least two).

    A title such as a merged "Clientes 2025" above the real header holds one value and is skipped."""
    counts = [sum(cell is not None for cell in cells) for _, cells in head]
    widest = max(counts, default=0)
    if widest == 0:
        raise SpreadsheetError(f"No column titles found: the first {HEADER_SEARCH_ROWS} rows are empty.", "no-header")
    least = 1 if widest == 1 else max(2, widest / 2)
    return next(i for i, count in enumerate(counts) if count >= least)


MAX_HEADER = 200


def column_title(position: int) -> str:
    """The title of an untitled column: the letter a spreadsheet shows (1 -> "Column A")."""
    return f"Column {get_column_letter(position)}"


def _header_names(cells: list[Cell]) -> list[str]:
    texts = [_header_text(cell) for cell in cells]
    width = max(i + 1 for i, text in enumerate(texts) if text)
    names: list[str] = []
    seen: set[str] = set()
    for position, text in enumerate(texts[:width], start=1):
        # Titles are stored and sent back as mapping keys: past 200 characters they are cut (kept unique below).
        base = (text or column_title(position))[:MAX_HEADER]
        name, copy = base, 1
        # Unique case- and accent-insensitively: columns are matched to fields by their folded title.
        while fold(name) in seen:
            copy += 1
            name = f"{base} ({copy})"
        seen.add(fold(name))
        names.append(name)
    return names


def _header_text(cell: Cell) -> str | None:
    if cell is None or isinstance(cell, dict):
        return None
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip() or None


def _data_rows(
    rows: Iterable[tuple[int, list[Cell]]], source: Records, width: int, max_rows: int, stats: Stats
) -> Records:
    try:
        # Only a count of the blank rows seen since the last data row: trailing ones (Excel often reports thousands
        # of formatted, empty rows) are never yielded, and memory stays constant.
        blanks = 0
        for number, cells in rows:
            beyond = sum(cell is not None for cell in cells[width:])
            if not beyond and all(cell is None for cell in cells[:width]):
                blanks += 1
                continue
            for blank in range(number - blanks, number):
                _count_row(stats, max_rows)
                stats.blank_rows += 1
                yield blank, [None] * width
            blanks = 0
            _count_row(stats, max_rows)
            if beyond:
                stats.values_beyond_headers += beyond
                if stats.first_row_beyond_headers is None:
                    stats.first_row_beyond_headers = number
                # Kept, not cut: the caller titles the extra columns ("Column E"), so nothing is lost unseen.
                last = max(i for i, cell in enumerate(cells) if cell is not None)
                yield number, cells[: last + 1]
                continue
            yield number, cells[:width] + [None] * (width - len(cells))
    finally:
        source.close()


def _count_row(stats: Stats, max_rows: int) -> None:
    if stats.rows == max_rows:
        raise SpreadsheetError(f"The file has more than {max_rows:,} rows: split it.", "too-many-rows")
    stats.rows += 1
