"""Which formats that a peer knows does secretsd miss? One generated sample per peer rule.

    python bench/peer_coverage.py [--peer gitleaks|credsweeper|detect-secrets]

The rule sets are read from the installed peers themselves: gitleaks' embedded config
(``gitleaks_coverage.samples``), CredSweeper's ``rules/config.yaml`` (pattern rules, the
two-part ``multi`` rules as two lines, the PEM rule as a whole armoured block, keyword
rules as ``<keyword> = "<value>"``) and detect-secrets' plugins (every regex of the
regex-based plugins' ``denylist``; one ``<key> = "<value>"`` per entry of the keyword
plugin's key list; the entropy plugins have no pattern to sample). Each sample is written
to its own file, the peer and secretsd (one run at floor ``low``, through ``peers.py``)
scan the directory, and for the samples the peer itself finds this prints how many
secretsd reports at ``medium`` (the default floor) and at ``low``, then the misses with
the sample's shape. Values are random synthetic strings: checksummed formats fail our
checksum checks, which is expected, and a keyword rule's random value under a bare
``key``/``api``/``auth`` name is what the generic rules deliberately leave alone.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import string
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gitleaks_coverage  # noqa: E402
import peers  # noqa: E402
import regex_sample  # noqa: E402

RANK = {"low": 0, "medium": 1, "high": 2}
ALNUM = string.ascii_letters + string.digits


def _value(rng: random.Random, size: int = 24) -> str:
    """A random mixed-case alphanumeric value with at least one digit and both cases."""
    body = rng.choices(ALNUM, k=size - 3)
    return (
        "".join(body)
        + rng.choice(string.ascii_uppercase)
        + rng.choice(string.ascii_lowercase)
        + rng.choice(string.digits)
    )


def _assignment(keyword_regex: str, rng: random.Random) -> str:
    key = regex_sample.sample(keyword_regex, rng, re.IGNORECASE) or "secret"
    return f'{key} = "{_value(rng)}"'


def _pem(header: str, rng: random.Random) -> str:
    lines = ["".join(rng.choices(ALNUM + "+/", k=64)) for _ in range(12)]
    kind = header.removeprefix("-----BEGIN").removesuffix("-----")
    return "\n".join([header, *lines, f"-----END{kind}-----"])


def credsweeper_samples(rng: random.Random) -> dict[str, tuple[str, str]]:
    """rule name -> (file suffix, sample) for CredSweeper's bundled rules."""
    import credsweeper

    config = Path(credsweeper.__file__).parent / "rules" / "config.yaml"
    out: dict[str, tuple[str, str]] = {}
    for rule in yaml.safe_load(config.read_text()):
        name, kind, values = str(rule["name"]), rule["type"], [str(v) for v in rule["values"]]
        if kind == "keyword":
            out[name] = (".py", _assignment(values[0], rng))
            continue
        parts = [regex_sample.sample(v, rng) for v in values]
        if any(p is None for p in parts):
            continue
        if kind == "pem_key":
            out[name] = (".txt", _pem(str(parts[0]), rng))
        elif kind == "multi":
            out[name] = (".txt", f"{parts[0]}\n{parts[1]}")
        else:
            for i, text in enumerate(parts):  # a rule with several patterns: each its own sample
                out[name if len(parts) == 1 else f"{name} #{i + 1}"] = (".txt", str(text))
    return out


def detect_secrets_samples(rng: random.Random) -> dict[str, tuple[str, str]]:
    """plugin (and pattern number) -> (file suffix, sample) for detect-secrets' plugins."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins import keyword

    out: dict[str, tuple[str, str]] = {}
    plugin: type
    for plugin in get_mapping_from_secret_type_to_class().values():
        denylist = getattr(plugin, "denylist", None)
        if not isinstance(denylist, list | tuple):
            continue
        for i, pattern in enumerate(denylist):
            text = regex_sample.sample(pattern.pattern, rng, pattern.flags)
            if text is not None:
                name = plugin.__name__ if len(denylist) == 1 else f"{plugin.__name__} #{i + 1}"
                out[name] = (".txt", text)
    for key in keyword.DENYLIST:
        out[f"KeywordDetector {key}"] = (".py", _assignment(key, rng))
    return out


def gitleaks_samples(rng: random.Random) -> dict[str, tuple[str, str]]:
    return {name: (".txt", text) for name, text in gitleaks_coverage.samples(rng).items()}


SAMPLERS = {
    "gitleaks": gitleaks_samples,
    "credsweeper": credsweeper_samples,
    "detect-secrets": detect_secrets_samples,
}


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def cover(peer: str, rules: dict[str, tuple[str, str]]) -> dict[str, object]:
    """Scan one file per sample with ``peer`` and secretsd; the peer's finds and our tiers."""
    work = Path(tempfile.mkdtemp(prefix="peercov-"))
    try:
        by_file: dict[str, str] = {}
        for name, (suffix, text) in rules.items():
            path = f"{_stem(name)}{suffix}"
            (work / path).write_text("x = 1\n" + text + "\n", encoding="utf-8")
            by_file[path] = name
        theirs = {by_file[p] for p, _ in peers.SCANNERS[peer](work).findings if p in by_file}
        tiers: dict[str, str] = {}
        for (path, _), tier in peers.ours(work).tiers.items():
            rule = by_file.get(path)
            if rule and RANK[tier] > RANK.get(tiers.get(rule, ""), -1):
                tiers[rule] = tier
    finally:
        shutil.rmtree(work)
    found = sorted(theirs)
    return {
        "sampled": len(rules),
        "peer": len(found),
        "medium": sum(1 for n in found if RANK.get(tiers.get(n, ""), -1) >= RANK["medium"]),
        "low": sum(1 for n in found if n in tiers),
        "misses": [(n, tiers.get(n, "")) for n in found if RANK.get(tiers.get(n, ""), -1) < 1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=sorted(SAMPLERS), action="append")
    args = parser.parse_args()
    for peer in args.peer or list(SAMPLERS):
        rules = SAMPLERS[peer](random.Random(7))
        result = cover(peer, rules)
        print(
            f"{peer}: {result['sampled']} rule samples, the peer finds {result['peer']}; "
            f"secretsd finds {result['medium']} of those at medium, {result['low']} at low"
        )
        misses = result["misses"]
        assert isinstance(misses, list)
        print(f"  missed at medium ({len(misses)}; '(low)' = reported only at low):")
        for name, tier in misses:
            shape = rules[name][1].splitlines()[0 if "multi" not in name.lower() else -1]
            mark = "(low)" if tier == "low" else ""
            print(f"    {name:48} {mark:5} {shape[:40]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
