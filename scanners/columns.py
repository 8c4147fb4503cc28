"""Credential-named columns: CSV files (``id,email,password`` fixtures and seed data),
Markdown, HTML and AsciiDoc tables whose header names a credential column (wiki pages,
exported runbooks), and SQL ``INSERT`` rows.

A cell is judged by the same rules as ``<column>: <value>`` on one config line and reported
where it stands. Works on whole files and on diff streams alike: a diff is read file by
file (one pass over its headers for the three kinds), and only added lines count, so a
tree scan and a history scan find the same cells.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import re
from collections.abc import Callable, Iterator

from secretsd.scanners.model import CommitInfo, Finding, Fragment, diff_file_parts
from secretsd.scanners.placement import Placed, judged_as_config

__all__ = ["column_findings"]

#: Header names of a column that holds credentials (test fixtures, seed data, exports).
_CSV_COLUMN = re.compile(
    r"(?i)(?:[\w ]*[_ -])?(?:password|passwd|pwd|pass|passphrase|secret|token|api[_ -]?key"
    r"|apikey|access[_ -]?key|client[_ -]?secret|private[_ -]?key"
    r"|(?:app|auth|master|signing|encryption|session|network|nwk)[_ -]?key)"
    r"|(?P<foreign>[\w ]{0,30}?(?:contrase(?:ñ|n)a|senha|mot de passe|passwort|kennwort|wachtwoord"
    r"|has(?:ł|l)o|heslo|salasana|(?:ş|s)ifre|parola|l(?:ö|o)senord|adgangskode|пароль|密码|密碼"
    r"|パスワード|비밀번호))"
)


def _column_key(column: str) -> str:
    """The key a cell is judged under: a password column named in another language
    (``Contraseña``, ``Пароль``, ``密码``) is judged as a ``password`` column."""
    match = _CSV_COLUMN.fullmatch(column.strip())
    if match is not None and match.group("foreign"):
        return "password"
    return re.sub(r"\W+", "_", column)


#: File suffixes whose columns are read, and the reader of each.
_COLUMN_KINDS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".sql": "sql",
    ".html": "html",
    ".htm": "html",
    ".adoc": "asciidoc",
    ".asciidoc": "asciidoc",
}
# A diff header line naming such a file (its second path: the new file; quoted when git
# quotes the path; paths may hold blanks). One pass for the three kinds with re's
# literal-prefix scan (23 ms per 48 MB of history), not one pass per kind.
_COLUMN_FILE = re.compile(
    rb"\ndiff --git [^\n]*(\.(?:csv|tsv|CSV|TSV|md|markdown|mdx|MD|sql|SQL|html?|HTML?|adoc"
    rb"|asciidoc|ADOC))\"?\n"
)


def _column_segments(fragment: Fragment) -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` of each file in ``fragment`` whose columns are read: the whole
    fragment when it is such a file, or, in a diff, the part of each such file."""
    data = fragment.data
    if fragment.locate is None:
        low = fragment.path.lower()
        kind = next((k for suffix, k in _COLUMN_KINDS.items() if low.endswith(suffix)), None)
        if kind is not None:
            yield kind, 0, len(data)
        return
    for match, end in diff_file_parts(data, _COLUMN_FILE):
        yield _COLUMN_KINDS[match.group(1).decode().lower()], match.end() - 1, end


@dataclasses.dataclass(frozen=True)
class _Line:
    """A line of a file as the user sees it: where it stands and its text (no diff marker)."""

    path: str
    number: int
    commit: CommitInfo | None
    text: str


def _segment_lines(fragment: Fragment, start: int, end: int) -> Iterator[_Line | None]:
    """Each line of ``data[start:end]``; in a diff, None for a line that is no added line (a
    removed line, a hunk or file header), which ends whatever the caller was reading."""
    data = fragment.data
    locate = fragment.locate
    offset = start
    first = fragment.first_line + data.count(b"\n", 0, start) if locate is None else 0
    for index, raw in enumerate(data[start:end].split(b"\n")):
        at = offset
        offset += len(raw) + 1
        if locate is None:
            text = raw.decode("utf-8", "replace").rstrip("\r")
            yield _Line(fragment.path, first + index, fragment.commit, text)
            continue
        loc = locate(at + 1) if raw[:1] == b" " else None
        if loc is None:
            yield None
            continue
        text = raw[1:].decode("utf-8", "replace").rstrip("\r")
        yield _Line(loc.path, loc.line, loc.commit, text)


