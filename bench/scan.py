"""Benchmark secretsd scan against gitleaks, detect-secrets and CredSweeper, in one command.

    python bench/scan.py            # everything (several minutes: the peers are slow)
    python bench/scan.py --quick    # skip detect-secrets and CredSweeper on the large inputs

Builds (once) and uses, under bench/.corpus/ (git-ignored):
  labelled/  real code with planted secrets and hard negatives (corpus.py)
  tree/      ~40 MB of real package sources (tree.py)
  history/   a real ~700-commit history of rich and requests releases (history.py)
and prints precision/recall/F1 on the labelled corpus, throughput (MB/s) and
peak memory (max RSS) on the tree and the history, the ratios against
gitleaks, and the wall time of the pre-commit hook on a 20-file commit.
Results are also written to bench/results/scan.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bighistory  # noqa: E402
import corpus  # noqa: E402
import evalscore  # noqa: E402
import evalset  # noqa: E402
import history  # noqa: E402
import peers  # noqa: E402
import realworld  # noqa: E402
import tree  # noqa: E402

CORPUS = HERE / ".corpus"
ORDER = ("secretsd", "gitleaks", "credsweeper", "detect-secrets")


def size_of(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)


def history_bytes(repo: Path) -> int:
    proc = subprocess.run(
        ["git", "log", "--all", "-p", "-U0", "--no-color"],
        cwd=repo,
        capture_output=True,
        check=True,
    )
    return len(proc.stdout)


def best_of(fn, root: Path, runs: int, **kw) -> peers.Run:
    results = [fn(root, **kw) for _ in range(runs)]
    return min(results, key=lambda r: r.seconds)


def hook_timing(runs: int = 15) -> dict[str, float]:
    """Wall time of `secretsd-scan-hook` (what pre-commit runs) on a 20-file commit of real code."""
    sources = sorted((Path(sysconfig.get_paths()["purelib"]) / "rich").glob("*.py"))[:20]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        for args in (
            ["init", "-q"],
            ["config", "user.email", "b@x.test"],
            ["config", "user.name", "b"],
        ):
            subprocess.run(["git", *args], cwd=repo, check=True)
        for src in sources:
            (repo / src.name).write_text(src.read_text())
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(["git", "commit", "-qm", "base"], cwd=repo, check=True)
        for src in sources:  # a 20-file change: every file edited
            text = (repo / src.name).read_text()
            (repo / src.name).write_text(text.replace("def ", "def  ", 5) + "\n# edited\n")
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        hook = str(Path(sys.executable).parent / "secretsd-scan-hook")
        subprocess.run([hook], cwd=repo, check=False, capture_output=True)  # warm the rule cache
        walls = []
        for _ in range(runs):
            started = time.perf_counter()
            proc = subprocess.run([hook], cwd=repo, capture_output=True, check=False)
            walls.append(time.perf_counter() - started)
            assert proc.returncode == 0, proc.stderr
        framework = []
        config = (
            "repos:\n- repo: local\n  hooks:\n  - id: secretsd-scan\n    name: secretsd\n"
            f"    entry: {hook}\n    language: system\n    pass_filenames: false\n"
        )
        (repo / ".pre-commit-config.yaml").write_text(config)
        subprocess.run(["git", "add", ".pre-commit-config.yaml"], cwd=repo, check=True)
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pre_commit", "run"],
                cwd=repo,
                capture_output=True,
                check=False,
                env={**__import__("os").environ, "PRE_COMMIT_HOME": str(repo / ".pch")},
            )
            framework.append(time.perf_counter() - started)
    return {
        "hook_median_s": statistics.median(walls),
        "hook_max_s": max(walls),
        "framework_median_s": statistics.median(framework[1:]),
    }


def ratio(value: float | None) -> str:
    return format(value, "6.2f") if value else "     -"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="only ours and gitleaks on the large inputs"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the corpora")
    args = parser.parse_args()

    labelled = CORPUS / "labelled"
    if args.rebuild or not (labelled / "labels.json").exists():
        print(
            "building the labelled corpus...",
            corpus.build(labelled, Path(sysconfig.get_paths()["purelib"])),
        )
    if args.rebuild or not (CORPUS / "tree").exists():
        print("building the large tree...", tree.build(CORPUS / "tree"))
    if args.rebuild or not (CORPUS / "history" / ".git").exists():
        history.download(CORPUS / "dl" / "files")
        print("building the history...", history.build(CORPUS / "history", CORPUS / "dl" / "files"))
    big = CORPUS / "bighistory"
    if args.rebuild or not (big / ".git").exists():
        print("building the 10,000-commit history...", bighistory.build(big))
    for part in ("tune", "heldout", "heldout2"):
        if args.rebuild or not (CORPUS / f"eval-{part}" / "labels.json").exists():
            print(
                f"building the evaluation corpus ({part})...",
                evalset.build(CORPUS / f"eval-{part}", part),
            )
    eval_labels = {
        part: json.loads((CORPUS / f"eval-{part}" / "labels.json").read_text())
        for part in ("tune", "heldout", "heldout2")
    }
    hand = CORPUS / "realworld"
    if args.rebuild or not (hand / "labels.json").exists():
        realworld.build(hand)
    peers.compile_ours()  # time the scan, not the compilation of our modules
    labels = json.loads((labelled / "labels.json").read_text())
    hand_labels = json.loads((hand / "labels.json").read_text())
    tree_bytes = size_of(CORPUS / "tree")
    hist_bytes = history_bytes(CORPUS / "history")
    commits = int(
        subprocess.run(
            ["git", "rev-list", "--all", "--count"],
            cwd=CORPUS / "history",
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    results: dict[str, dict[str, object]] = {}
    for name in ORDER:
        fn = peers.SCANNERS[name]
        slow = name in ("credsweeper", "detect-secrets")
        row: dict[str, object] = {}
        print(f"running {name}...", file=sys.stderr)
        run = fn(labelled / "files")
        row.update(evalscore.score(run.findings, labels))
        row["labelled_s"] = run.seconds
        if run.error:
            row["error"] = run.error
        hand_run = fn(hand / "files")
        row["hand"] = evalscore.score(hand_run.findings, hand_labels)
        for part, part_labels in eval_labels.items():
            eval_run = fn(CORPUS / f"eval-{part}" / "files")
            if name == "secretsd":  # one run at floor "low" scores every floor
                for floor in ("high", "medium", "low"):
                    found = evalscore.at_floor(eval_run, floor)
                    row[f"eval_{part}@{floor}"] = evalscore.score(found, part_labels)
                row["labelled@tiers"] = {
                    floor: evalscore.score(evalscore.at_floor(run, floor), labels)
                    for floor in ("high", "medium", "low")
                }
            else:
                row[f"eval_{part}"] = evalscore.score(eval_run.findings, part_labels)
        if name in ("secretsd", "gitleaks"):  # the slow peers would take hours here
            run = best_of(fn, big, 1 if args.quick else 3, history=True)
            row["big_s"], row["big_rss_mb"] = run.seconds, run.max_rss_mb
            row["big_findings"] = len(run.findings)
        if not (slow and args.quick):
            run = best_of(fn, CORPUS / "tree", 1 if slow else 3)
            row["tree_s"], row["tree_rss_mb"] = run.seconds, run.max_rss_mb
            row["tree_mb_s"] = tree_bytes / 1e6 / run.seconds
            if name != "detect-secrets":
                run = best_of(fn, CORPUS / "history", 1 if slow else 3, history=True)
                row["hist_s"], row["hist_rss_mb"] = run.seconds, run.max_rss_mb
                row["hist_mb_s"] = hist_bytes / 1e6 / run.seconds
                row["hist_findings"] = len(run.findings)
        results[name] = row
    hook = hook_timing()
    base = results["gitleaks"]
    print()
    print(
        f"labelled corpus: {size_of(labelled / 'files') / 1e6:.1f} MB, "
        f"{sum(1 for x in labels if x['positive'])} planted secrets, "
        f"{sum(1 for x in labels if not x['positive'])} hard negatives"
    )
    print(
        f"large tree: {tree_bytes / 1e6:.1f} MB;  history: {commits} commits, "
        f"{hist_bytes / 1e6:.1f} MB of patches"
    )
    print()
    header = (
        f"{'scanner':15} {'P':>6} {'R':>6} {'F1':>6} | "
        f"{'tree MB/s':>9} {'x gl':>6} {'RSS MB':>7} | "
        f"{'hist s':>7} {'MB/s':>6} {'x gl':>6} {'RSS MB':>7} {'found':>5}"
    )
    print(header)
    print("-" * len(header))
    for name, row in results.items():

        def cell(key: str, fmt: str, row: dict[str, object] = row) -> str:
            value = row.get(key)
            return format(value, fmt) if isinstance(value, (int, float)) else "-"

        tree_ratio = (row["tree_mb_s"] / base["tree_mb_s"]) if "tree_mb_s" in row else None  # type: ignore[operator]
        hist_ratio = (base["hist_s"] / row["hist_s"]) if "hist_s" in row else None  # type: ignore[operator]
        print(
            f"{name:15} {cell('precision', '6.3f')} {cell('recall', '6.3f')} "
            f"{cell('f1', '6.3f')} | {cell('tree_mb_s', '9.1f')} {ratio(tree_ratio)} "
            f"{cell('tree_rss_mb', '7.0f')} | {cell('hist_s', '7.2f')} {cell('hist_mb_s', '6.1f')} "
            f"{ratio(hist_ratio)} {cell('hist_rss_mb', '7.0f')} "
            f"{cell('hist_findings', '5d')}"
        )
    big_commits = int(
        subprocess.run(
            ["git", "rev-list", "--all", "--count"],
            cwd=big,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    big_bytes = history_bytes(big)
    print()
    print(
        f"generated history: {big_commits} commits, {big_bytes / 1e6:.1f} MB of patches "
        "(wall s, peak RSS MB, findings; x gl = gitleaks wall / ours)"
    )
    for name in ("secretsd", "gitleaks"):
        row = results[name]
        print(
            f"  {name:15} {row['big_s']:7.2f} s  {row['big_rss_mb']:6.0f} MB  "
            f"{row['big_findings']:5d} found  x gl {results['gitleaks']['big_s'] / row['big_s']:.2f}"  # type: ignore[operator]
        )
    print()
    print("evaluation corpus (bench/evalset.py), precision / recall / F1:")
    for part in ("tune", "heldout", "heldout2"):
        print(f"  {part} part ({len(eval_labels[part])} labelled values):")
        for name, row in results.items():
            keys = (
                [f"eval_{part}@{f}" for f in ("high", "medium", "low")]
                if name == "secretsd"
                else [f"eval_{part}"]
            )
            for key in keys:
                value = row[key]
                assert isinstance(value, dict)
                label = name if "@" not in key else f"{name}@{key.split('@')[1]}"
                print(
                    f"    {label:20} P {value['precision']:.3f}  R {value['recall']:.3f}  "
                    f"F1 {value['f1']:.3f}"
                )
    tiers = results["secretsd"]["labelled@tiers"]
    assert isinstance(tiers, dict)
    print("  labelled corpus (corpus.py), secretsd by floor:")
    for floor, value in tiers.items():
        print(
            f"    secretsd@{floor:14} P {value['precision']:.3f}  R {value['recall']:.3f}  "
            f"F1 {value['f1']:.3f}"
        )
    print()
    print(f"hand-written real-world lines ({len(hand_labels)} labelled, scored alike):")
    for name, row in results.items():
        hand_score = row["hand"]
        assert isinstance(hand_score, dict)
        print(
            f"  {name:15} P {hand_score['precision']:.3f}  R {hand_score['recall']:.3f}  "
            f"F1 {hand_score['f1']:.3f}"
        )
    print()
    print(
        f"pre-commit hook, 20-file commit: median {hook['hook_median_s']:.3f} s wall "
        f"(max {hook['hook_max_s']:.3f} s); through the pre-commit framework: "
        f"{hook['framework_median_s']:.3f} s"
    )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "scan.json").write_text(
        json.dumps(
            {
                "results": results,
                "hook": hook,
                "tree_bytes": tree_bytes,
                "history_bytes": hist_bytes,
                "commits": commits,
                "big_history_commits": big_commits,
                "big_history_bytes": big_bytes,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
