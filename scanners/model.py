"""The values that flow through the scanner: Source -> Fragment -> Finding.

A source (working tree, staged diff, commit range, history) only has to yield
``Fragment`` objects; the engine turns each into ``Finding`` objects. Keeping
both as plain frozen dataclasses is what makes the sources interchangeable
(the gitleaks shape), and the masked ``repr`` keeps a stray log line or a
traceback from printing a secret.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "DIFF_HEADER",
    "CommitInfo",
    "Finding",
    "Fragment",
    "Location",
    "Source",
    "fingerprint",
    "redact",
    "unquote_git_path",
]


#: Where a file's part of a diff stream begins (what readers of one file in a diff cut at).
DIFF_HEADER = b"\ndiff --git "


def diff_file_parts(
    data: bytes, header: re.Pattern[bytes]
) -> Iterator[tuple[re.Match[bytes], int]]:
    """Each match of ``header`` (a pattern for a line of a file's diff header that picks the
    files a reader wants) with the end of that file's part of the stream: the next
    ``diff --git`` line, or the end. One C-speed pass over the stream for the picked files,
    not a walk over every file header in Python."""
    for match in header.finditer(data):
        end = data.find(DIFF_HEADER, match.end())
        yield match, end if end >= 0 else len(data)


def unquote_git_path(raw: bytes) -> str:
    """A path as git prints it in a diff, with git's C-style quoting of unusual paths undone."""
    if raw.startswith(b'"') and raw.endswith(b'"'):
        body = raw[1:-1]
        try:
            return body.decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
        except (UnicodeDecodeError, UnicodeEncodeError):
            return body.decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """Who made the commit a fragment comes from (history and range scans)."""

    sha: str
    author: str
    email: str
    date: str


@dataclass(frozen=True, slots=True)
class Location:
    """Where an offset of a multi-file fragment (a diff) really is."""

    path: str
    line: int
    commit: CommitInfo | None = None


@dataclass(frozen=True, slots=True)
class Fragment:
    """A piece of text to scan and where it comes from.

    ``data`` is raw bytes: the engine matches bytes, so a file that is not
    valid UTF-8 still gets scanned instead of crashing a decoder. A whole file
    is one fragment (line ``i`` is line ``first_line + i``). A diff stream is
    scanned as one large fragment whose ``locate`` maps a byte offset to the
    file, line and commit it belongs to, or to None for text that is not an
    added line (headers, removed lines): scanning the raw stream in one pass
    is what keeps history scans fast.
    """

    path: str
    data: bytes
    first_line: int = 1
    commit: CommitInfo | None = None
    locate: Callable[[int], Location | None] | None = None
    #: Diff streams only: a file's whole text as of a commit (None: the index), for decoders
    #: whose context can lie outside the hunks (a Secret's ``kind:`` above a changed value).
    read_file: Callable[[str, CommitInfo | None], bytes | None] | None = None

    def __repr__(self) -> str:
        return f"Fragment(path={self.path!r}, bytes={len(self.data)})"


class Source(Protocol):
    """Anything that yields fragments: one method, so sources are interchangeable."""

    def fragments(self) -> Iterator[Fragment]:
        """Yield every fragment to scan, lazily (history scans stream)."""
        ...


def fingerprint(rule: str, path: str, secret: str) -> str:
    """A stable id for one secret at one location, independent of its line.

    Independent of the line number so a baseline survives edits above the
    secret, and of the commit so a secret carried by many commits is one
    finding. The secret enters only through a hash.
    """
    digest = hashlib.sha256(f"{rule}\0{path}\0{secret}".encode("utf-8", "replace"))
    return digest.hexdigest()[:32]


def redact(secret: str, public_prefix: str = "") -> str:
    """A fixed mask, after at most the format's public prefix (``AKIA``, ``ghp_``, ``sk_live_``).

    No character of the random part is ever shown, and the mask has a fixed
    length, so it does not reveal how long a password is either.
    """
    if public_prefix and secret.startswith(public_prefix) and len(secret) > len(public_prefix):
        return public_prefix + "*****"
    return "*****"


@dataclass(frozen=True, slots=True)
class Finding:
    """One secret at one location; ``secret`` is kept out of ``repr``."""

    rule: str
    description: str
    path: str
    line: int
    column: int
    secret: str = field(repr=False)
    line_text: str = field(repr=False)
    severity: str = "high"
    commit: CommitInfo | None = None
    test_path: bool = False
    entropy: float = 0.0
    tags: tuple[str, ...] = ()
    confidence: str = "medium"
    public_prefix: str = ""
    line_secrets: tuple[str, ...] = field(default=(), repr=False)  # others on the same line

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.path, self.secret)

    @property
    def redacted_secret(self) -> str:
        """The secret as reports show it by default (public prefix at most)."""
        return redact(self.secret, self.public_prefix)

    def redacted_line(self, show_secret: bool = False) -> str:
        """The matched line with the secret masked (unless asked), trimmed for display."""
        text = self.line_text.strip()
        if not show_secret and self.secret:
            text = text.replace(self.secret, self.redacted_secret)
            for other in self.line_secrets:
                text = text.replace(other, "*****")
            # Multi-line secrets (private keys) only show their first line.
            first = self.secret.splitlines()[0] if "\n" in self.secret else ""
            if first and first in text:
                text = text.replace(first, redact(first))
        if len(text) > 160:
            text = text[:157] + "..."
        return text
