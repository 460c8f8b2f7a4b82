"""Reading uploads: every fixture is built here, in the test's directory, and stored under a name without an
extension, because the format must be told from the bytes."""

import zipfile
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path

import pytest
from openpyxl import Workbook
from openpyxl.styles import Font

from api.imports.reading import UNCALCULATED, Cell, Opened, SpreadsheetError, open_table

SHEET_XML = "xl/worksheets/sheet1.xml"
Row = tuple[int, list[Cell]]


def _xlsx(tmp_path: Path, build: Callable[[Workbook], None], patches: dict[str, str] | None = None) -> Path:
    book = Workbook()
    build(book)
    path = tmp_path / "upload"
    book.save(path)
    if patches:
        _patch_xml(path, SHEET_XML, patches)
    return path


def _patch_xml(path: Path, member: str, patches: dict[str, str]) -> None:
    """Rewrite one part of the zip: how a test gets what openpyxl cannot write (cached results, odd dimensions)."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts[member].decode()
    for old, new in patches.items():
        assert old in xml, old
        xml = xml.replace(old, new)
    parts[member] = xml.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return path


def _read(path: Path, *, sheet: str | None = None, max_rows: int = 200_000) -> tuple[Opened, list[Row]]:
    opened, rows, _ = open_table(path, sheet=sheet, max_rows=max_rows)
    return opened, list(rows)


def _error(path: Path, *, sheet: str | None = None) -> SpreadsheetError:
    with pytest.raises(SpreadsheetError) as caught:
        _, rows, _ = open_table(path, sheet=sheet)
        list(rows)
    return caught.value


# XLSX


def test_xlsx_skips_a_merged_title_and_trailing_formatted_rows(tmp_path: Path) -> None:
    def build(book: Workbook) -> None:
        sheet = book.active
        assert sheet is not None
        sheet["A1"] = "Clientes 2025"
        sheet.merge_cells("A1:F1")
        sheet.append(["Nombre", "Dirección", None, " Alta ", "Importe", "Activo"])
        sheet.merge_cells("B2:C2")
        sheet.append(["  Peña Hnos.  ", "Calle Mayor 1", "Madrid", date(2025, 12, 31), 1234.5, True])
        sheet.append([])  # a blank row in the middle, written as nothing
        for column in "ABCDEF":  # and one written as formatted, empty cells
            sheet[f"{column}5"].font = Font(bold=True)
        sheet.append(["Acme", None, None, datetime(2025, 1, 2, 10, 30), 12, False])
        for row in range(7, 507):
            sheet.cell(row=row, column=1).font = Font(italic=True)

    opened, rows = _read(_xlsx(tmp_path, build))

    assert opened.format == "xlsx"
    assert opened.header_row == 2
    assert opened.headers == ["Nombre", "Dirección", "Column C", "Alta", "Importe", "Activo"]
    assert rows == [
        (3, ["Peña Hnos.", "Calle Mayor 1", "Madrid", "2025-12-31", 1234.5, True]),
        (4, [None] * 6),
        (5, [None] * 6),
        (6, ["Acme", None, None, "2025-01-02T10:30:00", 12, False]),
    ]


def test_xlsx_cell_types(tmp_path: Path) -> None:
    def build(book: Workbook) -> None:
        sheet = book.active
        assert sheet is not None
        sheet.append(["Texto", "Entero", "Decimal", "Fecha", "Hora", "Sí/No", "Vacío", "Error"])
        sheet.append(["  ", 7, 12.0, datetime(2025, 12, 31, 14, 29, 59, 999_999), time(9, 5), False, "", "#N/A"])

    _, rows = _read(_xlsx(tmp_path, build))

    [(_, cells)] = rows
    assert cells == [None, 7, 12.0, "2025-12-31T14:30:00", "09:05:00", False, None, {"error": "The cell shows #N/A"}]
    assert type(cells[5]) is bool


def test_xlsx_formulas_cached_uncalculated_and_errors(tmp_path: Path) -> None:
    def build(book: Workbook) -> None:
        sheet = book.active
        assert sheet is not None
        sheet.append(["Base", "Doble", "Nuevo", "Roto", "Vacío", "Texto"])
        sheet.append([10, "=A2*2", "=A2*3", "=1/0", "=LEFT(A2,0)", "=A2"])

    path = _xlsx(
        tmp_path,
        build,
        {
            # What Excel writes: a result next to each formula (C2 keeps openpyxl's empty one).
            '<c r="B2"><f>A2*2</f><v /></c>': '<c r="B2"><f>A2*2</f><v>20</v></c>',
            '<c r="D2"><f>1/0</f><v /></c>': '<c r="D2" t="e"><f>1/0</f><v>#DIV/0!</v></c>',
            '<c r="E2"><f>LEFT(A2,0)</f><v /></c>': '<c r="E2" t="str"><f>LEFT(A2,0)</f><v></v></c>',
            '<c r="F2"><f>A2</f><v /></c>': '<c r="F2" t="str"><f>A2</f><v>10</v></c>',
        },
    )

    _, rows = _read(path)

    assert rows == [(2, [10, 20, {"error": UNCALCULATED}, {"error": "The cell shows #DIV/0!"}, None, "10"])]


def test_xlsx_formulas_all_cached_are_read_in_one_pass(tmp_path: Path) -> None:
    def build(book: Workbook) -> None:
        sheet = book.active
        assert sheet is not None
        sheet.append(["Base", "Doble"])
        sheet.append([10, "=A2*2"])

    path = _xlsx(tmp_path, build, {"<f>A2*2</f><v />": "<f>A2*2</f><v>20</v>"})

    assert _read(path)[1] == [(2, [10, 20])]


def test_xlsx_ignores_a_wrong_dimension(tmp_path: Path) -> None:
    def build(book: Workbook) -> None:
        sheet = book.active
        assert sheet is not None
        sheet.append(["Nombre", "Ciudad", "Teléfono"])
        sheet.append(["Acme", "Madrid", "600123456"])

    opened, rows = _read(_xlsx(tmp_path, build, {'<dimension ref="A1:C2" />': '<dimension ref="A1" />'}))

    assert opened.headers == ["Nombre", "Ciudad", "Teléfono"]
    assert rows == [(2, ["Acme", "Madrid", "600123456"])]


def _two_sheets(book: Workbook) -> None:
    first = book.active
    assert first is not None
    first.title = "Portada"
    second = book.create_sheet("Clientes")
    second.append(["Nombre", "Ciudad"])
    second.append(["Acme", "Madrid"])


def test_xlsx_reads_the_first_sheet_holding_data(tmp_path: Path) -> None:
    opened, rows = _read(_xlsx(tmp_path, _two_sheets))

    assert opened.sheets == ["Portada", "Clientes"]
    assert opened.sheet == "Clientes"
    assert rows == [(2, ["Acme", "Madrid"])]


def test_xlsx_reads_the_sheet_asked_for(tmp_path: Path) -> None:
    def build(book: Workbook) -> None:
        _two_sheets(book)
        first = book["Portada"]
        first.append(["Título", "Autor"])
        first.append(["Informe", "Ana"])

    path = _xlsx(tmp_path, build)

    assert _read(path)[0].sheet == "Portada"
    opened, rows = _read(path, sheet="Clientes")
    assert opened.sheet == "Clientes"
    assert rows == [(2, ["Acme", "Madrid"])]


def test_xlsx_prefers_a_visible_sheet(tmp_path: Path) -> None:
    def build(book: Workbook) -> None:
        lists = book.active
        assert lists is not None
        lists.title = "Listas"
        lists.append(["Sector", "Provincia"])
        lists.sheet_state = "hidden"
        clients = book.create_sheet("Clientes")
        clients.append(["Nombre", "Ciudad"])

    assert _read(_xlsx(tmp_path, build))[0].sheet == "Clientes"


def test_xlsx_sheet_not_found_lists_the_sheets(tmp_path: Path) -> None:
    error = _error(_xlsx(tmp_path, _two_sheets), sheet="Hoja1")

    assert error.code == "sheet-not-found"
    assert str(error) == "The workbook has no sheet named 'Hoja1'; its sheets are 'Portada', 'Clientes'."


def test_xlsx_with_no_data_is_empty(tmp_path: Path) -> None:
    assert _error(_xlsx(tmp_path, lambda book: None)).code == "empty"


def test_headers_are_named_and_unique(tmp_path: Path) -> None:
    def build(book: Workbook) -> None:
        sheet = book.active
        assert sheet is not None
        sheet.append(["Email", None, "email", "EMAIL", 2025, 3.5, "Column B", None])
        sheet.append(["a@b.es", "x", "c@d.es", None, 1, 2, 3, None, None])

    opened, rows = _read(_xlsx(tmp_path, build))

    assert opened.headers == ["Email", "Column B", "email (2)", "EMAIL (3)", "2025", "3.5", "Column B (2)"]
    assert rows == [(2, ["a@b.es", "x", "c@d.es", None, 1, 2, 3])]


def test_values_beyond_the_titled_columns_are_kept_and_counted(tmp_path: Path) -> None:
    def build(book: Workbook) -> None:
        sheet = book.active
        assert sheet is not None
        sheet.append(["Nombre", "Ciudad"])
        sheet.append(["Acme", "Madrid", None, "nota"])
        sheet.append([None, None, "suelto", "otro"])

    path = _xlsx(tmp_path, build)
    _, rows, stats = open_table(path)

    assert list(rows) == [(2, ["Acme", "Madrid", None, "nota"]), (3, [None, None, "suelto", "otro"])]
    assert (stats.values_beyond_headers, stats.first_row_beyond_headers) == (3, 2)
    assert (stats.rows, stats.blank_rows) == (2, 0)


def test_a_non_workbook_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", "<document/>")

    assert _error(path).code == "not-a-spreadsheet"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("photo.jpg", b"\xff\xd8\xff")
    assert _error(path).code == "not-a-spreadsheet"


def test_ods_is_refused_with_its_own_reason(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")

    error = _error(path)
    assert error.code == "ods-not-supported"


def test_ole2_is_old_excel_or_encrypted(tmp_path: Path) -> None:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504

    error = _error(_write(tmp_path, ole2 + b"\x00" * 4096))
    assert (error.code, str(error)) == (
        "xls-not-supported",
        "Old Excel .xls files are not supported: save it as .xlsx or CSV.",
    )
    assert _error(_write(tmp_path, ole2 + "EncryptionInfo".encode("utf-16-le"))).code == "encrypted"


# CSV


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("Nombre,Ciudad\nPeña,Málaga\n".encode(), "utf-8"),
        ("\ufeffNombre,Ciudad\nPeña,Málaga\n".encode(), "utf-8-sig"),
        ("Nombre,Ciudad\nPeña,Málaga\n".encode("cp1252"), "cp1252"),
        ("Nombre,Ciudad\nPeña,Málaga\n".encode("latin-1") + b"\x81,x\n", "latin-1"),
        ("Nombre\tCiudad\nPeña\tMálaga\n".encode("utf-16"), "utf-16"),
    ],
)
def test_csv_encodings(tmp_path: Path, data: bytes, encoding: str) -> None:
    opened, rows = _read(_write(tmp_path, data))

    assert opened.encoding == encoding
    assert opened.headers == ["Nombre", "Ciudad"]
    assert rows[0] == (2, ["Peña", "Málaga"])


def test_csv_cp1252_euro_sign(tmp_path: Path) -> None:
    opened, rows = _read(_write(tmp_path, "Cliente;Importe\nPeña;€ 1.234,56\n".encode("cp1252")))

    assert (opened.encoding, opened.delimiter) == ("cp1252", ";")
    assert rows == [(2, ["Peña", "€ 1.234,56"])]


def test_csv_encoding_is_decided_on_the_whole_file(tmp_path: Path) -> None:
    lines = (
        [b"Nombre,Ciudad\n"] + [b"Cliente %d,Madrid\n" % n for n in range(100_000)] + ["Peña,Málaga\n".encode("cp1252")]
    )
    data = b"".join(lines)
    assert len(data) > 2_000_000

    opened, rows = _read(_write(tmp_path, data))

    assert opened.encoding == "cp1252"
    assert rows[-1] == (100_002, ["Peña", "Málaga"])


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("Nombre;Importe;Ciudad\nAcme;12,5;Madrid\nBeta;3,25;Soria\n", ";"),
        ("Nombre\tImporte\tCiudad\nAcme\t12,5\tMadrid\nBeta\t3,25\tSoria\n", "\t"),
        ("Nombre|Importe|Ciudad\nAcme|12,5|Madrid\nBeta|3,25|Soria\n", "|"),
        ("Nombre,Importe,Ciudad\nAcme,12.5,Madrid\nBeta,3.25,Soria\n", ","),
    ],
)
def test_csv_delimiters(tmp_path: Path, text: str, delimiter: str) -> None:
    opened, rows = _read(_write(tmp_path, text.encode()))

    assert opened.delimiter == delimiter
    assert rows == [
        (2, ["Acme", text.split("\n")[1].split(delimiter)[1], "Madrid"]),
        (3, ["Beta", rows[1][1][1], "Soria"]),
    ]


def test_csv_quoted_newlines_and_delimiters(tmp_path: Path) -> None:
    text = (
        'Nombre;Notas;Ciudad\r\n"Acme; S.L.";"Llamar el lunes;\r\nsegunda línea";Madrid\r\n'
        'Beta;"dice ""hola""";Soria\r\n'
    )

    opened, rows = _read(_write(tmp_path, text.encode()))

    assert opened.delimiter == ";"
    # Rows count records, as Excel does, not physical lines.
    assert rows == [
        (2, ["Acme; S.L.", "Llamar el lunes;\r\nsegunda línea", "Madrid"]),
        (3, ["Beta", 'dice "hola"', "Soria"]),
    ]


