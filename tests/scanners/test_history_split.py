"""A history read by several `git log` processes, or in small chunks, finds exactly what one
`git log` read in large chunks finds: same findings, same commits, same order.

Long histories are split by ``git rev-list`` into groups of commits, one ``git log
--no-walk`` per group, read concurrently (``sources/git.py``); each stream is cut into
chunks on commit boundaries, or between two files of a commit too large for one chunk.
Any difference from the single stream would be a lost or misattributed secret.
"""

from __future__ import annotations

import base64
import os
import random
import subprocess
from pathlib import Path

import pytest
import secretsd.scanners.sources.git as git_source
from conftest import git
from secretsd.scanners.model import Finding
from secretsd.scanners.rules import load_default_rules
from secretsd.scanners.scan import ScanRequest, run_scan
from synth import aws_key_id, github_token, password
from test_engine import POSITIVES

Key = tuple[str, str, int, int, str, str, str, str]


def _key(finding: Finding) -> Key:
    commit = finding.commit
    assert commit is not None, f"{finding.path}:{finding.line} has no commit"
    # the fingerprint stands for the secret, so a failing assert prints no secret
    return (
        finding.rule,
        finding.path,
        finding.line,
        finding.column,
        finding.fingerprint,
        finding.confidence,
        commit.sha,
        commit.author,
    )


def _scan(
    repo: Path, monkeypatch: pytest.MonkeyPatch, *, workers: int, chunk: int = 1 << 20
) -> list[Key]:
    """`--history` at floor low with ``workers`` git processes (1: a single `git log`)."""
    monkeypatch.setattr(git_source, "_CHUNK", chunk)
    monkeypatch.setattr(git_source, "_PARALLEL_MIN_COMMITS", 2 if workers > 1 else 10**9)
    monkeypatch.setattr(git_source, "_workers", lambda: workers)
    result = run_scan(ScanRequest(target=repo, mode="history", confidence="low"))
    return [_key(f) for f in result.findings]


def _run(repo: Path, *args: str, date: int = 0, check: bool = True) -> None:
    stamp = f"{1_700_000_000 + date * 60} +0000"
    env = dict(os.environ, GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    subprocess.run(["git", *args], cwd=repo, env=env, check=check, capture_output=True)


def _commit(repo: Path, message: str, *, date: int) -> str:
    """Commit everything, at a distinct time (so every order is deterministic)."""
    git(repo, "add", "-A")
    _run(repo, "commit", "-q", "--allow-empty", "-m", message, date=date)
    return git(repo, "rev-parse", "HEAD").strip()


def _pem(seed: int) -> str:
    rng = random.Random(seed)
    body = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(1200))).decode()
    rows = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN PRIVATE KEY-----\n{rows}\n-----END PRIVATE KEY-----\n"


