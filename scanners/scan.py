"""One scan from request to result: pick the source, run the engine, apply the policies.

This is the scanner's Python API (the CLI, the hook and the benchmark call
it). Policies apply in a fixed order: value allowlist, accepted fingerprints,
test-path policy, baseline, then de-duplication (git modes report a secret
once per path, at the commit that introduced it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secretsd.scanners.model import Finding, Fragment

from secretsd.errors import InvalidInput

if TYPE_CHECKING:  # imported inside run_scan: git starts before the rules load
    from secretsd.scanners.config import ScanConfig
    from secretsd.scanners.engine import Engine

__all__ = [
    "CONFIDENCE_RANK",
    "DEFAULT_CONFIDENCE",
    "MODES",
    "ScanRequest",
    "ScanResult",
    "run_scan",
]

MODES = ("tree", "staged", "range", "history", "image")
#: Confidence tiers, weakest first; ``--confidence`` is a floor.
CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}
DEFAULT_CONFIDENCE = "medium"
#: ``--jobs`` bounds: the default uses every CPU up to this many processes...
MAX_DEFAULT_JOBS = 4
#: ...and more than this many is a typo, not a machine.
MAX_JOBS = 64


def resolve_jobs(jobs: int | None) -> int:
    """The number of processes for ``jobs`` (None: the default for this machine)."""
    import os

    if jobs is None:
        return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_JOBS))
    if not 1 <= jobs <= MAX_JOBS:
        raise InvalidInput(f"--jobs {jobs} is out of range; give 1 to {MAX_JOBS} processes")
    return jobs


@dataclass
class ScanRequest:
    """What to scan and how; every field has the CLI's default."""

    target: Path = field(default_factory=Path.cwd)
    mode: str = "tree"
    since: str | None = None
    config_path: Path | None = None
    baseline: Path | None = None
    max_file_size: int | None = None
    report_test_paths: bool | None = None
    matcher: str = "auto"
    progress: Callable[[int, int], None] | None = None
    config: ScanConfig | None = None
    managed: Any = None  # a managed.HashLookupClient: also flag values stored in secretsd
    confidence: str | None = None  # the floor; None: the config's, else default_confidence
    default_confidence: str = DEFAULT_CONFIDENCE  # the caller's default (the hook's may differ)
    jobs: int | None = None  # tree scans: processes; None: one per CPU, at most MAX_DEFAULT_JOBS


@dataclass
class ScanResult:
    """Findings (already filtered) and the numbers that describe the run."""

    findings: list[Finding]
    stats: dict[str, Any]
    root: Path
    config: ScanConfig


def _config(request: ScanRequest, root: Path) -> ScanConfig:
    from secretsd.scanners.config import ScanConfig

    if request.config is not None:
        return request.config
    overrides: dict[str, Any] = {}
    if request.max_file_size is not None:
        overrides["max_file_size"] = request.max_file_size
    if request.report_test_paths is not None:
        overrides["report_test_paths"] = request.report_test_paths
    return ScanConfig.load(root, request.config_path, overrides=overrides)


def _order(source: Any, finding: Finding) -> int:
    """Position of the finding's commit in history (oldest first); staged changes are 0."""
    if finding.commit is None or source is None:
        return 0
    order: dict[str, int] = source.order
    return order.get(finding.commit.sha, 0)


