"""Lines written with HTML/XML character references, scanned as the reader sees them.

Rendered docs, blog exports, JSX comments and XML attributes carry code with its quotes and
angle brackets escaped: ``&quot;PASSWORD&quot;: &quot;...&quot;`` sets a password for anyone
reading the page, and ``BY '&lt;密码&gt;'`` is a placeholder. The rules read quotes and
brackets, so such a line is scanned once more with its references replaced, and what that scan
finds stands for the line. One line at a time, in tree and history scans alike, so both find
the same secrets; a line keeps its number because no reference stands for a line break.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from secretsd.scanners.model import Finding, Fragment

#: Only lines that name a credential are worth a second scan.
_NAMES_CREDENTIAL = re.compile(
    rb"(?i)pass|secret|token|key|auth|pwd|credential|senha|contrase|passwort|mot de passe|@"
)
_REFERENCES = {
    b"&quot;": b'"',
    b"&apos;": b"'",
    b"&lt;": b"<",
    b"&gt;": b">",
    b"&amp;": b"&",
    b"&#34;": b'"',
    b"&#39;": b"'",
    b"&#x22;": b'"',
    b"&#x27;": b"'",
    b"&#60;": b"<",
    b"&#62;": b">",
    b"&#x3c;": b"<",
    b"&#x3e;": b">",
}
_ANY_REFERENCE = re.compile(b"|".join(map(re.escape, _REFERENCES)), re.IGNORECASE)
#: The references that hide a quote or an angle bracket (``&amp;`` alone hides nothing a rule
#: reads: ``?a=1&amp;key=...`` is scanned as it stands).
_HIDING = re.compile(
    b"|".join(re.escape(ref) for ref in _REFERENCES if ref != b"&amp;"), re.IGNORECASE
)


def unescape(line: bytes) -> bytes:
    """``line`` with its quote, bracket and ampersand references replaced."""
    return _ANY_REFERENCE.sub(lambda m: _REFERENCES[m.group().lower()], line)


def escaped_line_findings(
    scan: Callable[[Fragment], list[Finding]], fragment: Fragment
) -> tuple[list[Finding], set[tuple[str, int]]]:
    """Findings on the fragment's escaped lines, read unescaped, and the ``(path, line)`` of
    every line so read: the plain scan's findings there are replaced by these."""
    data = fragment.data
    found: list[Finding] = []
    lines: set[tuple[str, int]] = set()
    if b"&" not in data:
        return found, lines
    last_start = -1
    counted, newlines = 0, 0  # newlines before ``counted``: line numbers without rescanning
    for ref in _HIDING.finditer(data):
        start = data.rfind(b"\n", 0, ref.start()) + 1
        if start == last_start:
            continue  # one scan per line, however many references it holds
        last_start = start
        end = data.find(b"\n", ref.end())
        raw = data[start : end if end >= 0 else len(data)]
        if not _NAMES_CREDENTIAL.search(raw):
            continue
        path, line, commit = fragment.path, 0, fragment.commit
        if fragment.locate is not None:
            where = fragment.locate(ref.start())
            if where is None:
                continue  # a removed line or a header: not part of what the commit added
            path, line, commit = where.path, where.line, where.commit
            raw = raw[1:]  # the diff's '+'
        else:
            newlines += data.count(b"\n", counted, start)
            counted = start
            line = fragment.first_line + newlines
        lines.add((path, line))
        found += scan(Fragment(path, unescape(raw) + b"\n", first_line=line, commit=commit))
    return found, lines
