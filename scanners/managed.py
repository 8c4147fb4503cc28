"""``--managed``: flag any value that is stored in secretsd, whatever its format.

No value leaves either side in the clear. The scanner hashes every candidate
string (string literals and assignment values of at least ``MIN_LENGTH``
characters) with SHA-256 and sends only the first five hex characters of each
hash (k-anonymity: each prefix stands for ~1/1,000,000 of all strings). The
server answers with the full hashes of the stored values that start with one
of those prefixes *and* that the caller may read; the comparison of full
hashes happens here. The call is the SDK's ``Client.lookup_value_hashes``
(``POST /v1/values/hash-lookup``), so credentials, TLS, retries and errors are
the SDK's, configured like every client (``SECRETSD_ADDR``, ``SECRETSD_TOKEN``...
or the ``secretsd login`` file).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from secretsd.scanners.model import Finding, Fragment

from secretsd.errors import ConfigError

if TYPE_CHECKING:
    from secretsd.client.config import ClientSettings

__all__ = [
    "MIN_LENGTH",
    "PREFIX_LENGTH",
    "Candidate",
    "HashLookup",
    "candidates",
    "client_from_env",
    "match_candidates",
    "settings_from_env",
]

MIN_LENGTH = 8
PREFIX_LENGTH = 5
RULE_ID = "managed-secret"
_CANDIDATE = re.compile(
    rb""""([^"\\\r\n]{8,256})"|'([^'\\\r\n]{8,256})'|`([^`\\\r\n]{8,256})`|"""
    rb"""[=:][ \t]*([^\s"'`#;,{}()\[\]<>]{8,256})[ \t]*(?=\r?\n|$)""",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A string that could be a stored value, and where it is."""

    digest: str
    path: str
    line: int
    column: int
    value: str
    line_text: str
    commit: Any = None

    def __repr__(self) -> str:
        return f"Candidate(path={self.path!r}, line={self.line}, digest={self.digest[:8]}...)"


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def candidates(fragment: Fragment) -> Iterator[Candidate]:
    """Every literal or assignment value of a fragment worth checking."""
    data = fragment.data
    line_index, offset = 0, 0
    for match in _CANDIDATE.finditer(data):
        group = next(i for i in range(1, 5) if match.group(i) is not None)
        start, end = match.span(group)
        raw = data[start:end]
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if len(value.strip()) < MIN_LENGTH:
            continue
        line_start = data.rfind(b"\n", 0, start) + 1
        line_end = data.find(b"\n", start)
        line_text = data[line_start : line_end if line_end >= 0 else len(data)]
        if fragment.locate is not None:
            location = fragment.locate(start)
            if location is None:
                continue
            path, line, commit = location.path, location.line, location.commit
        else:
            line_index += data.count(b"\n", offset, start)
            offset = start
            path, line, commit = fragment.path, fragment.first_line + line_index, fragment.commit
        yield Candidate(
            sha256_hex(value),
            path,
            line,
            start - line_start + 1,
            value,
            line_text.decode("utf-8", "replace"),
            commit,
        )


class HashLookup:
    """The k-anonymity lookup, through the SDK: its settings loader (login file,
    AppRole, Kubernetes, ``SECRETSD_CACERT``), its retries and its errors."""

    def __init__(self, settings: ClientSettings, *, transport: Any = None) -> None:
        self.settings = settings
        self._transport = transport

    def __repr__(self) -> str:
        return (
            f"HashLookup(addr={self.settings.addr!r}, "
            f"credentials={self.settings.credential_kind!r}, token=<hidden>)"
        )

    def lookup(self, prefixes: Iterable[str]) -> set[str]:
        """Full hashes of readable stored values whose hash starts with one of ``prefixes``."""
        from secretsd.client import Client, Retry

        with Client(
            settings=self.settings,
            transport=self._transport,
            auto_renew=False,
            retry=Retry(attempts=4),
        ) as client:
            return client.lookup_value_hashes(prefixes)


def settings_from_env(
    environ: Mapping[str, str] | None = None, purpose: str = "--managed"
) -> ClientSettings:
    """The SDK's client settings, refusing up front (before any scanning) when there are
    no credentials at all."""
    from secretsd.client.config import NO_CREDENTIALS_HINT, load_client_settings

    settings = load_client_settings(env=environ)
    if settings.credential_kind == "none":
        raise ConfigError(f"{purpose} needs secretsd credentials: {NO_CREDENTIALS_HINT}")
    return settings


def client_from_env(environ: Mapping[str, str] | None = None) -> HashLookup:
    """The lookup for the client settings in the environment (or the login file)."""
    return HashLookup(settings_from_env(environ))


def match_candidates(found: Iterable[Candidate], client: HashLookup) -> list[Finding]:
    """Ask the server about the candidates' hash prefixes and keep the full-hash matches."""
    pool = list(found)
    if not pool:
        return []
    stored = client.lookup(c.digest[:PREFIX_LENGTH] for c in pool)
    findings: list[Finding] = []
    seen: set[tuple[str, int, str]] = set()
    for candidate in pool:
        key = (candidate.path, candidate.line, candidate.digest)
        if candidate.digest not in stored or key in seen:
            continue
        seen.add(key)
        findings.append(
            Finding(
                rule=RULE_ID,
                description="Value stored in secretsd",
                path=candidate.path,
                line=candidate.line,
                column=candidate.column,
                secret=candidate.value,
                line_text=candidate.line_text,
                commit=candidate.commit,
                severity="critical",
                tags=("managed",),
            )
        )
    return findings
