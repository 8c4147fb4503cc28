"""``--managed``: flag any value that is stored in secretsd, whatever its format.

No value leaves either side in the clear. The scanner hashes every candidate
string (string literals and assignment values of at least ``MIN_LENGTH``
characters) with SHA-256 and sends only the first five hex characters of each
hash (k-anonymity: each prefix stands for ~1/1,000,000 of all strings). The
server answers with the full hashes of the stored values that start with one
of those prefixes *and* that the caller may read; the comparison of full
hashes happens here. Contract::

    POST {SECRETSD_ADDR}/v1/values/hash-lookup
    Authorization: Bearer {token}
    {"prefixes": ["3fa9c", ...]}
    -> {"algorithm": "sha256", "hashes": ["3fa9c...", ...]}
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secretsd.scanners.model import Finding, Fragment

from secretsd.errors import (
    ConfigError,
    Forbidden,
    SecretsdError,
    Unauthenticated,
    Unavailable,
    error_class_for_code,
)

__all__ = [
    "MIN_LENGTH",
    "PREFIX_LENGTH",
    "Candidate",
    "HashLookupClient",
    "candidates",
    "client_from_env",
    "credentials_from_env",
    "error_for",
    "match_candidates",
]

MIN_LENGTH = 8
PREFIX_LENGTH = 5
BATCH = 5000
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


class HashLookupClient:
    """The HTTP side of the k-anonymity lookup (httpx, imported lazily)."""

    def __init__(self, address: str, token: str, *, transport: Any = None) -> None:
        self.address = address.rstrip("/")
        self._token = token
        self._transport = transport

    def __repr__(self) -> str:
        return f"HashLookupClient(address={self.address!r}, token=***)"

    def lookup(self, prefixes: Iterable[str]) -> set[str]:
        """Full hashes of readable stored values whose hash starts with one of ``prefixes``."""
        import httpx

        wanted = sorted(set(prefixes))
        found: set[str] = set()
        url = f"{self.address}/v1/values/hash-lookup"
        headers = {"Authorization": f"Bearer {self._token}"}
        with httpx.Client(timeout=30, transport=self._transport) as http:
            for index in range(0, len(wanted), BATCH):
                body = {"prefixes": wanted[index : index + BATCH]}
                try:
                    response = http.post(url, json=body, headers=headers)
                except httpx.HTTPError as error:
                    raise Unavailable(
                        f"cannot reach secretsd at {self.address} ({type(error).__name__}); "
                        "check SECRETSD_ADDR and that the server is running"
                    ) from None
                found.update(self._hashes(response))
        return found

    def _hashes(self, response: Any) -> list[str]:
        if response.status_code != 200:
            raise error_for(response, self.address)
        try:
            document = response.json()
        except ValueError:
            raise Unavailable(f"secretsd at {self.address} answered with invalid JSON") from None
        if document.get("algorithm") != "sha256" or not isinstance(document.get("hashes"), list):
            raise Unavailable(
                f"secretsd at {self.address} answered the hash lookup in an unknown format"
            )
        return [h for h in document["hashes"] if isinstance(h, str)]


def error_for(response: Any, address: str) -> SecretsdError:
    """Map a secretsd error answer back to our error classes."""
    message = ""
    code = ""
    try:
        error = response.json().get("error", {})
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        pass
    if response.status_code == 401:
        return Unauthenticated(message or "secretsd refused the token; check SECRETSD_TOKEN")
    if response.status_code == 403:
        return Forbidden(message or "this token may not look up value hashes")
    if response.status_code == 404:
        return Unavailable(
            f"secretsd at {address} has no /v1/values/hash-lookup route; upgrade the server"
        )
    cls = error_class_for_code(code) if code else Unavailable
    return cls(message or f"secretsd at {address} answered HTTP {response.status_code}")


def credentials_from_env(
    environ: Mapping[str, str] | None = None, purpose: str = "--managed"
) -> tuple[str, str]:
    """SECRETSD_ADDR plus SECRETSD_TOKEN or SECRETSD_TOKEN_FILE, with a clear error when missing."""
    env = os.environ if environ is None else environ
    address = env.get("SECRETSD_ADDR", "").strip()
    token = env.get("SECRETSD_TOKEN", "").strip()
    token_file = env.get("SECRETSD_TOKEN_FILE", "").strip()
    if not token and token_file:
        try:
            token = Path(token_file).read_text("utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"cannot read SECRETSD_TOKEN_FILE {token_file!r} ({error.strerror})"
            ) from None
    if not address or not token:
        raise ConfigError(
            f"{purpose} needs secretsd credentials: set SECRETSD_ADDR "
            "(e.g. http://127.0.0.1:8200) and SECRETSD_TOKEN or SECRETSD_TOKEN_FILE"
        )
    if not address.startswith(("http://", "https://")):
        raise ConfigError(f"SECRETSD_ADDR {address!r} must start with http:// or https://")
    return address, token


def client_from_env(environ: Mapping[str, str] | None = None) -> HashLookupClient:
    """The lookup client for the credentials in the environment."""
    return HashLookupClient(*credentials_from_env(environ))


def match_candidates(found: Iterable[Candidate], client: HashLookupClient) -> list[Finding]:
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
