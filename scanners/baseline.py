"""Baselines: accept the findings that exist today, fail only on new ones.

The file stores fingerprints (a hash of rule, path and secret) plus the rule,
path and line for people reading a diff of it, never a secret value (the
detect-secrets habit). Writing is atomic (``os.replace``) so an interrupted
run never leaves half a baseline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from secretsd.scanners.model import Finding

from secretsd.errors import ConfigError

__all__ = ["BASELINE_VERSION", "load_baseline", "write_baseline"]

BASELINE_VERSION = 1


def load_baseline(path: Path) -> frozenset[str]:
    """The fingerprints a baseline accepts; a clear error when the file is not one."""
    try:
        document = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"baseline {str(path)!r} does not exist; create it with "
            f"`secretsd scan --write-baseline {path}`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"baseline {str(path)!r} is not a readable JSON file ({error})") from None
    entries = document.get("findings") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("fingerprint"), str) for e in entries
    ):
        raise ConfigError(
            f"baseline {str(path)!r} has no 'findings' list of {{fingerprint, ...}}; "
            "regenerate it with --write-baseline"
        )
    return frozenset(e["fingerprint"] for e in entries)


def write_baseline(path: Path, findings: Iterable[Finding]) -> int:
    """Write every finding's fingerprint to ``path``; returns how many were written."""
    entries = sorted(
        {
            f.fingerprint: {
                "fingerprint": f.fingerprint,
                "rule": f.rule,
                "path": f.path,
                "line": f.line,
            }
            for f in findings
        }.values(),
        key=lambda e: (str(e["path"]), int(str(e["line"])), str(e["rule"])),
    )
    document = {
        "version": BASELINE_VERSION,
        "tool": "secretsd scan",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "findings": entries,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
    os.replace(tmp, path)
    return len(entries)
