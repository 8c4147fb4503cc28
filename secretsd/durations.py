"""Durations as people write them: ``90s``, ``15m``, ``1h``, ``7d``, ``1h30m`` or plain seconds."""

from __future__ import annotations

import re

from secretsd.errors import ValidationFailed

__all__ = ["format_duration", "parse_duration"]

_PART = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int, *, name: str = "duration") -> int:
    """Seconds in ``text``; ValidationFailed naming ``name`` when it is not a duration."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValidationFailed(f"{name} must not be negative")
        return text
    raw = str(text).strip()
    if raw.isdigit():
        return int(raw)
    position, total = 0, 0
    for match in _PART.finditer(raw):
        if match.start() != position:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(raw) or not raw:
        raise ValidationFailed(
            f"{name} {raw[:40]!r} is not a duration; write e.g. 90s, 15m, 1h, 7d, 1h30m or seconds"
        )
    return total


def format_duration(seconds: int) -> str:
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
