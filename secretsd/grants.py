"""Nobody grants what they do not hold: the one check behind every route that grants.

A caller grants access whenever it issues a token, writes or updates an
AppRole or Kubernetes role (their logins mint tokens with the role's
policies), issues a secret-id, writes or deletes a policy (every holder of the
policy gets the new rules), or changes what a login trusts. Each such route
asks :func:`not_held` whether the caller's own rules cover everything the
grant would give; the answer lists what is beyond them, for the error message.

"Covered" is decided conservatively, rule by rule, so a refusal may be
stricter than a full set computation but an allowed grant never gives more:

- every allowing rule of the grant must be subsumed by one allowing rule of
  the caller (its path pattern matches every path the granted one matches,
  and its capabilities include the granted ones, ``admin`` including all);
- every ``deny`` of the caller that may overlap a granted rule must be
  carried by the grant too (a deny in the grant whose pattern subsumes it),
  otherwise the grantee could reach what the caller is denied.

Denies in the grant only take access away and need nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from secretsd.policy import Policy, Rule

__all__ = ["ALL_USABLE", "may_overlap", "not_held", "subsumes"]

ALL_USABLE = frozenset({"read", "list", "write", "delete", "admin"})
_PLACEHOLDER = "\x00"  # stands for a '*' of the narrower pattern; no literal matches it


@lru_cache(maxsize=16384)
def _segment_contains(wide: str, narrow: str) -> bool:
    """Every string ``narrow`` (a one-segment glob) matches is matched by ``wide``.

    Sound for globs whose only wildcard is ``*``: a ``*`` of the narrow
    pattern becomes a symbol that only a ``*`` of the wide one can absorb.
    """
    if wide == narrow or wide == "*":
        return True
    regex = re.escape(wide).replace(r"\*", ".*")
    return re.fullmatch(regex, narrow.replace("*", _PLACEHOLDER), flags=re.DOTALL) is not None


def _split(pattern: str) -> tuple[list[str], bool]:
    parts = pattern.split("/")
    if parts[-1] == "**":
        return parts[:-1], True
    return parts, False


def subsumes(wide: str, narrow: str) -> bool:
    """Every path ``narrow`` matches is matched by ``wide`` (path patterns of policy rules)."""
    wide_head, wide_deep = _split(wide)
    narrow_head, narrow_deep = _split(narrow)
    if wide_deep:
        if len(narrow_head) < len(wide_head):
            return False
    elif narrow_deep or len(narrow_head) != len(wide_head):
        return False
    return all(_segment_contains(w, n) for w, n in zip(wide_head, narrow_head, strict=False))


def _segments_may_meet(a: str, b: str) -> bool:
    if "*" in a and "*" in b:
        return True
    if "*" in a:
        return _segment_contains(a, b)
    if "*" in b:
        return _segment_contains(b, a)
    return a == b


def may_overlap(first: str, second: str) -> bool:
    """Some path may match both patterns (True unless provably disjoint)."""
    head_a, deep_a = _split(first)
    head_b, deep_b = _split(second)
    if not deep_a and not deep_b and len(head_a) != len(head_b):
        return False
    if not deep_a and len(head_a) < len(head_b):
        return False
    if not deep_b and len(head_b) < len(head_a):
        return False
    return all(_segments_may_meet(a, b) for a, b in zip(head_a, head_b, strict=False))


def _describe(rule: Rule) -> str:
    return f"{rule.path!r} {sorted(rule.capabilities)}"


def not_held(held: Sequence[Rule], granted: Iterable[Policy]) -> list[str]:
    """What of ``granted`` goes beyond the ``held`` rules (empty: the grant is allowed)."""
    allows = [r for r in held if r.capabilities - {"deny"}]
    denies = [r for r in held if "deny" in r.capabilities]
    missing: list[str] = []
    granted_rules = [(policy.name, rule) for policy in granted for rule in policy.rules]
    granted_denies = [rule.path for _, rule in granted_rules if "deny" in rule.capabilities]
    for name, rule in granted_rules:
        wanted = rule.capabilities - {"deny"}
        if not wanted:
            continue
        covered = any(
            subsumes(mine.path, rule.path)
            and ("admin" in mine.capabilities or wanted <= mine.capabilities)
            for mine in allows
        )
        if covered:
            covered = all(
                any(subsumes(kept, deny.path) for kept in granted_denies)
                for deny in denies
                if may_overlap(deny.path, rule.path)
            )
        if not covered:
            missing.append(f"policy {name!r} rule {_describe(rule)}")
    return missing
