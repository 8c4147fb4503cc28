"""A generated repository of 10,000+ commits with a realistic file mix, for history-scan speed.

    python bench/bighistory.py [commits]     # default 10,000, under bench/.corpus/bighistory

Content comes from real text files of the installed packages (Python, JS,
JSON, YAML, TOML, Markdown, ...): the repository starts from a few hundred of
them, and every commit then edits 1-4 files the way development does (a block
of lines replaced by lines of another real file, a file added, now and then a
file deleted), with a few merges of short-lived branches. About forty
synthetic credentials are added along the way and most are removed again.
The repository is written with ``git fast-import`` (seconds, not minutes) and
then repacked with fresh deltas (``git repack -adf``), as a normally committed and
``git gc``-ed repository or a clone would be packed.
"""

from __future__ import annotations

import random
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import evalset  # noqa: E402

TEXT = {
    ".py",
    ".js",
    ".ts",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".md",
    ".rst",
    ".cfg",
    ".txt",
    ".ini",
}


def _pool(limit: int = 3000) -> list[tuple[str, list[str]]]:
    source = Path(sysconfig.get_paths()["purelib"])
    files: list[tuple[str, list[str]]] = []
    for path in sorted(source.rglob("*")):
        if len(files) >= limit:
            break
        if path.suffix not in TEXT or not path.is_file() or path.is_symlink():
            continue
        if not 200 < path.stat().st_size < 60_000:
            continue
        try:
            lines = path.read_text("utf-8").splitlines(keepends=True)
        except (UnicodeDecodeError, OSError):
            continue
        files.append((path.relative_to(source).as_posix(), lines))
    return files


def build(out: Path, commits: int = 10_000, seed: int = 5) -> dict[str, int]:
    rng = random.Random(seed)
    values = evalset.Values(seed, "tune")
    pool = _pool()
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(out)], check=True)
    files: dict[str, list[str]] = {}
    for name, lines in rng.sample(pool, 300):
        files[f"src/{name}"] = list(lines)
    stream: list[bytes] = []
    planted = 0
    when = 1_600_000_000
    mark = 0

    def emit_commit(branch: str, message: str, changes: list[str], parent_merge: int = 0) -> int:
        nonlocal mark, when
        mark += 1
        when += rng.randrange(60, 7200)
        author = rng.choice(
            ["Ada Dev <ada@corp.test>", "Bo Ops <bo@corp.test>", "Cy QA <cy@corp.test>"]
        )
        msg = message.encode()
        head = [
            f"commit refs/heads/{branch}\n",
            f"mark :{mark}\n",
            f"author {author} {when} +0000\n",
            f"committer {author} {when} +0000\n",
            f"data {len(msg)}\n",
        ]
        stream.append("".join(head).encode() + msg + b"\n")
        if parent_merge:
            stream.append(f"merge :{parent_merge}\n".encode())
        for path in changes:
            if path in files:
                body = "".join(files[path]).encode()
                stream.append(f"M 100644 inline {path}\ndata {len(body)}\n".encode() + body + b"\n")
            else:
                stream.append(f"D {path}\n".encode())
        stream.append(b"\n")
        return mark

    first = emit_commit("main", "initial import", list(files))
    del first
    branch_tip = 0
    for index in range(commits - 1):
        changes: list[str] = []
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
            roll = rng.random()
            if roll < 0.12 or not files:
                name, lines = rng.choice(pool)
                path = f"src/{rng.choice(['app', 'lib', 'tools', 'docs'])}/{index}_{name.rsplit('/', 1)[-1]}"
                files[path] = list(lines)
            elif roll < 0.16 and len(files) > 200:
                path = rng.choice(list(files))
                del files[path]
            else:
                path = rng.choice(list(files))
                lines = files[path]
                donor = rng.choice(pool)[1]
                at = rng.randrange(0, max(1, len(lines)))
                size = rng.randrange(1, 12)
                start = rng.randrange(0, max(1, len(donor) - 40))
                lines[at : at + size] = donor[start : start + rng.randrange(2, 40)]
            if rng.random() < 0.004:  # a synthetic credential slips in
                planted += 1
                target = rng.choice(list(files))
                secret = values.pick([values.password(), values.api_key(), values.github()])
                files[target].append(f'API_TOKEN = "{secret}"\n')
                path = target
            changes.append(path)
        branch = "main"
        if index % 500 == 250:
            branch_tip = emit_commit("feature", f"feature work {index}", sorted(set(changes)))
            continue
        merge = branch_tip if index % 500 == 260 and branch_tip else 0
        emit_commit(branch, f"change {index}", sorted(set(changes)), merge)
        if merge:
            branch_tip = 0
    data = b"".join(stream)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=out, input=data, check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=out, check=True)
    # fast-import deltifies each blob against the blob written just before it (mostly
    # another file), and a plain `git gc` reuses those deltas: the pack came out 4x
    # larger than a normally committed and gc-ed repository's, and `git log -p` needed
    # ~2x the CPU to inflate it. `-f` computes the deltas afresh, as `git gc` does for
    # loose objects and as a server does for a clone.
    subprocess.run(["git", "repack", "-a", "-d", "-f", "-q"], cwd=out, check=True)
    subprocess.run(["git", "gc", "-q"], cwd=out, check=True)
    count = int(
        subprocess.run(
            ["git", "rev-list", "--all", "--count"],
            cwd=out,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return {"commits": count, "planted": planted, "stream_bytes": len(data)}


if __name__ == "__main__":
    print(build(HERE / ".corpus" / "bighistory", int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
