"""Build a real repository history for the history benchmark, offline.

The history is made of real code: every released version of ``rich`` and
``requests`` from the package index (``pip download``), committed in release
order, each release split over two commits. A few synthetic secrets are
added and deleted again along the way, so a history scan has something to
find that the final tree no longer shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from values import Gen

PACKAGES = ("rich", "requests")
KEEP = (".py", ".pyi", ".txt", ".md", ".rst", ".cfg", ".toml", ".json")


def _version_key(name: str) -> tuple[int, ...]:
    version = name.split("-")[1].removesuffix(".tar.gz").removesuffix(".zip")
    parts = []
    for piece in version.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def download(dest: Path) -> None:
    """``pip download`` every version of the packages (once; skipped when present)."""
    dest.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "index", "versions", package],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        versions = out.splitlines()[1].split(":", 1)[1].replace(" ", "").split(",")
        for version in versions:
            if any(
                p.name.startswith(f"{package}-{version}-")
                or p.name.startswith(f"{package}-{version}.")
                for p in dest.iterdir()
            ):
                continue
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    f"{package}=={version}",
                    "-d",
                    str(dest),
                ],
                capture_output=True,
                check=False,
            )


def _extract(archive: Path, package: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if ".dist-info/" in name or not name.endswith(KEEP):
                    continue
                parts = name.split("/")
                if archive.suffix == ".zip":
                    parts = parts[1:]
                files["/".join(parts)] = zf.read(name)
    else:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.isfile() and member.name.endswith(KEEP):
                    handle = tf.extractfile(member)
                    if handle is not None:
                        files["/".join(member.name.split("/")[1:])] = handle.read()
    return {f"{package}/{k}": v for k, v in files.items() if k}


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env
    ).stdout


def build(repo: Path, downloads: Path) -> dict[str, int]:
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Bench")
    _git(repo, "config", "user.email", "bench@example.test")
    g = Gen(99)
    archives = []
    for package in PACKAGES:
        found = [p for p in downloads.iterdir() if p.name.lower().startswith(package + "-")]
        by_version: dict[tuple[int, ...], Path] = {}
        for path in found:
            by_version.setdefault(_version_key(path.name), path)
            if path.suffix == ".whl":
                by_version[_version_key(path.name)] = path
        archives += [(package, by_version[v]) for v in sorted(by_version)]
    archives.sort(key=lambda item: (_version_key(item[1].name)[0], item[0]))
    commits = 0
    day = 1_500_000_000
    planted = 0
    for index, (package, archive) in enumerate(archives):
        try:
            files = _extract(archive, package)
        except (zipfile.BadZipFile, tarfile.TarError, OSError):
            continue
        target = repo / package
        if target.exists():
            shutil.rmtree(target)
        for rel, data in files.items():
            path = repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if index % 40 == 5:  # a secret that a later commit deletes again
            (repo / "deploy").mkdir(exist_ok=True)
            (repo / "deploy" / "settings_local.py").write_text(
                f'DB_PASSWORD = "{g.strong_password()}"\nGITHUB_TOKEN = "{g.github()}"\n'
            )
            planted += 2
        elif index % 40 == 9 and (repo / "deploy").exists():
            shutil.rmtree(repo / "deploy")
        changed = [line[3:] for line in _git(repo, "status", "--porcelain", "-uall").splitlines()]
        if not changed:
            continue
        pieces = 3 if len(changed) >= 9 else 2 if len(changed) >= 2 else 1
        size = -(-len(changed) // pieces)
        for part in (changed[i : i + size] for i in range(0, len(changed), size)):
            if not part:
                continue
            _git(repo, "add", "-A", "--", *part)
            day += 86_400
            env = dict(
                os.environ, GIT_AUTHOR_DATE=f"{day} +0000", GIT_COMMITTER_DATE=f"{day} +0000"
            )
            _git(repo, "commit", "-q", "-m", f"{archive.name} ({len(part)} files)", env=env)
            commits += 1
    return {"commits": commits, "planted": planted}


if __name__ == "__main__":
    here = Path(__file__).parent / ".corpus"
    if not (here / "dl" / "files").exists():
        download(here / "dl" / "files")
    print(build(here / "history", here / "dl" / "files"))