def _build(repo: Path) -> dict[str, str]:
    """About 90 commits over three branches: edits, merges (one with a resolved conflict),
    renames with and without edits, deletions, binary files, a mode change, odd paths, a
    Kubernetes Secret, a CSV credential column, private keys, a line without newline, and
    one commit larger than a small chunk. Returns the commits that must be reported."""
    rng = random.Random(12)
    when = iter(range(10_000))
    expected: dict[str, str] = {}
    words = [f"line {i} of some ordinary text, nothing to see here\n" for i in range(400)]

    def write(rel: str, text: str | bytes) -> None:
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)

    for i in range(12):
        write(f"src/mod{i}.py", "".join(rng.sample(words, 30)))
    _commit(repo, "initial import", date=next(when))
    for n in range(30):  # ordinary edits; a secret now and then
        rel = f"src/mod{rng.randrange(12)}.py"
        lines = (repo / rel).read_text().splitlines(keepends=True)
        at = rng.randrange(len(lines))
        lines[at : at + rng.randrange(1, 4)] = rng.sample(words, rng.randrange(1, 6))
        if n % 7 == 3:
            lines.insert(at, f'DB_PASSWORD = "{password(seed=100 + n)}"\n')
        write(rel, "".join(lines))
        sha = _commit(repo, f"edit {n}", date=next(when))
        if n % 7 == 3:
            expected[f"password {n}"] = sha
    write("deploy/token.sh", f"export GH_TOKEN={github_token(seed=31)}\n")
    expected["token"] = _commit(repo, "token", date=next(when))
    git(repo, "mv", "deploy/token.sh", "deploy/ci-token.sh")  # a pure rename
    _commit(repo, "rename", date=next(when))
    text = (repo / "deploy/ci-token.sh").read_text()
    (repo / "ci").mkdir()
    git(repo, "mv", "deploy/ci-token.sh", "ci/token.sh")
    write("ci/token.sh", "# moved and edited\n" + text + f"AWS_KEY={aws_key_id(seed=32)}\n")
    expected["rename+edit"] = _commit(repo, "rename and edit", date=next(when))
    (repo / "ci/token.sh").chmod(0o755)
    _commit(repo, "mode change", date=next(when))
    binary = bytes(range(256)) * 4 + f"password={password(seed=33)}\n".encode() + b"\0" * 64
    write("assets/blob.bin", binary)
    _commit(repo, "binary", date=next(when))
    write("assets/blob.bin", binary[::-1])
    _commit(repo, "binary edit", date=next(when))
    secret_b64 = base64.b64encode(password(seed=34).encode()).decode()
    write(
        "k8s/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n"
        f"type: Opaque\ndata:\n  password: {secret_b64}\n",
    )
    write(
        "fixtures/users.csv",
        f"id,email,password\n1,a@corp.test,{password(seed=35)}\n2,b@corp.test,{password(seed=36)}\n",
    )
    write("dir with space/ünïcode.env", f"API_PASSWORD={password(seed=37)}")  # no newline
    write("keys/server.key", _pem(38))
    expected["structured"] = _commit(repo, "k8s, csv, odd path, key", date=next(when))
    (repo / "keys/server.key").unlink()
    _commit(repo, "delete the key", date=next(when))

    git(repo, "checkout", "-q", "-b", "feature")
    for n in range(12):
        write(f"feature/f{n % 3}.md", "".join(rng.sample(words, 8)))
        if n == 5:
            write("feature/settings.toml", f'client_secret = "{password(seed=39)}"\n')
        sha = _commit(repo, f"feature {n}", date=next(when))
        if n == 5:
            expected["feature"] = sha
    git(repo, "checkout", "-q", "main")
    write("src/mod0.py", "main moves on\n")
    _commit(repo, "main moves on", date=next(when))
    _run(repo, "merge", "-q", "--no-ff", "-m", "merge feature", "feature", date=next(when))

    git(repo, "checkout", "-q", "-b", "conflict", "HEAD~1")
    write("src/mod0.py", "the branch's version\n")
    _commit(repo, "branch edit", date=next(when))
    git(repo, "checkout", "-q", "main")
    write("src/mod0.py", "main's version\n")
    _commit(repo, "main edit", date=next(when))
    _run(repo, "merge", "-q", "-m", "merge conflict", "conflict", date=next(when), check=False)
    write("src/mod0.py", "resolved\n")
    _commit(repo, "merge conflict", date=next(when))

    # One commit larger than a small chunk: cut between its files, the rest keeps its commit.
    for n in range(8):
        write(f"big/part{n}.txt", "".join(rng.sample(words, 60)))
    write("big/zz-last.env", f"SMTP_PASSWORD={password(seed=40)}\n")
    expected["huge commit"] = _commit(repo, "vendor a big directory", date=next(when))
    for n in range(25):  # more history after the merges, for the split to fall in
        write(f"src/mod{n % 12}.py", "".join(rng.sample(words, 20)))
        _commit(repo, f"late {n}", date=next(when))
    git(repo, "checkout", "-q", "-b", "side", "HEAD~10")  # a branch that is never merged
    write("side/notes.ini", f"password = {password(seed=41)}\n")
    expected["unmerged branch"] = _commit(repo, "side", date=next(when))
    git(repo, "checkout", "-q", "main")
    return expected


def test_split_and_chunked_history_equals_one_stream(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _build(repo)
    single = _scan(repo, monkeypatch, workers=1)
    reported = {sha for *_, sha, _author in single}
    for what, sha in expected.items():
        assert sha in reported, f"{what}: commit {sha} not reported"
    assert len(single) >= 14
    for workers in (2, 3, 4):
        assert _scan(repo, monkeypatch, workers=workers) == single, f"{workers} processes"
    # 1 KiB chunks: most commits get a chunk of their own, the big one is cut between files
    assert _scan(repo, monkeypatch, workers=1, chunk=256) == single, "small chunks"
    assert _scan(repo, monkeypatch, workers=3, chunk=256) == single, "small chunks, split"


def test_split_history_of_every_rule_example(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule examples and engine fixtures, one commit each (over 150 commits)."""
    when = 0
    for rule in load_default_rules():
        for index, example in enumerate(rule.must_match + rule.must_not_match):
            target = repo / "rules" / rule.id / str(index) / example.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(example.text)
        when += 1
        _commit(repo, rule.id, date=when)
    for index, (path, text) in enumerate(POSITIVES):
        target = repo / "engine" / str(index) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")
        when += 1
        _commit(repo, f"engine {index}", date=when)
    single = _scan(repo, monkeypatch, workers=1)
    assert len(single) > 150
    assert _scan(repo, monkeypatch, workers=2) == single
    assert _scan(repo, monkeypatch, workers=4, chunk=512) == single
