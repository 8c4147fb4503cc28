"""Durations as people write them: ``90s``, ``15m``, ``1h``, ``7d``, ``1h30m`` or plain seconds.

Durations arrive from outside (request bodies, flags), so the parser accepts
only ASCII digits (``"²"`` and ``"١٢"`` are digits to ``str.isdigit`` and
``int``, and would otherwise crash or quietly mean 2 or 12), refuses booleans
(JSON ``true`` is an ``int`` to Python), and bounds the result, so a huge
number is a clear error instead of an overflow in a database column or a
date computation. :data:`Duration` is the pydantic field type that applies
the same rules while a request body is validated.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StrictInt, StrictStr

from secretsd.errors import ValidationFailed

__all__ = ["MAX_DURATION_SECONDS", "Duration", "format_duration", "parse_duration"]

#: The longest duration anything accepts: 10 years. Well inside a 32-bit column.
MAX_DURATION_SECONDS = 10 * 365 * 86400
_MAX_TEXT = 32
_PART = re.compile(r"([0-9]{1,12})([smhd])", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_HINT = "write e.g. 90s, 15m, 1h, 7d, 1h30m or a whole number of seconds"


def parse_duration(text: str | int, *, name: str = "duration") -> int:
    """Seconds in ``text``; ValidationFailed naming ``name`` when it is not a duration."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValidationFailed(f"{name} must be a duration string or whole seconds; {_HINT}")
    if isinstance(text, int):
        return _bounded(text, name)
    raw = text.strip()
    if len(raw) > _MAX_TEXT:
        raise ValidationFailed(f"{name} is {len(raw)} characters long, not a duration; {_HINT}")
    if raw and raw.isascii() and raw.isdigit():
        return _bounded(int(raw), name)
    position, total = 0, 0
    for match in _PART.finditer(raw):
        if match.start() != position:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(raw) or not raw:
        raise ValidationFailed(f"{name} {raw!r} is not a duration; {_HINT}")
    return _bounded(total, name)


def _bounded(seconds: int, name: str) -> int:
    if seconds < 0:
        raise ValidationFailed(f"{name} must not be negative")
    if seconds > MAX_DURATION_SECONDS:
        raise ValidationFailed(
            f"{name} is longer than the maximum of {format_duration(MAX_DURATION_SECONDS)} "
            f"({MAX_DURATION_SECONDS} seconds)"
        )
    return seconds


def _validate(value: str | int) -> str | int:
    """Pydantic hook: check the duration while the body is validated (422 naming the field)."""
    try:
        parse_duration(value, name="value")
    except ValidationFailed as error:
        raise ValueError(error.message.removeprefix("value ")) from None
    return value


#: A request-body field holding a duration: a string such as ``"1h"`` or whole seconds.
#: Strict types, so JSON ``true`` or ``1.5`` is refused rather than coerced.
Duration = Annotated[StrictStr | StrictInt, AfterValidator(_validate)]


def format_duration(seconds: int) -> str:
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
