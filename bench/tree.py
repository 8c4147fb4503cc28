"""Build the large real tree for throughput: text files of the installed packages, ~40 MB.

Copied out of ``lib/pythonX.Y/site-packages`` on purpose: gitleaks skips such
vendored paths by default, and a benchmark where one scanner silently skips
the input measures nothing.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

TEXT = {
    ".py",
    ".pyi",
    ".c",
    ".h",
    ".js",
    ".json",
    ".md",
    ".rst",
    ".txt",
    ".toml",
    ".cfg",
    ".ini",
    ".yaml",
    ".yml",
    ".html",
    ".css",
    ".xml",
    ".sh",
    ".pyx",
    ".pxd",
    ".csv",
    ".f90",
}


def build(out: Path, limit: int = 40_000_000) -> dict[str, int]:
    source = Path(sysconfig.get_paths()["purelib"])
    if out.exists():
        shutil.rmtree(out)
    total = files = 0
    for path in sorted(source.rglob("*")):
        if total >= limit:
            break
        if not path.is_file() or path.is_symlink() or path.suffix not in TEXT:
            continue
        size = path.stat().st_size
        if size > 1_000_000:
            continue
        target = out / "pkgs" / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        total += size
        files += 1
    return {"files": files, "bytes": total}


if __name__ == "__main__":
    print(
        build(
            Path(__file__).parent / ".corpus" / "tree",
            int(sys.argv[1]) if len(sys.argv) > 1 else 40_000_000,
        )
    )
