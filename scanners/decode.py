"""Values that hide behind structure: base64 under a Kubernetes Secret's ``data:``, and the
credential-named columns of CSV files (``id,email,password`` fixtures and seed data).

A Secret manifest stores every value base64-encoded, so ``password: V3E5eC4uLg==``
reads as noise to every rule. This module finds the ``data:`` entries of YAML
documents that declare ``kind: Secret``, decodes each value and scans
``<key>: <decoded value>`` with the same engine, as the file's own kind of text
(so a decoded PEM key, ``password: ...`` or a token is judged exactly like plain
text). A finding is reported at the base64 value's line with the manifest's key;
the base64 text is masked in reports like the secret itself (it *is* the secret).

Secrets in JSON (``kubectl get secret -o json``, whose sorted keys put ``data`` before
``kind``; one-line manifests; a ``List`` of Secrets) are decoded the same way: the
``data`` object must belong to the object that says ``"kind": "Secret"``.

Works on whole files and on diff streams alike (added lines there start with a
blank, and ``Fragment.locate`` says where each offset belongs), so a tree scan
and a history scan find the same Secrets. A diff hunk that changes a value of a
Secret without its ``kind:`` line (a later commit editing one entry) lacks the
context: for such hunks only, when the decoded value would be reported or a plain
rule flags the base64 text, the file is read as of that commit
(``Fragment.read_file``) and decoded whole, as a tree scan would.
"""

from __future__ import annotations

import base64
import binascii
import csv
import dataclasses
import itertools
import re
from collections.abc import Callable, Iterator

from secretsd.scanners.model import CommitInfo, Finding, Fragment

__all__ = [
    "column_findings",
    "has_k8s_secret",
    "k8s_context_findings",
    "k8s_secret_findings",
    "sealed_values",
]

# Unanchored so that re's literal-prefix scan finds "kind:" fast (a 1 MB diff chunk in
# about 0.1 ms instead of 10 ms); what precedes it on its line is checked in _kind_lines().
_KIND_SECRET = re.compile(rb"""kind:[ \t]*["']?Secret["']?[ \t]*\r?$""", re.MULTILINE)
_DATA = re.compile(rb"^([ \t]*)(?:data|binaryData):[ \t]*\r?$")
# Bitnami SealedSecrets: ciphertexts only the cluster's controller can decrypt.
_KIND_SEALED = re.compile(rb"""kind:[ \t]*["']?SealedSecret["']?[ \t]*\r?$""", re.MULTILINE)
_ENCRYPTED_DATA = re.compile(rb"^([ \t]*)encryptedData:[ \t]*\r?$")
_ENTRY = re.compile(
    rb"""^([ \t]*)["']?([\w.-]{1,253})["']?:[ \t]*["']?([A-Za-z0-9+/]{8,}={0,2})["']?[ \t]*\r?$"""
)
# A new YAML document, a new file in a diff, or a new hunk: the Secret's scope ends.
_MARKS = (b"\n---", b"\n ---", b"\ndiff --git", b"\n@@", b"\n...", b"\n ...")
_PRINTABLE = re.compile(r"[\x20-\x7e\t\r\n\u00a0-\uffff]*")


def _kind_lines(data: bytes, kind: re.Pattern[bytes] = _KIND_SECRET) -> Iterator[re.Match[bytes]]:
    """``kind: Secret`` lines: only blanks (or a diff's leading blank) before ``kind:``."""
    for match in kind.finditer(data):
        line_start = data.rfind(b"\n", 0, match.start()) + 1
        if not data[line_start : match.start()].strip(b" \t+"):
            yield match


def has_k8s_secret(data: bytes) -> bool:
    """Cheap test first: most files have no ``kind: Secret`` line at all."""
    if b"Secret" not in data:
        return False
    return next(_kind_lines(data), None) is not None or _JSON_KIND.search(data) is not None


def _scope(data: bytes, start: int, end: int) -> tuple[int, int]:
    """The document, diff file or hunk around ``data[start:end]``."""
    first = max(data.rfind(mark, 0, start) for mark in _MARKS) + 1
    ends = [data.find(mark, end) for mark in _MARKS]
    return first, min((e for e in ends if e >= 0), default=len(data))


