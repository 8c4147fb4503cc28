"""Decryption on worker threads changes nothing but speed: the same items in the same
order, the same errors, and the same plan JSON byte for byte as the sequential path."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from secretsd.migrations.ansible import AnsibleImporter, AnsibleTree
from secretsd.migrations.mapping import Mapper
from secretsd.migrations.model import Imported
from secretsd.migrations.plan import build_plan
from secretsd.migrations.run_ahead import Deferred, default_workers, in_order
from secretsd.migrations.vault_crypto import VaultSecret
from secretsd.migrations.vault_ids import load_secrets, specs_for_tree

from secretsd import Client
from tests.conftest import ADMIN_TOKEN, RunningServer
from tests.migrate.conftest import FIXTURES

BAD = FIXTURES / "bad"


def _secrets(root: Path) -> list[VaultSecret]:
    flags = [
        f"dev@{FIXTURES / 'ansible/passwords/dev.txt'}",
        f"prod@{FIXTURES / 'ansible/passwords/prod.txt'}",
    ]
    return load_secrets(specs_for_tree(root, flags, env={}, cwd=root))


def _read(root: Path, workers: int) -> list[Imported]:
    tree = AnsibleTree(root, _secrets(root), decrypt_workers=workers)
    return list(AnsibleImporter().read(tree))


@pytest.mark.parametrize(
    "root",
    [
        FIXTURES / "ansible",
        BAD / "ansible-corrupted",
        BAD / "ansible-mixed-run",
        BAD / "ansible-truncated-midline",
        BAD / "ansible-unknown-password",
    ],
    ids=lambda p: p.name,
)
def test_threads_yield_what_the_sequential_path_yields(root: Path) -> None:
    sequential = _read(root, 1)
    assert any(i.origin == "vault" for i in sequential)  # the tree has vault texts to decrypt
    for workers in (2, 4):
        assert _read(root, workers) == sequential  # values, problems, order


def test_bad_inputs_keep_their_specific_errors_on_threads() -> None:
    problems = [i.problem for i in _read(BAD / "ansible-mixed-run", 4) if i.problem]
    assert problems, "the mixed run fixture holds a bad vault text"
    for problem in problems:
        assert problem.code.startswith("vault_") and "group_vars" in problem.where


def test_plan_json_is_byte_identical(server: RunningServer) -> None:
    """The whole plan (ids, actions, duplicates, versions) through the real service."""
    root = FIXTURES / "ansible"
    source = {"type": "ansible", "root": str(root)}
    with Client(server.url, ADMIN_TOKEN) as client:
        first = _read(root, 1)[0]
        client.put(first.default_path, {first.default_key: "an older value"})  # one "changed"
        plans = []
        for workers in (1, 2, 4):
            imported = AnsibleImporter().read(
                AnsibleTree(root, _secrets(root), decrypt_workers=workers)
            )
            plan = build_plan(imported, Mapper(), client, source=source, mapping={})
            plans.append(json.dumps(plan.to_json(), sort_keys=False).encode())
    assert b'"changed"' in plans[0] and b'"new"' in plans[0]
    assert plans[1] == plans[0] and plans[2] == plans[0]


def test_in_order_keeps_order_when_work_finishes_out_of_order() -> None:
    """Later work finishes first (shorter sleeps); items still come in produced order."""

    def slow(n: int) -> list[int]:
        time.sleep(0.002 * (10 - n))
        return [n * 10, n * 10 + 1]

    produced: list[int | Deferred[int]] = []
    for n in range(10):
        produced.append(Deferred(lambda n=n: slow(n)))  # type: ignore[misc]
        produced.append(-n)
    expected = list(in_order(produced, 1))
    assert expected[:3] == [0, 1, 0]
    for workers, ahead in [(2, None), (4, 1), (8, 3)]:
        assert list(in_order(produced, workers, ahead)) == expected


def test_in_order_failures_match_the_sequential_path() -> None:
    """A producer failure comes after everything before it; a failing work item stops there."""

    def producer() -> object:
        yield Deferred(lambda: [1])
        yield 2
        raise ValueError("broken input")

    for workers in (1, 3):
        got: list[int] = []
        with pytest.raises(ValueError, match="broken input"):
            got.extend(in_order(producer(), workers))  # type: ignore[arg-type]
        assert got == [1, 2]

    def failing() -> list[int]:
        raise RuntimeError("bug in a worker")

    for workers in (1, 3):
        got = []
        with pytest.raises(RuntimeError, match="bug in a worker"):
            got.extend(in_order([0, Deferred(failing), 5, Deferred(lambda: [6])], workers))
        assert got == [0]


def test_in_order_bounds_work_ahead_of_the_reader() -> None:
    """At most ``ahead`` deferred items are queued or running while the reader lags."""
    running = 0
    most = 0
    lock = threading.Lock()

    def work(n: int) -> list[int]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.001)
        with lock:
            running -= 1
        return [n]

    produced = [Deferred(lambda n=n: work(n)) for n in range(40)]  # type: ignore[misc]
    stream = in_order(produced, 4, ahead=2)
    assert list(stream) == list(range(40))
    assert most <= 3  # two queued ahead plus the one being waited on
    assert 1 <= default_workers() <= 8
