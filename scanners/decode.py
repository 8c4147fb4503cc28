"""Values that hide behind base64 under a Kubernetes Secret's ``data:`` (the credential
columns of CSV, Markdown and SQL files are read by ``columns.py``).

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
import dataclasses
import itertools
import re
from collections.abc import Callable, Iterator

from secretsd.scanners.model import DIFF_HEADER, Finding, Fragment
from secretsd.scanners.placement import Placed, judged_as_config

__all__ = [
    "decoded_text",
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
#: The end of a ``key: <base64>`` line: blanks, and a YAML comment may follow the value.
_VALUE_END = rb"""[ \t]*(?:[ \t]#[^\n]*)?\r?$"""
_ENTRY = re.compile(
    rb"""^([ \t]*)["']?([\w.-]{1,253})["']?:[ \t]*["']?([A-Za-z0-9+/]{8,}={0,2})["']?"""
    + _VALUE_END
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


def decoded_text(value: str) -> str | None:
    """The decoded text of base64 ``value``, or None for binary data or text that is no base64."""
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
        text = decoded_text(value)
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
        found += judged_as_config(
            scan,
            Fragment(path, f"{key}: {text}\n".encode(), commit=commit),
            Placed(line, column, line_text, "base64 in a Kubernetes Secret", "k8s-secret-data"),
            hides=(value,),
        )
    return found, decoded


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
    rb"""^ [ \t]+["']?([\w.-]{1,253})["']?:[ \t]*["']?([A-Za-z0-9+/]{8,}={0,2})["']?,?"""
    + _VALUE_END,
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
        end = data.find(DIFF_HEADER, match.end())
        end = end if end >= 0 else len(data)
        for pattern in (_ADDED_ENTRY, _JSON_ENTRY):
            for entry in pattern.finditer(data, match.end() - 1, end):
                value = entry.group(2).decode()
                loc = fragment.locate(entry.start(2))
                if loc is None or (loc.path, loc.line, value) in decoded:
                    continue
                if (loc.path, loc.line) not in flagged:
                    text = decoded_text(value)
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
