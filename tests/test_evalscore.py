"""The evaluation's scoring: a credential's second appearance is neither a miss nor a false
positive (``bench/evalscore.py``, ``bench/evalset.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import evalscore  # noqa: E402
import evalset  # noqa: E402


def test_a_repeated_slot_is_labelled_as_a_repeat_of_its_value() -> None:
    values = evalset.Values(1, "tune")
    body, spans, repeats = evalset._render_slots(values, "password", "a: {V}\nb: {V2}\nc: {V}\n")
    lines = body.splitlines()
    assert spans == [(1, 1), (2, 2)] and repeats == [(3, 3)]
    assert lines[0][3:] == lines[2][3:] != lines[1][3:]


def test_repeats_count_neither_as_found_nor_as_false_positives() -> None:
    labels: list[dict[str, object]] = [
        {"path": "f", "first": 1, "last": 1, "positive": True, "kind": "k"},
        {"path": "f", "first": 3, "last": 3, "positive": True, "kind": "k", "repeat": True},
        {"path": "f", "first": 5, "last": 5, "positive": False, "kind": "k"},
    ]
    both = evalscore.score({("f", 1), ("f", 3)}, labels)
    assert (both["tp"], both["fp"], both["fn"]) == (1, 0, 0)
    only_repeat = evalscore.score({("f", 3)}, labels)
    assert (only_repeat["tp"], only_repeat["fp"], only_repeat["fn"]) == (0, 0, 1)
    look_alike = evalscore.score({("f", 1), ("f", 5), ("f", 9)}, labels)
    assert (look_alike["tp"], look_alike["fp"]) == (1, 2)