def test_csv_bare_carriage_returns_end_lines(tmp_path: Path) -> None:
    # No delimiter for the sniffer to find: the delimiter is chosen by counting, which once failed on the bare CR.
    opened, rows = _read(_write(tmp_path, b"Nombre\rAcme\n"))

    assert (opened.delimiter, rows) == (",", [(2, ["Acme"])])


def test_csv_title_line_blank_lines_and_trailing_blanks(tmp_path: Path) -> None:
    text = "Clientes 2025,,\n,,\nNombre,Ciudad,Alta\nAcme,Madrid,2025-01-02\n\n,,\nBeta,Soria,\n\n,,\n\n"

    opened, rows, stats = open_table(_write(tmp_path, text.encode()))

    assert (opened.header_row, opened.headers) == (3, ["Nombre", "Ciudad", "Alta"])
    assert list(rows) == [
        (4, ["Acme", "Madrid", "2025-01-02"]),
        (5, [None, None, None]),
        (6, [None, None, None]),
        (7, ["Beta", "Soria", None]),
    ]
    assert (stats.rows, stats.blank_rows) == (4, 2)


def test_single_column_file(tmp_path: Path) -> None:
    opened, rows = _read(_write(tmp_path, b"\nEmail\na@b.es\nc@d.es\n"))

    assert (opened.header_row, opened.headers, opened.delimiter) == (2, ["Email"], ",")
    assert rows == [(3, ["a@b.es"]), (4, ["c@d.es"])]


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    opened, rows = _read(_write(tmp_path, b"Nombre,Ciudad\r\n"))

    assert opened.headers == ["Nombre", "Ciudad"]
    assert rows == []


