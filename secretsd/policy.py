"""Policies: deny-by-default path globs with capabilities; a pure decision function.

A rule grants capabilities on a path pattern:

- ``*`` matches within one segment (``apps/*/db`` matches ``apps/web/db``);
- a trailing ``**`` matches any depth below (``apps/**`` matches ``apps/a/b``,
  and ``apps`` itself), so ``**`` alone matches everything;
- ``deny`` is a capability too, and an explicit deny wins over any allow.

Nothing is allowed unless a rule allows it. Deciding is a pure function of
(policies, capability, path) so it can be cached and tested as a table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from secretsd.errors import ValidationFailed

__all__ = [
    "ADMIN_POLICY",
    "CAPABILITIES",
    "Policy",
    "Rule",
    "builtin_policies",
    "decide",
]

CAPABILITIES = ("read", "list", "write", "delete", "admin", "deny")
ADMIN_POLICY = "admin"
_PATTERN_SEGMENT = re.compile(r"[A-Za-z0-9._*-]+")


@lru_cache(maxsize=65536)
def _compile(pattern: str) -> re.Pattern[str]:
    if pattern == "**":
        return re.compile(r".*", re.DOTALL)
    parts = pattern.split("/")
    deep = parts[-1] == "**"
    if deep:
        parts = parts[:-1]
    regex = "/".join(re.escape(p).replace(r"\*", "[^/]*") for p in parts)
    if deep:
        regex += "(?:/.*)?"
    return re.compile(regex, re.DOTALL)


def check_pattern(pattern: str) -> str | None:
    """Say what is wrong with a rule's path pattern, or None."""
    if pattern == "**":
        return None
    if not pattern or pattern.startswith("/") or pattern.endswith("/"):
        return "a path pattern is non-empty and has no leading or trailing '/'"
    segments = pattern.split("/")
    for index, segment in enumerate(segments, start=1):
        if segment == "**":
            if index != len(segments):
                return "'**' may only be the last segment"
            continue
        if "**" in segment:
            return f"segment {segment!r}: '**' must be a whole segment (write '*' within one)"
        if segment in (".", "..") or not _PATTERN_SEGMENT.fullmatch(segment):
            return f"segment {segment!r} is not allowed; use letters, digits, '.', '_', '-' and '*'"
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    path: str
    capabilities: frozenset[str]

    def matches(self, path: str) -> bool:
        return _compile(self.path).fullmatch(path) is not None


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @classmethod
    def from_document(cls, name: str, rules: Sequence[Mapping[str, object]]) -> Policy:
        """Validate a policy document; the error names the rule and the reason."""
        parsed: list[Rule] = []
        for index, raw in enumerate(rules, start=1):
            path = raw.get("path")
            caps = raw.get("capabilities")
            if not isinstance(path, str):
                raise ValidationFailed(f"policy {name!r} rule {index}: 'path' must be a string")
            problem = check_pattern(path)
            if problem is not None:
                raise ValidationFailed(f"policy {name!r} rule {index} ({path!r}): {problem}")
            if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
                raise ValidationFailed(
                    f"policy {name!r} rule {index} ({path!r}): 'capabilities' must be a "
                    f"non-empty list of {', '.join(CAPABILITIES)}"
                )
            unknown = sorted(set(caps) - set(CAPABILITIES))
            if unknown:
                raise ValidationFailed(
                    f"policy {name!r} rule {index} ({path!r}): unknown capability "
                    f"{', '.join(map(repr, unknown))}; use {', '.join(CAPABILITIES)}"
                )
            parsed.append(Rule(path, frozenset(caps)))
        return cls(name, tuple(parsed))


def builtin_policies() -> dict[str, Policy]:
    """Policies that always exist: ``admin`` may do everything."""
    everything = frozenset(c for c in CAPABILITIES if c != "deny")
    return {ADMIN_POLICY: Policy(ADMIN_POLICY, (Rule("**", everything),))}


def decide(policies: Iterable[Policy], capability: str, path: str) -> bool:
    """True only if some rule grants ``capability`` on ``path`` and no rule denies it.

    ``admin`` implies every other capability on the paths it covers.
    """
    allowed = False
    for policy in policies:
        for rule in policy.rules:
            if not rule.matches(path):
                continue
            if "deny" in rule.capabilities:
                return False
            if capability in rule.capabilities or "admin" in rule.capabilities:
                allowed = True
    return allowed
