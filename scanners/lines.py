"""The line around a byte offset, read no further than a bound either side.

A minified bundle or a source map is one line of megabytes: the matcher's windows, the
context checks and the report each read only a bounded stretch of the line around a hit
(reading all of it cost 22 s for one file). One helper finds that stretch for all three.
"""

from __future__ import annotations

__all__ = ["line_around"]


def line_around(data: bytes, start: int, end: int, back: int, forward: int) -> tuple[int, int]:
    """The line holding ``data[start:end]`` as ``(line_start, line_end)``, but starting no
    earlier than ``back`` bytes before ``start`` and ending no later than ``forward`` bytes
    after ``end`` (``line_end`` is the first newline at or after ``end``, or the bound where
    none comes first)."""
    low = max(0, start - back)
    line_start = data.rfind(b"\n", low, start) + 1 or low
    high = min(len(data), end + forward)
    line_end = data.find(b"\n", end, high)
    return line_start, line_end if line_end >= 0 else high