def test_no_header_in_the_first_rows(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, b",,\n" * 25 + b"Nombre,Ciudad\n"))

    assert (error.code, str(error)) == ("no-header", "No column titles found: the first 20 rows are empty.")


def test_too_many_rows_is_raised_while_iterating(tmp_path: Path) -> None:
    path = _write(tmp_path, b"Nombre,Ciudad\n" + b"Acme,Madrid\n" * 5 + b"\n" * 10)

    # The trailing blank lines are not rows: exactly max_rows rows pass.
    assert len(_read(path, max_rows=5)[1]) == 5
    _, rows, _ = open_table(path, max_rows=4)
    assert [next(rows)[0] for _ in range(4)] == [2, 3, 4, 5]
    with pytest.raises(SpreadsheetError) as caught:
        next(rows)
    assert (caught.value.code, str(caught.value)) == ("too-many-rows", "The file has more than 4 rows: split it.")


def test_too_many_columns(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ",".join(f"c{n}" for n in range(201)).encode()))

    assert (error.code, str(error)) == ("too-many-columns", "The file has 201 columns; at most 200 can be imported.")


def test_unclosed_quote_is_malformed(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, b'Nombre,Notas\nAcme,"sin cerrar\n' + b"x" * 200_000 + b"\n"))

    assert error.code == "malformed"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not-a-spreadsheet"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "not-a-spreadsheet"),
        (bytes(range(1, 32)) * 100, "not-a-spreadsheet"),
        (b"\xff\xfeN\x00\x00\xd8a\x00", "not-a-spreadsheet"),  # UTF-16 with a lone surrogate
    ],
)
def test_files_that_are_not_spreadsheets(tmp_path: Path, data: bytes, code: str) -> None:
    assert _error(_write(tmp_path, data)).code == code


def test_closing_early_releases_the_file(tmp_path: Path) -> None:
    def build(book: Workbook) -> None:
        sheet = book.active
        assert sheet is not None
        sheet.append(["Nombre", "Ciudad"])
        for n in range(10):
            sheet.append([f"Cliente {n}", "=A2"])

    _, rows, _ = open_table(_xlsx(tmp_path, build))
    assert next(rows)[1] == ["Cliente 0", {"error": UNCALCULATED}]
    rows.close()
    with pytest.raises(StopIteration):
        next(rows)
