"""The body of ``secretsd scan``, without typer: the fast path and the typer command share it.

typer builds every parameter through pydantic adapters (tens of milliseconds
of imports), a noticeable share of a history scan or a pre-commit run, so
``secretsd scan`` is parsed with argparse here (``entry.py`` routes to it);
``scan_cmd.py`` keeps the typer command for ``--help`` and the app. Exit codes
are the scanner's own contract: 0 clean, 1 findings, 2 error (any error).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secretsd.errors import ConfigError, InvalidInput, SecretsdError

if TYPE_CHECKING:
    from secretsd.scanners.scan import ScanResult

__all__ = ["execute", "fast_parser", "run_fast"]

_EXTRA_HINT = "the scanner needs the 'scan' extra: pip install 'secretsd[scan]'"


def _echo(text: str, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout)


def _mode(staged: bool, since: str | None, history: bool, image: Path | None = None) -> str:
    chosen = [
        name
        for name, on in (
            ("--staged", staged),
            ("--since", since),
            ("--history", history),
            ("--image", image),
        )
        if on
    ]
    if len(chosen) > 1:
        raise InvalidInput(f"{' and '.join(chosen)} cannot be combined; pick one source")
    if image is not None:
        return "image"
    if staged:
        return "staged"
    if since:
        return "range"
    return "history" if history else "tree"


def _progress(mode: str, fmt: str) -> tuple[Any, Any]:
    """A rich progress bar on a TTY for long scans; nothing when piped or machine output."""
    if mode not in ("history", "range", "image") or fmt != "text" or not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    unit = "layers" if mode == "image" else "commits"
    bar = Progress(
        TextColumn(f"scanning {'image' if mode == 'image' else 'history'}"),
        BarColumn(),
        TextColumn(
            "{task.completed} layers scanned"
            if mode == "image"
            else f"{{task.completed}}/{{task.total}} {unit}"
        ),
        TimeElapsedColumn(),
        transient=True,
    )
    task = bar.add_task("history", total=None)

    def advance(_bytes: int, commits: int) -> None:
        bar.advance(task, commits)

    return bar, (task, advance)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        _echo(text)
        return
    try:
        output.write_text(text + "\n", "utf-8")
    except OSError as error:
        raise InvalidInput(f"cannot write --output {str(output)!r} ({error.strerror})") from None


def _run(
    path: Path,
    mode: str,
    since: str | None,
    fmt: str,
    config: Path | None,
    baseline: Path | None,
    max_file_size: int | None,
    tests: bool | None,
    matcher: str,
    managed: bool = False,
    confidence: str | None = None,
    jobs: int | None = None,
) -> ScanResult:
    try:
        from secretsd.scanners.scan import ScanRequest, run_scan
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ConfigError(f"{_EXTRA_HINT} ({error.name} is missing)") from None
    request = ScanRequest(
        target=path,
        mode=mode,
        since=since,
        config_path=config,
        baseline=baseline,
        max_file_size=max_file_size,
        report_test_paths=tests,
        matcher=matcher,
        confidence=confidence,
        jobs=jobs,
    )
    if managed:
        from secretsd.scanners.managed import client_from_env

        request.managed = client_from_env()
    bar, hook = _progress(mode, fmt)
    if bar is None:
        return run_scan(request)
    task, advance = hook
    request.progress = advance
    with bar:
        if mode == "image":  # the source sets the total once it has read the manifest
            return run_scan(request)
        from secretsd.scanners.sources.git import DiffSource, open_repo

        total = DiffSource(open_repo(path), mode, since=since).count_commits()
        bar.update(task, total=total or None)
        return run_scan(request)


def execute(**options: Any) -> int:
    """Run a scan; every error becomes ``Error: ...`` and exit 2 (the scanner's contract)."""
    try:
        return _scan(**options)
    except SecretsdError as error:
        if error.exit_code == 2:
            raise
        _echo(f"Error: {error.message}", err=True)
        return 2
    except OSError as error:
        where = error.filename or options.get("path")
        _echo(f"Error: {error.strerror or error} ({where})", err=True)
        return 2


def fast_parser() -> Any:
    """The same options as ``scan`` for argparse.

    typer builds every parameter through pydantic adapters (~50 ms of imports),
    a tenth of a history scan's wall time; ``secretsd scan`` without ``--help``
    is parsed here instead. ``tests/scanners`` checks both parsers agree.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="secretsd scan", add_help=False, allow_abbrev=False)
    parser.add_argument("path", nargs="?", type=Path, default=Path("."))
    for flag in (
        "--staged",
        "--history",
        "--show-secrets",
        "--install-hook",
        "--managed",
        "--fix",
        "--dry-run",
        "--list-rules",
    ):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--yes", "-y", action="store_true")
    parser.add_argument("--since", default=None)
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--confidence", default=None)
    parser.add_argument("--format", "-f", dest="fmt", default="text")
    parser.add_argument("--output", "-o", type=Path, default=None)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--write-baseline", type=Path, default=None)
    parser.add_argument("--max-file-size", type=int, default=None)
    parser.add_argument("--jobs", "-j", type=int, default=None)
    parser.add_argument("--tests", dest="tests", action="store_true", default=None)
    parser.add_argument("--no-tests", dest="tests", action="store_false")
    parser.add_argument("--matcher", default="auto")
    return parser


def run_fast(argv: list[str]) -> int | None:
    """Parse with argparse and run; None when typer should handle it (help, odd input)."""
    if any(arg in ("--help", "-h") for arg in argv):
        return None
    import argparse

    parser = fast_parser()
    parser.exit_on_error = False
    try:
        namespace, extra = parser.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit):
        return None  # let typer produce its usual usage error
    if extra:
        return None
    return execute(**vars(namespace))


def _scan(
    *,
    path: Path,
    staged: bool,
    since: str | None,
    history: bool,
    fmt: str,
    output: Path | None,
    image: Path | None = None,
    confidence: str | None = None,
    config: Path | None,
    baseline: Path | None,
    write_baseline: Path | None,
    max_file_size: int | None,
    tests: bool | None,
    show_secrets: bool,
    install_hook: bool,
    managed: bool,
    fix: bool,
    dry_run: bool,
    yes: bool,
    list_rules: bool,
    matcher: str,
    jobs: int | None = None,
) -> int:
    from secretsd.scanners.report import FORMATS, render

    if fmt not in FORMATS:
        raise InvalidInput(f"--format {fmt!r} is not known; use one of {', '.join(FORMATS)}")
    if max_file_size is not None and max_file_size <= 0:
        raise InvalidInput("--max-file-size must be a positive number of bytes")
    if jobs is not None:
        from secretsd.scanners.scan import resolve_jobs

        resolve_jobs(jobs)  # refuses 0, negative and absurd counts before anything runs
    if (dry_run or yes) and not fix:
        raise InvalidInput("--dry-run and --yes only apply to --fix")
    if install_hook:
        from secretsd.scanners.hook import install

        _echo(install(path))
        return 0
    if list_rules:
        from secretsd.scanners.config import ScanConfig

        cfg = ScanConfig.load(path if path.is_dir() else path.parent, config)
        for rule in cfg.rules:
            _echo(f"{rule.id:32} {rule.kind:12} {rule.description}")
        return 0
    if confidence is not None and confidence not in ("low", "medium", "high"):
        raise InvalidInput(f"--confidence {confidence!r} is not known; use low, medium or high")
    mode = _mode(staged, since, history, image)
    if fix and mode != "tree":
        raise InvalidInput(
            "--fix rewrites files in the working tree; drop --staged/--since/--history/--image"
        )
    if mode == "image":
        assert image is not None
        path = image
    result = _run(
        path,
        mode,
        since,
        fmt,
        config,
        baseline,
        max_file_size,
        tests,
        matcher,
        managed,
        confidence,
        jobs,
    )
    findings = result.findings
    if write_baseline is not None:
        from secretsd.scanners.baseline import write_baseline as write

        count = write(write_baseline, findings)
        _echo(f"Wrote {count} finding(s) to baseline {write_baseline}.", err=True)
        return 0
    if fix and findings:
        from secretsd.scanners.fix import run_fix

        fixed: int = run_fix(result.root, findings, dry_run=dry_run, assume_yes=yes)
        return fixed
    _emit(
        render(fmt, findings, result.stats, result.config.rules, show_secrets=show_secrets), output
    )
    return 1 if findings else 0
