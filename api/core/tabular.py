"""Spreadsheets out: CSV and XLSX written as rows arrive, so a file of any length costs the memory of a chunk.

Shared by exports and the import report. Cells are plain Python values: text, numbers (int, float, Decimal),
booleans, dates, datetimes (timezone-aware, shown in UTC), UUIDs, lists (joined with "; ") and None (empty).
"""

import asyncio
import codecs
import csv
import enum
import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from fastapi.responses import StreamingResponse
from xlsxwriter import Workbook
from xlsxwriter.format import Format as CellFormat
from xlsxwriter.worksheet import Worksheet

FileFormat = Literal["csv", "xlsx"]
MEDIA_TYPES: dict[FileFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

# The OpenAPI `responses` entry of a route that answers a file (`download`).
FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, streamed, with `Content-Disposition: attachment` and its name.",
        "content": {
            MEDIA_TYPES["csv"]: {"schema": {"type": "string"}},
            MEDIA_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

CHUNK_BYTES = 64 * 1024
# Rows handed to the XLSX writer's thread at a time: what the writer holds in memory at most.
XLSX_CHUNK_ROWS = 1_000
LIST_SEPARATOR = "; "
# A spreadsheet reads a text cell starting with one of these as a formula (or, for tab and CR, strips them and then
# reads the rest as one): "=HYPERLINK(...)" in a company's name would run on the opener's machine (OWASP "CSV
# injection"). A leading apostrophe makes Excel, LibreOffice and Sheets show the text as typed.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def plain(value: Any) -> str:
    """A cell as text: ISO dates and times (UTC), lists joined, booleans as true/false, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(plain(v) for v in value)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _csv_cell(value: Any, decimal_mark: str) -> str:
    if _is_number(value):
        # Numbers are not text: a negative amount keeps its sign and no apostrophe.
        text = str(value)
        return text if isinstance(value, int) else text.replace(".", decimal_mark)
    text = plain(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


async def csv_stream(
    headers: list[str], rows: AsyncIterator[Sequence[Any]], *, delimiter: str = ","
) -> AsyncIterator[bytes]:
    """RFC 4180 CSV in UTF-8 with a byte-order mark (without it Excel reads the file as the system's code page and
    mangles accents), in chunks of about 64 KiB. With `;` as the delimiter, decimals are written with a comma: `;` is
    what Excel expects where the comma is the decimal mark (Spain), and there "12.50" would be read as a date."""
    decimal_mark = "," if delimiter == ";" else "."
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([_csv_cell(h, decimal_mark) for h in headers])
    yield codecs.BOM_UTF8 + buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    async for row in rows:
        writer.writerow([_csv_cell(v, decimal_mark) for v in row])
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


class _Sheet:
    """One worksheet written row after row (XlsxWriter's constant_memory mode flushes each finished row to disk)."""

    def __init__(self, path: Path, headers: list[str], sheet: str) -> None:
        self.book = Workbook(
            str(path),
            {
                "constant_memory": True,
                "in_memory": False,
                "tmpdir": str(path.parent),
                # Text stays text: nothing a user typed is turned into a formula, a number or a link.
                "strings_to_formulas": False,
                "strings_to_numbers": False,
                "strings_to_urls": False,
            },
        )
        self.sheet: Worksheet = self.book.add_worksheet(sheet[:31])
        self.date = self.book.add_format({"num_format": "yyyy-mm-dd"})
        self.datetime = self.book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self.decimals: dict[int, CellFormat] = {}
        bold = self.book.add_format({"bold": True})
        for column, header in enumerate(headers):
            self.sheet.set_column(column, column, min(max(len(header) + 2, 12), 50))
            self.sheet.write_string(0, column, header, bold)
        self.sheet.freeze_panes(1, 0)
        self.row = 1

    def _decimal_format(self, places: int) -> CellFormat:
        # An amount keeps its currency's decimals on screen (12.50, not 12.5).
        if places not in self.decimals:
            self.decimals[places] = self.book.add_format({"num_format": "#,##0." + "0" * places})
        return self.decimals[places]

    def _write(self, column: int, value: Any) -> None:
        row, sheet = self.row, self.sheet
        if value is None:
            return
        if isinstance(value, bool):
            sheet.write_boolean(row, column, value)
        elif isinstance(value, Decimal):
            exponent = value.as_tuple().exponent
            places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
            sheet.write_number(row, column, float(value), self._decimal_format(places) if places else None)
        elif isinstance(value, int | float):
            sheet.write_number(row, column, value)
        elif isinstance(value, datetime):
            # Excel has no time zones: UTC, as the CSV says.
            sheet.write_datetime(row, column, value.astimezone(UTC).replace(tzinfo=None), self.datetime)
        elif isinstance(value, date):
            sheet.write_datetime(row, column, value, self.date)
        else:
            sheet.write_string(row, column, plain(value))

    def write(self, rows: list[Sequence[Any]]) -> None:
        for values in rows:
            for column, value in enumerate(values):
                self._write(column, value)
            self.row += 1

    def close(self) -> None:
        self.book.close()


async def xlsx_stream(headers: list[str], rows: AsyncIterator[Sequence[Any]], *, sheet: str) -> AsyncIterator[bytes]:
    """An XLSX workbook of one sheet: bold, frozen header row; real date, datetime and number cells; text written as
    strings. Written off the event loop into a temporary directory a chunk of rows at a time, then sent in 64 KiB
    pieces; the directory goes however the stream ends (finished, failed or abandoned by the client)."""
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="fieldbook-xlsx-"))
    try:
        path = folder / "export.xlsx"
        book = await asyncio.to_thread(_Sheet, path, headers, sheet)
        chunk: list[Sequence[Any]] = []
        async for row in rows:
            chunk.append(row)
            if len(chunk) >= XLSX_CHUNK_ROWS:
                await asyncio.to_thread(book.write, chunk)
                chunk = []
        await asyncio.to_thread(book.write, chunk)
        await asyncio.to_thread(book.close)
        with path.open("rb") as file:
            while piece := await asyncio.to_thread(file.read, CHUNK_BYTES):
                yield piece
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


def download(body: AsyncIterator[bytes], *, filename: str, file_format: FileFormat) -> StreamingResponse:
    """A streamed file download. The name goes in both forms of RFC 6266: `filename*` (RFC 5987, UTF-8) for
    browsers, and an ASCII `filename` for the rest."""
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "").replace("?", "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPES[file_format],
        headers={
            "Content-Disposition": disposition,
            # Personal data: not for shared caches, nor the browser's.
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