def run_scan(request: ScanRequest, engine: Engine | None = None) -> ScanResult:
    """Scan as asked; raises ``InvalidInput``/``ConfigError`` for user mistakes (exit 2)."""
    from secretsd.scanners.sources.tree import SkipStats, TreeSource

    started = time.perf_counter()
    jobs = resolve_jobs(request.jobs)
    target = request.target
    stats: dict[str, Any] = {"mode": request.mode}
    skip = SkipStats()
    fragments: Iterator[Fragment]
    diff_source: Any = None
    if request.mode == "tree":
        root = target if target.is_dir() else target.parent
        config = _config(request, root)
        tree = TreeSource(
            target, max_file_size=config.max_file_size, stats=skip, path_allowed=config.path_allowed
        )
        if target.is_file():
            root = target.parent
        fragments = tree.fragments()
    elif request.mode == "image":
        from secretsd.scanners.sources.image import ImageSource

        root = target.parent
        config = _config(request, Path.cwd())
        image_source = ImageSource(
            target, max_file_size=config.max_file_size, stats=skip, progress=request.progress
        )
        fragments = image_source.fragments()
    else:
        from secretsd.scanners.sources.git import DiffSource, open_repo

        repo = open_repo(target)
        root = Path(repo.working_tree_dir or target)
        diff_source = DiffSource(repo, request.mode, since=request.since, progress=request.progress)
        diff_source.start()  # git streams while the rules load
        config = _config(request, root)
        fragments = diff_source.fragments()
    baseline: frozenset[str] = frozenset()
    if request.baseline is not None:
        from secretsd.scanners.baseline import load_baseline

        baseline = load_baseline(request.baseline)
    if engine is None:
        from secretsd.scanners.engine import Engine

        engine = Engine(config.rules, matcher=request.matcher, filters=config.filters)
    floor = request.confidence or config.confidence or request.default_confidence
    if floor not in CONFIDENCE_RANK:
        raise InvalidInput(f"--confidence {floor!r} is not known; use low, medium or high")
    floor_rank = CONFIDENCE_RANK[floor]
    counts = {
        "allowlisted": 0,
        "baseline": 0,
        "test_paths": 0,
        "duplicates": 0,
        "below_confidence": 0,
    }
    seen: set[str] = set()
    oldest: dict[str, Finding] = {}
    findings: list[Finding] = []
    git_mode = request.mode in ("staged", "range", "history")
    image_seen: set[tuple[str, str, str]] = set()
    if request.mode == "image":
        from secretsd.scanners.sources.image import inner_path
    pool: list[Any] = []
    if request.managed is not None:
        from secretsd.scanners.managed import candidates, match_candidates
    judged: Iterator[tuple[Fragment | None, list[Finding]]]
    if request.mode == "tree" and request.managed is None and jobs > 1:
        from secretsd.scanners import forked

        # findings only: the files stay in the workers (``--managed`` needs them here)
        judged = ((None, found) for _path, found in forked.scan_tree(tree, engine, jobs))
    else:
        judged = ((fragment, engine.scan(fragment)) for fragment in fragments)
    for fragment, found in judged:
        if request.managed is not None:
            assert fragment is not None
            pool.extend(candidates(fragment))
        for finding in found:
            if CONFIDENCE_RANK[finding.confidence] < floor_rank:
                counts["below_confidence"] += 1
                continue
            if git_mode and not config.path_allowed(finding.path):
                counts["allowlisted"] += 1
                continue
            if not config.value_allowed(finding.secret):
                counts["allowlisted"] += 1
                continue
            fingerprint = finding.fingerprint
            if fingerprint in config.allow_fingerprints:
                counts["allowlisted"] += 1
                continue
            if finding.test_path and not config.report_test_paths:
                counts["test_paths"] += 1
                continue
            if fingerprint in baseline:
                counts["baseline"] += 1
                continue
            if request.mode == "image":
                # the same file carried by several layers: report the layer that added it
                key = (finding.rule, inner_path(finding.path), finding.secret)
                if key in image_seen:
                    counts["duplicates"] += 1
                    continue
                image_seen.add(key)
            if git_mode:
                earlier = oldest.get(fingerprint)
                if earlier is not None:
                    counts["duplicates"] += 1
                    if _order(diff_source, earlier) <= _order(diff_source, finding):
                        continue
                oldest[fingerprint] = finding
                continue
            findings.append(finding)
    if git_mode:
        findings = sorted(oldest.values(), key=lambda f: (_order(diff_source, f), f.path, f.line))
        seen.update(oldest)
    if request.managed is not None:
        known = {(f.path, f.line, f.secret) for f in findings}
        for finding in match_candidates(pool, request.managed):
            if (finding.path, finding.line, finding.secret) in known:
                continue
            if not config.path_allowed(finding.path) or finding.fingerprint in baseline:
                continue
            if git_mode and finding.fingerprint in seen:
                continue
            seen.add(finding.fingerprint)
            findings.append(finding)
        stats["managed_candidates"] = len(pool)
    if request.mode == "image":
        stats["image"] = {
            "name": image_source.name,
            "id": f"sha256:{image_source.image_id}",
            "layers": image_source.layers_scanned,
        }
    elapsed = time.perf_counter() - started
    scanned = diff_source.bytes if diff_source is not None else skip.bytes
    stats.update(
        {
            "files": skip.files,
            "bytes": scanned,
            "commits": diff_source.commits if diff_source is not None else 0,
            "skipped": {
                "binary": skip.binary,
                "too_large": skip.too_large,
                "symlinks": skip.symlinks,
                "unreadable": skip.unreadable,
                "allowlisted_paths": skip.allowlisted,
            },
            "suppressed": counts,
            "findings": len(findings),
            "rules": len(config.rules),
            "confidence": floor,
            "matcher": engine.matcher.name,
            "seconds": round(elapsed, 4),
            "mb_per_s": round(scanned / 1e6 / elapsed, 2) if elapsed > 0 else 0.0,
        }
    )
    return ScanResult(findings, stats, root, config)