# -- JSON manifests ------------------------------------------------------------------
_JSON_KIND = re.compile(rb'"kind"[ \t]*:[ \t]*"Secret"')
_JSON_DATA = re.compile(rb'"(?:data|binaryData)"[ \t]*:[ \t]*\{')
_JSON_ENTRY = re.compile(rb'"([\w.-]{1,253})"[ \t]*:[ \t]*"([A-Za-z0-9+/]{8,}={0,2})"')
# Strings (skipped whole, so a brace inside one does not count) and braces.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\\n]|\\.)*"|[{}]')


def _json_objects(data: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """(open, close) offsets of the JSON objects in ``data[start:end]``; close is ``end`` for an
    object the range cuts off."""
    spans: list[list[int]] = []
    stack: list[int] = []
    for token in _JSON_TOKEN.finditer(data, start, end):
        char = data[token.start()]
        if char == 0x7B:
            stack.append(len(spans))
            spans.append([token.start(), end])
        elif char == 0x7D and stack:
            spans[stack.pop()][1] = token.start()
    return [(a, b) for a, b in spans]


def _innermost(objects: list[tuple[int, int]], at: int) -> int:
    """Index of the innermost object around offset ``at`` (-1: none)."""
    best = -1
    for index, (open_, close) in enumerate(objects):
        if open_ < at < close and (best < 0 or open_ > objects[best][0]):
            best = index
    return best


def _json_entries(data: bytes) -> Iterator[tuple[int, str, str]]:
    """(offset of the value, key, base64 value) of the ``data`` entries of JSON Secrets."""
    done = -1
    for kind in _JSON_KIND.finditer(data):
        if kind.start() < done:
            continue
        start, end = _scope(data, kind.start(), kind.end())
        done = end
        objects = _json_objects(data, start, end)
        secrets = {
            _innermost(objects, kind.start()) for kind in _JSON_KIND.finditer(data, start, end)
        }
        secrets.discard(-1)
        for block in _JSON_DATA.finditer(data, start, end):
            if _innermost(objects, block.start()) not in secrets:
                continue
            inner = _innermost(objects, block.end())
            if inner < 0:
                continue
            open_, close = objects[inner]
            for entry in _JSON_ENTRY.finditer(data, open_, close):
                yield entry.start(2), entry.group(1).decode(), entry.group(2).decode()


def _documents(data: bytes, kind: re.Pattern[bytes] = _KIND_SECRET) -> Iterator[tuple[int, int]]:
    """(start, end) byte ranges of the documents that declare ``kind: Secret``."""
    seen_end = -1
    for match in _kind_lines(data, kind):
        if match.start() < seen_end:
            continue
        start, end = _scope(data, match.start(), match.end())
        seen_end = end
        yield start, end


def _entries(
    data: bytes, start: int, end: int, diff: bool, block: re.Pattern[bytes] = _DATA
) -> Iterator[tuple[int, str, str]]:
    """(offset of the value, key, base64 value) of each ``data:`` entry in ``data[start:end]``."""
    offset = start
    block_indent = -1
    for raw in data[start:end].split(b"\n"):
        line = raw[1:] if diff and raw[:1] == b" " else raw
        here = offset + (len(raw) - len(line))
        offset += len(raw) + 1
        match = block.match(line)
        if match:
            block_indent = len(match.group(1))
            continue
        if block_indent < 0:
            continue
        entry = _ENTRY.match(line)
        if entry is None or len(entry.group(1)) <= block_indent:
            if line.strip() and len(line) - len(line.lstrip()) <= block_indent:
                block_indent = -1  # the data: block ended
            continue
        yield here + entry.start(3), entry.group(2).decode(), entry.group(3).decode()


def _decode(value: str) -> str | None:
    """The decoded text, or None for binary data or text that is no base64."""
    if len(value) % 4:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not text.strip() or _PRINTABLE.fullmatch(text) is None:
        return None
    return text


def k8s_secret_findings(
    scan: Callable[[Fragment], list[Finding]], fragment: Fragment
) -> tuple[list[Finding], set[tuple[str, int, str]]]:
    """Findings in the decoded ``data:`` values of the Secrets in ``fragment``, and the
    ``(path, line, base64 text)`` of every value decoded: the decoded text is what gets judged,
    so findings of the plain rules on that base64 text are to be dropped."""
    data = fragment.data
    diff = fragment.locate is not None
    found: list[Finding] = []
    decoded: set[tuple[str, int, str]] = set()
    yaml = (e for start, end in _documents(data) for e in _entries(data, start, end, diff))
    for at, key, value in itertools.chain(yaml, _json_entries(data)):
        text = _decode(value)
        if text is None:
            continue
        path, line, commit = fragment.path, 0, fragment.commit
        if fragment.locate is not None:
            loc = fragment.locate(at)
            if loc is None:
                continue  # not an added line
            path, line, commit = loc.path, loc.line, loc.commit
        else:
            line = fragment.first_line + data.count(b"\n", 0, at)
        decoded.add((path, line, value))
        line_start = data.rfind(b"\n", 0, at) + 1
        line_end = data.find(b"\n", at)
        raw_line = data[line_start : line_end if line_end >= 0 else len(data)]
        line_text = raw_line.decode("utf-8", "replace")
        if diff:
            line_text = line_text[1:]
        column = len(line_text) - len(line_text.lstrip()) + line_text.lstrip().find(value) + 1
        found += _judged_as_config(
            scan,
            Fragment(path, f"{key}: {text}\n".encode(), commit=commit),
            _Placed(line, column, line_text, "base64 in a Kubernetes Secret", "k8s-secret-data"),
            hides=(value,),
        )
    return found, decoded


@dataclasses.dataclass(frozen=True)
class _Placed:
    """Where a decoded value really stands, and how its findings say where it came from."""

    line: int
    column: int
    line_text: str
    origin: str
    tag: str


def _judged_as_config(
    scan: Callable[[Fragment], list[Finding]],
    rewritten: Fragment,
    placed: _Placed,
    hides: tuple[str, ...] = (),
) -> list[Finding]:
    """Findings of the rules on a value rewritten as one ``key: value`` config line, moved
    back to the line and column the value stands at in its file (the rewritten line is what
    the rules judge; the original line is what a user must edit)."""
    return [
        dataclasses.replace(
            hit,
            path=rewritten.path,
            line=placed.line,
            column=max(1, placed.column),
            line_text=placed.line_text,
            commit=rewritten.commit,
            description=f"{hit.description} ({placed.origin})",
            tags=(*hit.tags, placed.tag),
            line_secrets=(*hit.line_secrets, *hides),
        )
        for hit in scan(rewritten)
    ]


def sealed_values(fragment: Fragment) -> set[tuple[str, int, str]]:
    """``(path, line, text)`` of the ciphertexts under a SealedSecret's ``encryptedData:``: only
    the cluster's controller can decrypt them, so a plain rule's finding on one is dropped."""
    data = fragment.data
    found: set[tuple[str, int, str]] = set()
    if b"SealedSecret" not in data:
        return found
    diff = fragment.locate is not None
    for start, end in _documents(data, _KIND_SEALED):
        for at, _key, value in _entries(data, start, end, diff, _ENCRYPTED_DATA):
            if fragment.locate is not None:
                loc = fragment.locate(at)
                if loc is not None:
                    found.add((loc.path, loc.line, value))
            else:
                found.add((fragment.path, fragment.first_line + data.count(b"\n", 0, at), value))
    return found


# A diff header line naming a YAML or JSON file, and an added ``key: <base64>`` line.
_MANIFEST_FILE = re.compile(rb"\ndiff --git [^\n]*\.(?:ya?ml|json|YA?ML|JSON)\"?\n")
_ADDED_ENTRY = re.compile(
    rb"""^ [ \t]+["']?([\w.-]{1,253})["']?:[ \t]*["']?([A-Za-z0-9+/]{8,}={0,2})["']?,?[ \t]*\r?$""",
    re.MULTILINE,
)


def k8s_context_findings(
    scan: Callable[[Fragment], list[Finding]],
    fragment: Fragment,
    decoded: set[tuple[str, int, str]],
    flagged: set[tuple[str, int]],
) -> list[Finding]:
    """Diff streams only: ``data`` entries added by a hunk that does not show the Secret's
    ``kind:`` (a later commit editing one value). An added ``key: <base64>`` line of a YAML or
    JSON file whose decoded value would be reported, or whose base64 text a plain rule
    flagged (``flagged``), sends for the file as of its commit, decoded whole as a tree scan
    does; its findings at that line are kept and ``decoded`` learns the base64 texts judged
    (and the ciphertexts of SealedSecrets, whose findings are dropped)."""
    read = fragment.read_file
    if fragment.locate is None or read is None:
        return []
    data = fragment.data
    found: list[Finding] = []
    files: dict[tuple[str, str], tuple[list[Finding], set[tuple[str, int, str]]]] = {}
    for match in _MANIFEST_FILE.finditer(data):
        end = data.find(_DIFF_HEADER, match.end())
        end = end if end >= 0 else len(data)
        for pattern in (_ADDED_ENTRY, _JSON_ENTRY):
            for entry in pattern.finditer(data, match.end() - 1, end):
                value = entry.group(2).decode()
                loc = fragment.locate(entry.start(2))
                if loc is None or (loc.path, loc.line, value) in decoded:
                    continue
                if (loc.path, loc.line) not in flagged:
                    text = _decode(value)
                    if text is None:
                        continue
                    line = f"{entry.group(1).decode()}: {text}\n".encode()
                    if not scan(Fragment(loc.path, line, commit=loc.commit)):
                        continue
                sha = loc.commit.sha if loc.commit is not None else ""
                whole = files.get((sha, loc.path))
                if whole is None:
                    blob = read(loc.path, loc.commit)
                    whole = ([], set())
                    if blob is not None:
                        file = Fragment(loc.path, blob)
                        hits, judged = k8s_secret_findings(scan, file)
                        whole = (hits, judged | sealed_values(file))
                    files[(sha, loc.path)] = whole
                if (loc.path, loc.line, value) not in whole[1]:
                    continue  # not a Secret's data entry in the file as committed
                decoded.add((loc.path, loc.line, value))
                found += [
                    dataclasses.replace(hit, commit=loc.commit)
                    for hit in whole[0]
                    if hit.line == loc.line and value in hit.line_secrets
                ]
    return found


# -- credential columns: CSV files, Markdown tables, SQL seed rows -----------------------

_DIFF_HEADER = b"\ndiff --git "
#: Header names of a column that holds credentials (test fixtures, seed data, exports).
_CSV_COLUMN = re.compile(
    r"(?i)(?:[\w ]*[_ -])?(?:password|passwd|pwd|pass|passphrase|secret|token|api[_ -]?key"
    r"|apikey|access[_ -]?key|client[_ -]?secret|private[_ -]?key)"
)
#: File suffixes whose columns are read, and the reader of each.
_COLUMN_KINDS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".sql": "sql",
}
# A diff header line naming such a file (its second path: the new file; quoted when git
# quotes the path; paths may hold blanks). One pass for the three kinds with re's
# literal-prefix scan (23 ms per 48 MB of history), not one pass per kind.
_COLUMN_FILE = re.compile(
    rb"\ndiff --git [^\n]*(\.(?:csv|tsv|CSV|TSV|md|markdown|mdx|MD|sql|SQL))\"?\n"
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
    for match in _COLUMN_FILE.finditer(data):
        end = data.find(_DIFF_HEADER, match.end())
        kind = _COLUMN_KINDS[match.group(1).decode().lower()]
        yield kind, match.end() - 1, end if end >= 0 else len(data)


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
    key = re.sub(r"\W+", "_", column)
    return _judged_as_config(
        scan,
        Fragment(where.path, f"{key}: {value}\n".encode(), commit=where.commit),
        _Placed(where.number, where.text.find(value) + 1, where.text, origin, tag),
    )


def column_findings(scan: Callable[[Fragment], list[Finding]], fragment: Fragment) -> list[Finding]:
    """Values of credential-named columns (``password``, ``api_key``...) of CSV files, Markdown
    tables and SQL ``INSERT`` rows, each judged as ``<column>: <value>``."""
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


def _md_cells(text: str) -> list[str] | None:
    """The cells of a Markdown table row, or None when the line is no table row."""
    stripped = text.strip()
    if not stripped.startswith("|") or stripped.count("|") < 3:
        return None
    return [cell.strip().strip("`").strip() for cell in stripped.strip("|").split("|")]


def _markdown_columns(
    scan: Callable[[Fragment], list[Finding]], fragment: Fragment, start: int, end: int
) -> list[Finding]:
    """Cells of credential-named columns of Markdown tables (``| system | user | password |``
    in a wiki page or runbook). The header row and its ``|---|`` rule must come just before
    the rows (added in the same hunk, for a diff)."""
    if fragment.data.find(b"|", start, end) < 0:
        return []
    found: list[Finding] = []
    columns: dict[int, str] = {}
    header: list[str] | None = None
    for where in _segment_lines(fragment, start, end):
        cells = None if where is None else _md_cells(where.text)
        if where is not None and header is not None and _MD_RULE_ROW.fullmatch(where.text):
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
] = {"csv": _csv_columns, "markdown": _markdown_columns, "sql": _sql_columns}