def _line_at(fragment: Fragment, at: int) -> _Line | None:
    """The line holding byte ``at``; None in a diff when it is no added line."""
    data = fragment.data
    line_start = data.rfind(b"\n", 0, at) + 1
    line_end = data.find(b"\n", at)
    raw = data[line_start : line_end if line_end >= 0 else len(data)]
    if fragment.locate is None:
        number = fragment.first_line + data.count(b"\n", 0, at)
        return _Line(
            fragment.path, number, fragment.commit, raw.decode("utf-8", "replace").rstrip("\r")
        )
    loc = fragment.locate(at)
    if loc is None:
        return None
    return _Line(loc.path, loc.line, loc.commit, raw[1:].decode("utf-8", "replace").rstrip("\r"))


def _judged_cell(
    scan: Callable[[Fragment], list[Finding]],
    where: _Line,
    column: str,
    value: str,
    origin: str,
    tag: str,
) -> list[Finding]:
    """One cell of a credential column, judged as ``<column>: <value>`` and placed where it
    stands in its file."""
    key = _column_key(column)
    return judged_as_config(
        scan,
        Fragment(where.path, f"{key}: {value}\n".encode(), commit=where.commit),
        Placed(where.number, where.text.find(value) + 1, where.text, origin, tag),
    )


def column_findings(scan: Callable[[Fragment], list[Finding]], fragment: Fragment) -> list[Finding]:
    """Values of credential-named columns (``password``, ``api_key``...) of CSV files, Markdown,
    HTML and AsciiDoc tables and SQL ``INSERT`` rows, each judged as ``<column>: <value>``."""
    found: list[Finding] = []
    for kind, start, end in _column_segments(fragment):
        found += _COLUMN_READERS[kind](scan, fragment, start, end)
    return found


