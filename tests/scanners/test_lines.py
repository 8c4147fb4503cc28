"""``line_around``: the bounded line the matcher, the context checks and the report read."""

from __future__ import annotations

import random

from secretsd.scanners.lines import Line, line_around
from secretsd.scanners.matcher import _WINDOW_BACK, _WINDOW_FORWARD, _line_window


def _reference(data: bytes, start: int, end: int, back: int, forward: int) -> Line:
    """The whole line, read naively, then clipped to the bounds; an end is a newline's where
    that newline lies inside the bounds."""
    line_start = data.rfind(b"\n", 0, start) + 1
    line_end = data.find(b"\n", end)
    line_end = len(data) if line_end < 0 else line_end
    first, last = max(line_start, start - back), min(line_end, end + forward)
    return Line(
        first,
        last,
        line_start > 0 and line_start - 1 >= start - back,
        line_end < min(len(data), end + forward),
    )


def test_short_lines_are_read_whole() -> None:
    data = b"first\nkey: value\nlast\n"
    at = data.index(b"value")
    line = line_around(data, at, at + 5, 100, 100)
    assert data[line.start : line.end] == b"key: value"
    assert line.after_newline
    assert line.at_newline


def test_a_minified_line_is_cut_at_the_bounds() -> None:
    data = b"x" * 10_000 + b"SECRET" + b"y" * 10_000
    at = data.index(b"SECRET")
    line = line_around(data, at, at + 6, 2048, 2048)
    assert line == Line(at - 2048, at + 6 + 2048, False, False)


def test_equals_the_naive_line_clipped_to_its_bounds() -> None:
    rng = random.Random(12)
    for _ in range(2000):
        size = rng.choice([0, 1, 7, 90, 700])
        data = bytes(10 if rng.random() < 0.05 else 97 for _ in range(size))
        start = rng.randrange(0, size + 1)
        end = rng.randrange(start, size + 1)
        back, forward = rng.choice([0, 1, 5, 64, 4096]), rng.choice([0, 1, 5, 64, 4096])
        assert line_around(data, start, end, back, forward) == _reference(
            data, start, end, back, forward
        )


def _naive_window(data: bytes, end: int) -> tuple[int, int]:
    """The matcher's window read naively: the hit's line and the line before it, and the
    line after it when the hit's line ends in a key (``key:``), each clipped to the bounds;
    an empty first line of the data is no line before."""
    low, high = max(0, end - _WINDOW_BACK), min(len(data), end + _WINDOW_FORWARD)
    line_start = data.rfind(b"\n", 0, end) + 1
    start = max(line_start, low)
    if line_start > 1 and line_start - 1 >= low:
        start = max(data.rfind(b"\n", 0, line_start - 1) + 1, low)
    line_end = data.find(b"\n", end)
    if line_end < 0 or line_end >= high:
        return start, high
    if data[end:line_end].rstrip(b" \t\r\"'").endswith(b":"):
        after = data.find(b"\n", line_end + 1)
        bound = min(len(data), line_end + 1 + _WINDOW_FORWARD)
        return start, after if 0 <= after < bound else bound
    return start, line_end


def test_the_matcher_window_equals_its_naive_reading() -> None:
    rng = random.Random(7)
    alphabet = b"\n\n:ab '\"\t"
    for _ in range(3000):
        size = rng.choice([0, 1, 5, 40, 300, 2000])
        data = bytes(rng.choice(alphabet) if rng.random() < 0.3 else 97 for _ in range(size))
        end = rng.randrange(0, size + 1)
        assert _line_window(data, end, multiline=False) == _naive_window(data, end), (data, end)
