"""``line_around``: the bounded line the matcher, the context checks and the report read."""

from __future__ import annotations

import random

from secretsd.scanners.lines import line_around


def _reference(data: bytes, start: int, end: int, back: int, forward: int) -> tuple[int, int]:
    """The whole line, read naively, then clipped to the bounds."""
    line_start = data.rfind(b"\n", 0, start) + 1
    line_end = data.find(b"\n", end)
    line_end = len(data) if line_end < 0 else line_end
    return max(line_start, start - back), min(line_end, end + forward)


def test_short_lines_are_read_whole() -> None:
    data = b"first\nkey: value\nlast\n"
    at = data.index(b"value")
    assert data[slice(*line_around(data, at, at + 5, 100, 100))] == b"key: value"


def test_a_minified_line_is_cut_at_the_bounds() -> None:
    data = b"x" * 10_000 + b"SECRET" + b"y" * 10_000
    at = data.index(b"SECRET")
    start, end = line_around(data, at, at + 6, 2048, 2048)
    assert (start, end) == (at - 2048, at + 6 + 2048)


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
