"""Cost of policy evaluation with 1,000 policies of 20 rules each.

    python bench/authz.py [--decisions 20000]

Builds 1,000 policies x 20 rules (literal paths, ``*`` segments, ``**``
subtrees and denies, over a namespace of teams/apps/envs), then measures
per-decision cost for tokens bound to 1, 10 and all 1,000 policies:

- secretsd's compiled trie (``PolicySet``) on cold decisions (every path new);
- the same through ``AppState``-style memoisation (the per-request path);
- a naive linear scan over every rule, the obvious implementation, in the
  same run, as the comparison (ratio = linear / trie).

Also reports the time to compile the policy set (paid once per policy change).
Target: median per-request overhead under 0.2 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from secretsd.policy import Policy, PolicySet, Rule

TEAMS = [f"team{i}" for i in range(50)]
APPS = [f"app{i}" for i in range(40)]
ENVS = ["dev", "staging", "prod", "qa"]


def make_policies(count: int, rules_per: int, rng: random.Random) -> list[Policy]:
    policies = []
    for index in range(count):
        team = TEAMS[index % len(TEAMS)]
        rules = []
        for r in range(rules_per):
            app, env = rng.choice(APPS), rng.choice(ENVS)
            shape = r % 5
            if shape == 0:
                rules.append(Rule(f"{team}/{app}/{env}/db", frozenset({"read"})))
            elif shape == 1:
                rules.append(Rule(f"{team}/{app}/*/config", frozenset({"read", "list"})))
            elif shape == 2:
                rules.append(Rule(f"{team}/{app}/{env}/**", frozenset({"read", "write"})))
            elif shape == 3:
                rules.append(Rule(f"{team}/{app}-*/{env}/*", frozenset({"read"})))
            else:
                rules.append(Rule(f"{team}/{app}/prod/root-*", frozenset({"deny"})))
        policies.append(Policy(f"p{index}", tuple(rules)))
    return policies


def random_path(rng: random.Random) -> str:
    team, app, env = rng.choice(TEAMS), rng.choice(APPS), rng.choice(ENVS)
    leaf = rng.choice(["db", "config", "root-key", "api", "cache/redis"])
    return f"{team}/{app}/{env}/{leaf}"


def linear(policies: list[Policy], capability: str, path: str) -> bool:
    allowed = False
    for policy in policies:
        for rule in policy.rules:
            if rule.matches(path):
                if "deny" in rule.capabilities:
                    return False
                if capability in rule.capabilities or "admin" in rule.capabilities:
                    allowed = True
    return allowed


def timed(fn, items) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def measure(chosen: list[Policy], paths: list[str], decisions: int) -> None:
    started = time.perf_counter()
    compiled = PolicySet(chosen)
    compile_ms = (time.perf_counter() - started) * 1000
    trie = timed(lambda p: compiled.allows("read", p), paths)
    memo: dict[tuple[str, str], bool] = {}

    def memoised(p: str) -> bool:
        key = ("read", p)
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = compiled.allows("read", p)
        return hit

    for p in paths:  # warm, as a long-running worker would be
        memoised(p)
    memo_samples = timed(memoised, paths)
    sample = paths[: max(200, decisions // (20 if len(chosen) >= 1000 else 2))]
    lin = timed(lambda p: linear(chosen, "read", p), sample)
    for p in sample[:500]:
        assert linear(chosen, "read", p) == compiled.allows("read", p), p
    trie_p50, trie_p99 = summary(trie)
    memo_p50, _ = summary(memo_samples)
    lin_p50, _ = summary(lin)
    print(
        f"{len(chosen):>15} {compile_ms:>11.1f} {trie_p50:>12.1f} {trie_p99:>12.1f} "
        f"{memo_p50:>12.2f} {lin_p50:>14.1f} {lin_p50 / trie_p50:>11.0f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=20000)
    args = parser.parse_args()
    rng = random.Random(7)
    policies = make_policies(1000, 20, rng)
    paths = [random_path(rng) for _ in range(args.decisions)]
    print(
        f"{len(policies)} policies x 20 rules = {sum(len(p.rules) for p in policies)} rules; "
        f"{args.decisions} decisions on random paths"
    )
    print(
        f"{'token bound to':>15} {'compile ms':>11} {'trie p50 us':>12} {'trie p99 us':>12} "
        f"{'memo p50 us':>12} {'linear p50 us':>14} {'linear/trie':>12}"
    )
    for bound in (1, 10, 1000):
        measure(policies[:bound], paths, args.decisions)
    print("target: median per-request overhead < 200 us (trie p50 is the cold, worst case)")


if __name__ == "__main__":
    main()
