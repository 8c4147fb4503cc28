"""The line around a byte offset, read no further than a bound either side.

A minified bundle or a source map is one line of megabytes: the matcher's windows, the
context checks and the report each read only a bounded stretch of the line around a hit
(reading all of it cost 22 s for one file). One helper finds that stretch for all three,
and says whether each end is the line's own (a newline) or a bound, so that no caller has
to search again to find out.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Line", "line_around"]


class Line(NamedTuple):
    """A bounded stretch of one line: ``data[start:end]``."""

    start: int
    end: int
    #: ``start`` follows a newline at or after the back bound (so a line before it begins
    #: no later than ``start - 1``); false where ``start`` is the data's start or the bound.
    after_newline: bool
    #: ``end`` is a newline before the forward bound; false where it is the data's end or
    #: the bound.
    at_newline: bool


def line_around(data: bytes, start: int, end: int, back: int, forward: int) -> Line:
    """The line holding ``data[start:end]``, but starting no earlier than ``back`` bytes
    before ``start`` and ending no later than ``forward`` bytes after ``end`` (the end is
    the first newline at or after ``end``, or the bound where none comes first)."""
    low = max(0, start - back)
    newline_before = data.rfind(b"\n", low, start)
    high = min(len(data), end + forward)
    newline_after = data.find(b"\n", end, high)
    return Line(
        newline_before + 1 if newline_before >= 0 else low,
        newline_after if newline_after >= 0 else high,
        newline_before >= 0,
        newline_after >= 0,
    )