def _split_row(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def _csv_columns(
    scan: Callable[[Fragment], list[Finding]], fragment: Fragment, start: int, end: int
) -> list[Finding]:
    """A CSV file's credential columns. The header must be the file's first line (added in
    the same commit, for a diff), as that is what names the columns."""
    found: list[Finding] = []
    columns: dict[int, str] = {}
    delimiter = ","
    for where in _segment_lines(fragment, start, end):
        if where is None:
            continue
        text = where.text
        if where.number == 1:
            delimiter = "\t" if text.count("\t") > text.count(",") else ","
            names = _split_row(text, delimiter)
            columns = {
                i: name.strip()
                for i, name in enumerate(names)
                if _CSV_COLUMN.fullmatch(name.strip())
            }
            continue
        if not columns or not text.strip():
            continue
        cells = _split_row(text, delimiter)
        for index, name in columns.items():
            if index < len(cells) and cells[index].strip():
                value = cells[index].strip()
                found += _judged_cell(
                    scan, where, name, value, "a credential column of a CSV file", "csv-column"
                )
    return found


#: The row under a Markdown table's header: ``|---|:---:|``.
_MD_RULE_ROW = re.compile(r"\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*")


#: A table drawn with box characters (``│ user │ password │``, ``├──┼──┤``), as CLI tools
#: print them and people paste them into docs: read like a Markdown table.
_BOX_BARS = str.maketrans({"│": "|", "┃": "|", "║": "|"})
_BOX_BAR = "│".encode()
_BOX_RULE_ROW = re.compile(r"\s*[├┝┠╞╟╠┣|+]?[─━═\-]+(?:[┼┿╪╫╬╋+|][─━═\-]+)+[┤┥┨╡╢╣┫|+]?\s*")


def _md_cells(text: str) -> list[str] | None:
    """The cells of a Markdown table row, or None when the line is no table row."""
    stripped = text.translate(_BOX_BARS).strip()
    if not stripped.startswith("|") or stripped.count("|") < 3:
        return None
    return [cell.strip().strip("`").strip() for cell in stripped.strip("|").split("|")]


def _markdown_columns(
    scan: Callable[[Fragment], list[Finding]], fragment: Fragment, start: int, end: int
) -> list[Finding]:
    """Cells of credential-named columns of Markdown tables (``| system | user | password |``
    in a wiki page or runbook). The header row and its ``|---|`` rule must come just before
    the rows (added in the same hunk, for a diff)."""
    data = fragment.data
    if data.find(b"|", start, end) < 0 and data.find(_BOX_BAR, start, end) < 0:
        return []
    found: list[Finding] = []
    columns: dict[int, str] = {}
    header: list[str] | None = None
    for where in _segment_lines(fragment, start, end):
        cells = None if where is None else _md_cells(where.text)
        if (
            where is not None
            and header is not None
            and (_MD_RULE_ROW.fullmatch(where.text) or _BOX_RULE_ROW.fullmatch(where.text))
        ):
            columns = {i: n for i, n in enumerate(header) if _CSV_COLUMN.fullmatch(n)}
            header = None
            continue
        if where is None or cells is None:  # a line that is no table row ends the table
            columns, header = {}, None
            continue
        if not columns:
            header = cells
            continue
        for index, name in columns.items():
            if index < len(cells) and cells[index]:
                found += _judged_cell(
                    scan,
                    where,
                    name,
                    cells[index],
                    "a credential column of a Markdown table",
                    "markdown-column",
                )
    return found


#: One cell of an HTML table row: its tag (``th`` or ``td``) and its content.
_HTML_CELL = re.compile(r"(?is)<(t[hd])\b[^>]*>(.*?)</t[hd]\s*>")
_HTML_TAG = re.compile(r"<[^>]*>")
#: A header cell naming a credential: a page without one is not read line by line (most
#: HTML in a tree is documentation without such a table).
_HTML_CREDENTIAL_HEADER = re.compile(
    rb"(?i)<th\b[^>]*>(?:\s|<[^>]*>)*[\w .-]{0,40}(?:pass|pwd|secret|token|key)"
)


def _html_columns(
    scan: Callable[[Fragment], list[Finding]], fragment: Fragment, start: int, end: int
) -> list[Finding]:
    """Cells of credential-named columns of HTML tables (an exported wiki page listing
    ``system | user | password``). A row of ``<th>`` cells names the columns; the rows after
    it, one cell per line or a whole row per line, up to ``</table>``, are judged by column.
    Cells spanning lines are not read."""
    first_header = _HTML_CREDENTIAL_HEADER.search(fragment.data, start, end)
    if first_header is None:
        return []
    start = max(start, fragment.data.rfind(b"\n", start, first_header.start()))
    found: list[Finding] = []
    columns: dict[int, str] = {}
    row: list[tuple[str, str, _Line]] = []
    for where in _segment_lines(fragment, start, end):
        if where is None or "</table" in where.text.lower():
            columns, row = {}, []
            continue
        lowered = where.text.lower()
        if "<tr" in lowered:
            row = []
        for cell in _HTML_CELL.finditer(where.text):
            text = html.unescape(_HTML_TAG.sub("", cell.group(2))).strip()
            row.append((cell.group(1).lower(), text, where))
        if "</tr" not in lowered or not row:
            continue
        if all(tag == "th" for tag, _text, _where in row):
            names = [text for _tag, text, _where in row]
            columns = {i: name for i, name in enumerate(names) if _CSV_COLUMN.fullmatch(name)}
        else:
            for index, name in columns.items():
                if index < len(row) and row[index][1]:
                    _tag, value, at = row[index]
                    origin = "a credential column of an HTML table"
                    found += _judged_cell(scan, at, name, value, origin, "html-column")
        row = []
    return found


#: A table line naming a credential column; a document without one is not read.
_ADOC_CREDENTIAL_CELL = re.compile(rb"(?im)^[ \t]*\|[^\n]*(?:pass|pwd|secret|token|key)")


def _adoc_cells(text: str) -> list[str]:
    """The cells a line of an AsciiDoc table adds (``|a |b |c``; a cell spec such as ``2+|``
    before a bar is dropped)."""
    return [cell.strip().strip("`+").strip() for cell in text.split("|")[1:]]


def _asciidoc_columns(
    scan: Callable[[Fragment], list[Finding]], fragment: Fragment, start: int, end: int
) -> list[Finding]:
    """Cells of credential-named columns of AsciiDoc tables (``|===`` blocks in a runbook).
    The table's first line names the columns when it holds every header cell; the cells
    after it, a row per line or a cell per line, are dealt into rows of that width."""
    if fragment.data.find(b"|===", start, end) < 0 or not _ADOC_CREDENTIAL_CELL.search(
        fragment.data, start, end
    ):
        return []
    found: list[Finding] = []
    inside = False
    width = 0
    columns: dict[int, str] = {}
    position = 0
    for where in _segment_lines(fragment, start, end):
        text = "" if where is None else where.text.strip()
        if where is None or text.startswith("|==="):
            inside = where is not None and not inside
            width, columns, position = 0, {}, 0
            continue
        if not inside or not text.startswith("|"):
            continue
        cells = _adoc_cells(text)
        if not width:
            width = len(cells)
            columns = {i: n for i, n in enumerate(cells) if _CSV_COLUMN.fullmatch(n)}
            continue
        for cell in cells:
            name = columns.get(position % width)
            if name is not None and cell:
                origin = "a credential column of an AsciiDoc table"
                found += _judged_cell(scan, where, name, cell, origin, "asciidoc-column")
            position += 1
    return found


#: ``INSERT INTO api_clients (name, client_secret) VALUES``: the columns name the values.
_SQL_INSERT = re.compile(
    rb"(?i)\binsert[ \t]+into[ \t]+[\w.`\"\[\]]+[ \t]*\(([^()]{1,2000})\)\s*values\s*"
)
#: One row of literals; strings may hold doubled quotes, and any character but a newline.
_SQL_ROW = re.compile(rb"\s*\(((?:'(?:[^'\n]|'')*'|[^'()\n])*)\)\s*(,|;)?")
_SQL_ITEM = re.compile(rb"\s*('(?:[^'\n]|'')*'|[^,]*)\s*(?:,|$)")


def _sql_columns(
    scan: Callable[[Fragment], list[Finding]], fragment: Fragment, start: int, end: int
) -> list[Finding]:
    """String values of credential-named columns in ``INSERT INTO t (cols) VALUES (...)``
    rows of SQL files (seed data, fixtures)."""
    data = fragment.data
    found: list[Finding] = []
    for insert in _SQL_INSERT.finditer(data, start, end):
        names = [
            n.strip().strip(b'`"[] \n').decode("utf-8", "replace")
            for n in insert.group(1).replace(b"\n ", b" ").split(b",")
        ]
        columns = {i: n for i, n in enumerate(names) if _CSV_COLUMN.fullmatch(n)}
        if not columns:
            continue
        at = insert.end()
        while (row := _SQL_ROW.match(data, at, end)) is not None:
            cells = [m for m in _SQL_ITEM.finditer(row.group(1)) if m.group(0)]
            for index, name in columns.items():
                if index >= len(cells) or not cells[index].group(1).startswith(b"'"):
                    continue
                literal = cells[index].group(1)
                value = literal[1:-1].replace(b"''", b"'").decode("utf-8", "replace")
                where = _line_at(fragment, row.start(1) + cells[index].start(1) + 1)
                if where is not None:
                    origin = "a credential column of an SQL insert"
                    found += _judged_cell(scan, where, name, value, origin, "sql-column")
            at = row.end()
            if row.group(2) != b",":
                break
    return found


_COLUMN_READERS: dict[
    str, Callable[[Callable[[Fragment], list[Finding]], Fragment, int, int], list[Finding]]
] = {
    "csv": _csv_columns,
    "markdown": _markdown_columns,
    "sql": _sql_columns,
    "html": _html_columns,
    "asciidoc": _asciidoc_columns,
}
