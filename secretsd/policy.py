"""Policies: deny-by-default path globs with capabilities; a pure decision function.

A rule grants capabilities on a path pattern:

- ``*`` matches within one segment (``apps/*/db`` matches ``apps/web/db``;
  ``web-*`` matches ``web-1``);
- a trailing ``**`` matches the path itself and any depth below it
  (``apps/**`` matches ``apps``, ``apps/a`` and ``apps/a/b``), so ``**`` alone
  matches everything;
- ``deny`` is a capability too, and an explicit deny wins over any allow;
- ``admin`` implies every other capability on the paths it covers.

Nothing is allowed unless a rule allows it. Administration lives under the
reserved top-level folder ``sys`` (``sys/policies/<name>``, ``sys/tokens``,
``sys/approle/<role>``, ``sys/audit``), so the same rules delegate it.

A token may carry many policies, and there may be thousands of rules, so a
set of policies is compiled once into a :class:`PolicySet`: a trie over path
segments in which a lookup only visits the branches that can match, however
many rules exist elsewhere.
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
    "PolicySet",
    "Rule",
    "builtin_policies",
    "check_pattern",
    "validate_policy_name",
]

CAPABILITIES = ("read", "list", "write", "delete", "admin", "deny")
ADMIN_POLICY = "admin"
_PATTERN_SEGMENT = re.compile(r"[A-Za-z0-9._*-]+")
_POLICY_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_USABLE = frozenset({"read", "list", "write", "delete", "admin"})


@lru_cache(maxsize=65536)
def _segment_regex(segment: str) -> re.Pattern[str]:
    return re.compile(re.escape(segment).replace(r"\*", "[^/]*"))


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


def validate_policy_name(name: str) -> str:
    if not _POLICY_NAME.fullmatch(name):
        raise ValidationFailed(
            f"policy name {name[:80]!r} is not allowed; "
            "use 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return name


@dataclass(frozen=True, slots=True)
class Rule:
    path: str
    capabilities: frozenset[str]

    def matches(self, path: str) -> bool:
        segments = path.split("/")
        pattern = self.path.split("/")
        deep = pattern[-1] == "**"
        if deep:
            pattern = pattern[:-1]
            if len(segments) < len(pattern):
                return False
        elif len(segments) != len(pattern):
            return False
        return all(
            _segment_regex(p).fullmatch(s) is not None
            for p, s in zip(pattern, segments, strict=False)
        )

    def reaches_under(self, prefix: str) -> bool:
        """True if this rule matches some path strictly below ``prefix`` ('' = the top)."""
        segments = prefix.split("/") if prefix else []
        pattern = self.path.split("/")
        deep = pattern[-1] == "**"
        if deep:
            pattern = pattern[:-1]
        for index, segment in enumerate(segments):
            if index >= len(pattern):
                return deep  # the pattern ended above: only '**' continues below
            if _segment_regex(pattern[index]).fullmatch(segment) is None:
                return False
        return deep or len(pattern) > len(segments)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @classmethod
    def from_document(
        cls,
        name: str,
        rules: Sequence[Mapping[str, object]],
        lines: Sequence[int] | None = None,
    ) -> Policy:
        """Validate a policy document; the error names the rule (and line) and the reason.

        ``lines`` gives each rule's line in the file it came from, if any.
        """
        validate_policy_name(name)
        if not isinstance(rules, list | tuple) or not rules:
            raise ValidationFailed(
                f"policy {name!r} has no rules; give a list of {{path, capabilities}}"
            )
        parsed: list[Rule] = []
        for index, raw in enumerate(rules, start=1):
            where = f"policy {name!r} rule {index}"
            if lines is not None and index <= len(lines):
                where += f" (line {lines[index - 1]})"
            if not isinstance(raw, Mapping):
                raise ValidationFailed(
                    f"{where}: a rule is a mapping with 'path' and 'capabilities'"
                )
            unknown_fields = sorted(set(raw) - {"path", "capabilities"})
            if unknown_fields:
                raise ValidationFailed(
                    f"{where}: unknown field {', '.join(map(repr, unknown_fields))}; "
                    "a rule has 'path' and 'capabilities'"
                )
            path = raw.get("path")
            caps = raw.get("capabilities")
            if not isinstance(path, str):
                raise ValidationFailed(f"{where}: 'path' must be a string")
            problem = check_pattern(path)
            if problem is not None:
                raise ValidationFailed(f"{where} ({path!r}): {problem}")
            if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
                raise ValidationFailed(
                    f"{where} ({path!r}): 'capabilities' must be a non-empty list of "
                    f"{', '.join(CAPABILITIES)}"
                )
            unknown = sorted(set(caps) - set(CAPABILITIES))
            if unknown:
                raise ValidationFailed(
                    f"{where} ({path!r}): unknown capability {', '.join(map(repr, unknown))}; "
                    f"use {', '.join(CAPABILITIES)}"
                )
            parsed.append(Rule(path, frozenset(caps)))
        return cls(name, tuple(parsed))

    def to_document(self) -> list[dict[str, object]]:
        return [
            {"path": rule.path, "capabilities": sorted(rule.capabilities)} for rule in self.rules
        ]


def builtin_policies() -> dict[str, Policy]:
    """Policies that always exist: ``admin`` may do everything."""
    everything = frozenset(c for c in CAPABILITIES if c != "deny")
    return {ADMIN_POLICY: Policy(ADMIN_POLICY, (Rule("**", everything),))}


@dataclass
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    glob: dict[str, _Node] = field(default_factory=dict)
    here: set[str] = field(default_factory=set)  # capabilities of rules ending exactly here
    deep: set[str] = field(default_factory=set)  # capabilities of rules ending in '**' here


class PolicySet:
    """Many policies compiled into one segment trie for fast decisions."""

    def __init__(self, policies: Iterable[Policy]) -> None:
        self._root = _Node()
        self.rules: list[Rule] = []
        for policy in policies:
            for rule in policy.rules:
                self._add(rule)

    def _add(self, rule: Rule) -> None:
        self.rules.append(rule)
        node = self._root
        parts = rule.path.split("/")
        deep = parts[-1] == "**"
        if deep:
            parts = parts[:-1]
        for part in parts:
            table = node.glob if "*" in part else node.literal
            node = table.setdefault(part, _Node())
        (node.deep if deep else node.here).update(rule.capabilities)

    def capabilities(self, path: str) -> set[str]:
        """Union of the capabilities of every rule matching ``path`` ('deny' included)."""
        found: set[str] = set()
        segments = path.split("/")
        last = len(segments)
        frontier = [self._root]
        for depth in range(last + 1):
            following: list[_Node] = []
            for node in frontier:
                found |= node.deep
                if depth == last:
                    found |= node.here
                    continue
                segment = segments[depth]
                child = node.literal.get(segment)
                if child is not None:
                    following.append(child)
                for pattern, glob_child in node.glob.items():
                    if _segment_regex(pattern).fullmatch(segment) is not None:
                        following.append(glob_child)
            frontier = following
            if not frontier:
                break
        return found

    def allows(self, capability: str, path: str) -> bool:
        caps = self.capabilities(path)
        if "deny" in caps:
            return False
        return capability in caps or "admin" in caps

    # -- listing: show only what the caller may see ------------------------

    def may_list(self, prefix: str) -> bool:
        """Some rule grants 'list' (or 'admin') on something below ``prefix``."""
        if self._denies_subtree(prefix):
            return False
        return any(
            rule.capabilities & {"list", "admin"} and rule.reaches_under(prefix)
            for rule in self.rules
        )

    def sees(self, path: str, *, folder: bool) -> bool:
        """Whether a listing may show ``path``: a leaf the caller may use, or a folder
        with something usable below it."""
        if not folder:
            caps = self.capabilities(path)
            return "deny" not in caps and bool(caps & _USABLE)
        if self._denies_subtree(path):
            return False
        return any(rule.capabilities & _USABLE and rule.reaches_under(path) for rule in self.rules)

    def _denies_subtree(self, path: str) -> bool:
        """A deny rule ending in '**' covers ``path`` and everything below it."""
        segments = path.split("/") if path else []
        for rule in self.rules:
            if "deny" not in rule.capabilities or not rule.path.endswith("**"):
                continue
            head = rule.path.split("/")[:-1]
            if len(head) <= len(segments) and all(
                _segment_regex(p).fullmatch(s) is not None
                for p, s in zip(head, segments, strict=False)
            ):
                return True
        return False
