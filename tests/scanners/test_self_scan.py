"""This repository's own history is clean under its own scan config (issue 12).

The scanner's source is full of words like ``password`` and ``token`` in
comments and examples; a finding here is either a leaked credential or a
false positive on the scanner's own prose, and both are bugs.
"""

from __future__ import annotations

from pathlib import Path

from secretsd.scanners.scan import ScanRequest, run_scan

ROOT = Path(__file__).resolve().parents[2]


def test_this_repository_history_is_clean() -> None:
    mode = "history" if (ROOT / ".git").exists() else "tree"  # an exported source tree: no git
    result = run_scan(ScanRequest(target=ROOT, mode=mode))
    where = [(f.path, f.line, f.rule, f.confidence) for f in result.findings]
    assert where == []
    assert result.stats["commits" if mode == "history" else "files"] > 0
