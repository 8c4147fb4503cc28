"""A tree scan split over forked processes finds exactly what one process finds.

``forked.scan_tree`` is a second way to reach the same decisions (the files go
to several workers and the findings come back per block), so these tests
compare it with the one-process scan on every rule example and engine fixture,
with blocks of one file and of several, and check that a worker that fails or
is killed costs no finding.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from secretsd.scanners import forked
from secretsd.scanners.model import Finding
from secretsd.scanners.scan import MAX_JOBS, ScanRequest, resolve_jobs, run_scan
from test_parity import write_fixtures

from secretsd.errors import InvalidInput

pytestmark = pytest.mark.skipif(not forked.available(), reason="forking is used on Linux only")

Key = tuple[str, int, int, str, str, str]


def _keys(findings: list[Finding]) -> list[Key]:
    """Everything a report shows about a finding, in the order reported."""
    return [(f.path, f.line, f.column, f.rule, f.confidence, f.fingerprint) for f in findings]


def _scan(target: Path, jobs: int, **options: Any) -> tuple[list[Key], dict[str, Any]]:
    request = ScanRequest(target=target, confidence="low", jobs=jobs, **options)
    result = run_scan(request)
    stats = {k: v for k, v in result.stats.items() if k not in ("seconds", "mb_per_s")}
    return _keys(result.findings), stats


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every rule example and engine fixture as a file, plus files a scan must skip."""
    root = tmp_path_factory.mktemp("forked")
    write_fixtures(root)
    (root / "skip").mkdir()
    (root / "skip" / "image.bin").write_bytes(b"\x89PNG\0\0" + os.urandom(64))
    (root / "skip" / "huge.txt").write_text("x = 1\n" * 400_000)  # over --max-file-size
    (root / "skip" / "link.txt").symlink_to(root / "k8s" / "db.yaml")
    return root


@pytest.fixture(autouse=True)
def worker_pids(monkeypatch: pytest.MonkeyPatch) -> Any:
    """No test may leave a worker running or a zombie behind."""
    forks: list[int] = []
    real_fork = os.fork

    def recording_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    yield forks
    for pid in forks:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.mark.parametrize("block", [1, 7, 32])
def test_workers_find_what_one_process_finds(
    fixtures: Path, block: int, monkeypatch: pytest.MonkeyPatch, worker_pids: list[int]
) -> None:
    serial, serial_stats = _scan(fixtures, jobs=1, max_file_size=1 << 20)
    assert len(serial) > 150
    assert serial_stats["skipped"] == {
        "binary": 1,
        "too_large": 1,
        "symlinks": 1,
        "unreadable": 0,
        "allowlisted_paths": 0,
    }
    monkeypatch.setattr(forked, "_BLOCK", block)
    for jobs in (2, 3):
        assert _scan(fixtures, jobs=jobs, max_file_size=1 << 20) == (serial, serial_stats)
    assert len(worker_pids) == 1 + 2  # the workers really ran: one, then two


def test_small_trees_stay_in_one_process(fixtures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise AssertionError("forked for a small tree")

    monkeypatch.setattr(os, "fork", no_fork)
    findings, _ = _scan(fixtures / "k8s", jobs=4)
    assert [f[0] for f in findings] == ["db.yaml", "list.json", "list.json", "one.json"]


def test_without_fork_the_scan_runs_in_one_process(
    fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = _scan(fixtures, jobs=1)
    monkeypatch.setattr(forked, "available", lambda: False)
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked where fork is not used"))
    assert _scan(fixtures, jobs=2) == serial


@pytest.mark.parametrize("failure", ["error", "killed"])
def test_a_failed_worker_costs_time_not_findings(
    fixtures: Path, failure: str, monkeypatch: pytest.MonkeyPatch, worker_pids: list[int]
) -> None:
    """The parent scans a failed worker's blocks itself: same findings, same counts."""
    serial = _scan(fixtures, jobs=1)
    parent = os.getpid()
    real = forked._scan_blocks

    def failing(*args: Any) -> Any:
        if os.getpid() != parent:  # only in the worker
            if failure == "killed":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError("worker disk gone")
        return real(*args)

    monkeypatch.setattr(forked, "_scan_blocks", failing)
    assert _scan(fixtures, jobs=3) == serial
    assert len(worker_pids) == 2


class _Interrupted(Exception):
    pass


def test_an_interrupt_while_reading_a_worker_reaps_every_worker(
    fixtures: Path, monkeypatch: pytest.MonkeyPatch, worker_pids: list[int]
) -> None:
    """Ctrl-C while the parent waits on a worker's pipe: no worker is left running or unreaped
    (the autouse fixture checks), and the parent does not wait for the workers to finish."""
    parent = os.getpid()
    real = forked._scan_blocks

    def slow_workers(*args: Any) -> Any:
        if os.getpid() != parent:
            time.sleep(60)  # a worker still busy when the parent is interrupted
        result = real(*args)
        signal.setitimer(signal.ITIMER_REAL, 0.2)  # the parent is now reading a pipe
        return result

    def interrupt(signum: int, frame: Any) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    monkeypatch.setattr(forked, "_scan_blocks", slow_workers)
    started = time.monotonic()
    try:
        with pytest.raises(_Interrupted):
            _scan(fixtures, jobs=3)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 30
    assert len(worker_pids) == 2


@pytest.mark.parametrize("jobs", [0, -1, MAX_JOBS + 1, 10**20])
def test_out_of_range_jobs_are_refused(jobs: int) -> None:
    with pytest.raises(InvalidInput, match=r"--jobs .* is out of range; give 1 to 64 processes"):
        resolve_jobs(jobs)


def test_cli_refuses_bad_jobs_before_scanning(
    fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from secretsd.cli.entry import main as entry

    assert entry(["scan", str(fixtures), "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "Error: --jobs 0 is out of range; give 1 to 64 processes"
    )
    assert entry(["scan", str(fixtures / "k8s"), "-j", "2", "-f", "json"]) == 1
    assert resolve_jobs(None) >= 1
