"""The numeric limits of API v1, and the one parser for numbers in query strings and headers.

Every number from outside is bounded where it enters: a version of
99999999999999999999 or a count of 2**70 must be a clear 422, not an
overflow in a 32-bit database column (which once failed an audit batch and
every honest request in it) or an oddly wrapped meaning. Digits are ASCII
only: ``str.isdigit`` and ``int`` also accept ``"²"`` and ``"١٢"``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field, StrictInt

from secretsd.errors import ValidationFailed
from secretsd.limits import (
    MAX_COUNT,
    MAX_CURSOR,
    MAX_SECRET_KEYS,
    MAX_VERSION,
    MAX_WAIT_SECONDS,
)

__all__ = [
    "MAX_COUNT",
    "MAX_CURSOR",
    "MAX_SECRET_KEYS",
    "MAX_VERSION",
    "MAX_WAIT_SECONDS",
    "Count",
    "QueryInt",
    "Version",
    "check_key_count",
    "parse_uint",
]


_ASCII_UINT = re.compile(r"[0-9]{1,19}", re.ASCII)


def _ascii_uint(value: object) -> object:
    """Query strings: only plain ASCII digits (pydantic alone also takes ``+5``, ``1_000``)."""
    if isinstance(value, str) and not _ASCII_UINT.fullmatch(value):
        raise ValueError("must be a whole number written with the digits 0-9")
    return value


#: A query-string integer: ASCII digits only; bound it with Query(ge=..., le=...).
QueryInt = Annotated[int, BeforeValidator(_ascii_uint)]

#: A JSON body's version number: a strict integer (``true`` and ``1.0`` are refused).
Version = Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)]
#: A JSON body's count (uses, versions to keep): strict and bounded.
Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]


def parse_uint(raw: str, *, name: str, maximum: int, minimum: int = 0) -> int:
    """An ASCII decimal integer in [minimum, maximum], else ValidationFailed naming ``name``."""
    text = raw.strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > len(str(maximum)):
        raise ValidationFailed(
            f"{name} must be a whole number from {minimum} to {maximum}, got {text[:24]!r}"
        )
    value = int(text)
    if not minimum <= value <= maximum:
        raise ValidationFailed(f"{name} must be a whole number from {minimum} to {maximum}")
    return value


def check_key_count(path: str, count: int) -> None:
    """Refuse a secret with more keys than secretsd supports (also after a PATCH merge)."""
    if count > MAX_SECRET_KEYS:
        raise ValidationFailed(
            f"the secret {path!r} would have {count} keys; a secret holds at most "
            f"{MAX_SECRET_KEYS} keys (split it into several secrets, e.g. one per component)"
        )
