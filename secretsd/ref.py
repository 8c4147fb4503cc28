"""The one parser for secret references and paths.

Syntax (DESIGN.md)::

    secretsd://<path>[?version=<n>][#<key>]

A generic URL parser would read ``apps`` in ``secretsd://apps/web/db`` as a
host name and lower-case it, so this module parses the syntax itself. Every
component of secretsd (service, SDK, CLI, agent, importers, scanner) goes
through here, so a malformed reference gets the same message everywhere.

Error messages never echo input that does not start with the scheme: people
paste values where references belong, and a value must never reach a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from secretsd.errors import InvalidPath, InvalidReference
from secretsd.limits import MAX_VERSION

__all__ = [
    "KEY_MAX_LENGTH",
    "PATH_MAX_LENGTH",
    "SCHEME",
    "Reference",
    "is_reference",
    "is_valid_path",
    "near_miss_reference",
    "parse_reference",
    "secret_path",
    "validate_key",
    "validate_path",
]

SCHEME = "secretsd://"
PATH_MAX_LENGTH = 512
KEY_MAX_LENGTH = 253

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_HINT_SEGMENT = "segments are letters, digits, '.', '_' or '-', separated by single '/'"
_HINT_KEY = "keys are letters, digits, '.', '_' or '-' (the Kubernetes Secret key charset)"
_SYNTAX = "secretsd://<path>[?version=<n>][#<key>], e.g. secretsd://apps/web/db#password"
# A scheme someone meant as ours: "secretsd:" in any case or spacing, or a near
# spelling ("secret", "secrets", "secretd") followed by "://", ":/" or "//".
_OUR_SCHEME_LOOSELY = re.compile(r"\s*secretsd\s*:", re.IGNORECASE)
_NEAR_SCHEME = re.compile(r"\s*secrets?d?\s*(?::\s*[/\\]+|//)", re.IGNORECASE)


def _path_problem(path: str) -> str | None:
    """Say what is wrong with ``path``, or None when it is valid."""
    if not path:
        return "the path is empty"
    if len(path) > PATH_MAX_LENGTH:
        return f"the path is {len(path)} characters long, over the limit of {PATH_MAX_LENGTH}"
    if path.startswith("/"):
        return "the path starts with '/'; write it without the leading slash"
    if path.endswith("/"):
        return "the path ends with '/'; a secret path names a secret, not a folder"
    for index, segment in enumerate(path.split("/"), start=1):
        if not segment:
            return f"segment {index} is empty ('//'); {_HINT_SEGMENT}"
        if segment in (".", ".."):
            return f"segment {index} is '{segment}', which is not allowed; {_HINT_SEGMENT}"
        if not _SEGMENT.fullmatch(segment):
            bad = next(ch for ch in segment if not _SEGMENT.fullmatch(ch))
            return f"segment {index} ({segment!r}) contains {bad!r}; {_HINT_SEGMENT}"
    return None


def _key_problem(key: str) -> str | None:
    if not key:
        return "the key after '#' is empty"
    if len(key) > KEY_MAX_LENGTH:
        return f"the key is {len(key)} characters long, over the limit of {KEY_MAX_LENGTH}"
    if not _KEY.fullmatch(key):
        bad = next(ch for ch in key if not _KEY.fullmatch(ch))
        return f"the key {key!r} contains {bad!r}; {_HINT_KEY}"
    return None


def validate_path(path: str, *, allow_empty: bool = False) -> str:
    """Return ``path`` unchanged if it is a valid secret path, else raise InvalidPath.

    ``allow_empty`` admits the empty prefix, used when listing from the top.
    """
    if allow_empty and path == "":
        return path
    problem = _path_problem(path)
    if problem is not None:
        raise InvalidPath(f"invalid secret path {path!r}: {problem}{_scheme_hint(path)}")
    return path


def _scheme_hint(path: str) -> str:
    """A reference typed without its scheme (``apps/web/db#password``): say so."""
    head = path.split("#", 1)[0].split("?", 1)[0]
    if head != path and _path_problem(head) is None:
        return f"; a reference starts with the scheme: {SCHEME}{path}"
    return ""


def secret_path(path_or_ref: str | Reference) -> str:
    """A secret's path from a bare path (``apps/web/db``) or a reference that names no key
    or version (``secretsd://apps/web/db``); InvalidPath or InvalidReference otherwise."""
    if isinstance(path_or_ref, Reference) or is_reference(path_or_ref):
        ref = path_or_ref if isinstance(path_or_ref, Reference) else parse_reference(path_or_ref)
        if ref.key is not None or ref.version is not None:
            raise InvalidReference(
                f"{ref} names a key or version; give the secret's path, e.g. {SCHEME}{ref.path}"
            )
        return ref.path
    return validate_path(path_or_ref)


def near_miss_reference(text: str) -> str | None:
    """Say why ``text``, which is not a reference, was almost surely meant as one
    (``secretsd:/apps/web/db#k``, ``SECRETSD://...``, ``secret://...``); None otherwise.

    The one check for every place that takes "a reference or a literal" (``secretsd
    run``, env files, the agent's templates): a near miss is refused there instead of
    passing on silently as a literal. The answer quotes only the scheme-like
    beginning, never the rest, which may be a value.
    """
    if text.startswith(SCHEME):
        return None
    match = _OUR_SCHEME_LOOSELY.match(text) or _NEAR_SCHEME.match(text)
    if match is None:
        return None
    beginning = text[: match.end()]
    rest = text[match.end() :]
    while rest[:1] in ("/", "\\"):  # show every slash of the misspelt scheme
        beginning, rest = beginning + rest[0], rest[1:]
    return f"it starts with {beginning!r}, not {SCHEME!r}; write {_SYNTAX}"


def is_valid_path(path: str) -> bool:
    """True when ``path`` is a valid secret path (the check without the message)."""
    return _path_problem(path) is None


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid secret key, else raise InvalidPath."""
    problem = _key_problem(key)
    if problem is not None:
        raise InvalidPath(f"invalid secret key: {problem}")
    return key


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed ``secretsd://`` reference: a path, optional version and key."""

    path: str
    key: str | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        problem = _path_problem(self.path)
        if problem is None and self.key is not None:
            problem = _key_problem(self.key)
        if problem is None and self.version is not None and self.version < 1:
            problem = f"version must be a positive integer, got {self.version}"
        if problem is not None:
            raise InvalidReference(f"invalid reference: {problem}")

    def __str__(self) -> str:
        text = SCHEME + self.path
        if self.version is not None:
            text += f"?version={self.version}"
        if self.key is not None:
            text += f"#{self.key}"
        return text

    def with_key(self, key: str | None) -> Reference:
        """The same secret and version, another key (or the whole map)."""
        return Reference(self.path, key, self.version)


def is_reference(text: str) -> bool:
    """True when ``text`` looks like a reference (starts with the scheme)."""
    return text.startswith(SCHEME)


def parse_reference(text: str) -> Reference:
    """Parse ``text`` into a Reference or raise InvalidReference saying what is wrong."""
    if not isinstance(text, str):
        raise InvalidReference(f"invalid reference: expected a string, got {type(text).__name__}")
    if not text.startswith(SCHEME):
        # Do not echo: it may be a value pasted where a reference belongs.
        near_miss = near_miss_reference(text)
        if near_miss is not None:
            raise InvalidReference(f"invalid reference: {near_miss}")
        raise InvalidReference(
            f"invalid reference: it does not start with {SCHEME!r}; write {_SYNTAX}"
        )
    rest = text[len(SCHEME) :]
    key: str | None = None
    if "#" in rest:
        rest, key = rest.split("#", 1)
    version: int | None = None
    if "?" in rest:
        rest, query = rest.split("?", 1)
        version = _parse_query(text, query)
    problem = _path_problem(rest)
    if problem is None and key is not None:
        problem = _key_problem(key)
    if problem is not None:
        raise InvalidReference(f"invalid reference {text!r}: {problem}")
    return Reference(rest, key, version)


def _parse_query(text: str, query: str) -> int:
    name, sep, value = query.partition("=")
    if name != "version" or not sep:
        raise InvalidReference(
            f"invalid reference {text!r}: the only query parameter is 'version=<n>', got {query!r}"
        )
    if (
        not value.isascii()
        or not value.isdigit()
        or value.startswith("0")
        or len(value) > len(str(MAX_VERSION))
        or int(value) > MAX_VERSION
    ):
        raise InvalidReference(
            f"invalid reference {text!r}: version must be a positive integer up to "
            f"{MAX_VERSION}, got {value!r}"
        )
    return int(value)
