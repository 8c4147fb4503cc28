"""The pre-commit entry point, and ``secretsd scan --install-hook`` for teams without the framework.

``secretsd-scan-hook`` scans what ``git commit`` would record (the staged
diff) and blocks the commit when it adds a credential. It is a separate,
minimal entry point: argparse instead of typer/rich and no settings, so a
hook run costs little more than Python's start-up and one ``git diff``.
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from pathlib import Path

from secretsd.errors import InvalidInput, SecretsdError

__all__ = ["HOOK_CONFIDENCE", "HOOK_MARKER", "install", "main"]

HOOK_MARKER = "# installed by `secretsd scan --install-hook`"
#: The hook's default floor. Measured (bench/README.md, "pre-commit hook floor"): on 40 MB
#: of real package code, medium adds one false finding (0.02% of files) to high's none,
#: while high alone misses every hard-coded password; so the hook blocks at medium too.
HOOK_CONFIDENCE = "medium"
BLOCKED = """\
secretsd: commit blocked, it adds {count} plaintext credential(s):

{report}

How to fix:
  1. Store the value in secretsd, e.g. `secretsd scan --fix` (or put it with the CLI).
  2. Reference it instead of the literal: secretsd://<path>#<key>
     (or read it from the environment that `secretsd run` fills).
  3. If the value was ever pushed, rotate it.
Not a secret? Add `# secretsd:ignore` on that line, or accept it once with
  `secretsd scan --write-baseline .secretsd-baseline.json` and `--baseline` in the hook args.
"""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="secretsd-scan-hook", description="Block commits that add plaintext credentials."
    )
    parser.add_argument("--config", type=Path, default=None, help="scan config file")
    parser.add_argument("--baseline", type=Path, default=None, help="accepted findings")
    parser.add_argument("--no-tests", action="store_true", help="ignore test paths")
    parser.add_argument(
        "--confidence",
        choices=("low", "medium", "high"),
        default=None,
        help=f"lowest confidence that blocks a commit (default: [scan] confidence in the "
        f"config, else {HOOK_CONFIDENCE})",
    )
    parser.add_argument("filenames", nargs="*", help="ignored: the staged diff is scanned")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the staged changes are clean, 1 when they add secrets, 2 on errors."""
    args = _parse(argv)
    try:
        from secretsd.scanners.scan import ScanRequest, run_scan

        result = run_scan(
            ScanRequest(
                target=Path.cwd(),
                mode="staged",
                config_path=args.config,
                baseline=args.baseline,
                report_test_paths=False if args.no_tests else None,
                confidence=args.confidence,
                default_confidence=HOOK_CONFIDENCE,
            )
        )
    except SecretsdError as error:
        print(f"Error: {error.message}", file=sys.stderr)
        return 2
    except ImportError as error:
        print(
            f"Error: the hook needs the scanner's dependencies ({error.name} is missing); "
            "pip install 'secretsd[scan]'",
            file=sys.stderr,
        )
        return 2
    if not result.findings:
        return 0
    from secretsd.scanners.report import to_text

    report = to_text(result.findings, result.stats, show_secrets=False, hint=False)
    print(BLOCKED.format(count=len(result.findings), report=report), file=sys.stderr)
    return 1


def _hooks_dir(path: Path) -> Path:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--git-path", "hooks"],
            cwd=path if path.is_dir() else path.parent,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (subprocess.CalledProcessError, OSError):
        raise InvalidInput(
            f"{str(path)!r} is not inside a git repository; run --install-hook in a repository"
        ) from None
    hooks = Path(out)
    return hooks if hooks.is_absolute() else (path if path.is_dir() else path.parent) / hooks


def install(path: Path) -> str:
    """Write ``.git/hooks/pre-commit`` running this scanner; refuses to replace another hook."""
    hooks = _hooks_dir(path)
    hook = hooks / "pre-commit"
    if hook.exists() and HOOK_MARKER not in hook.read_text("utf-8", "replace"):
        raise InvalidInput(
            f"{hook} already exists and is not ours; add `{sys.executable} -m "
            "secretsd.scanners.hook` to it, or use the pre-commit framework with the "
            "`secretsd-scan` hook"
        )
    script = (
        "#!/bin/sh\n"
        f"{HOOK_MARKER}\n"
        "# Blocks commits that add plaintext credentials; bypass once with --no-verify.\n"
        f'exec "{sys.executable}" -m secretsd.scanners.hook "$@"\n'
    )
    hooks.mkdir(parents=True, exist_ok=True)
    tmp = hook.with_name(f".pre-commit.tmp{os.getpid()}")
    tmp.write_text(script, "utf-8")
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, hook)
    return f"Installed the secretsd pre-commit hook at {hook}."


if __name__ == "__main__":
    sys.exit(main())
