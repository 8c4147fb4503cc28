"""Policy semantics as a table, the trie against a naive evaluator, and validation errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secretsd.errors import ValidationFailed
from secretsd.policy import Policy, PolicySet, Rule, check_pattern


def allowed(rules: list[tuple[str, list[str]]], capability: str, path: str) -> bool:
    policy = Policy("p", tuple(Rule(p, frozenset(c)) for p, c in rules))
    return PolicySet([policy]).allows(capability, path)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("apps/web/*", "apps/web/db", True),
        ("apps/web/*", "apps/web", False),
        ("apps/web/*", "apps/web/db/x", False),
        ("apps/*/db", "apps/web/db", True),
        ("apps/*/db", "apps/web/api", False),
        ("apps/web-*", "apps/web-1", True),
        ("apps/web-*", "apps/api-1", False),
        ("apps/**", "apps", True),
        ("apps/**", "apps/a/b/c", True),
        ("apps/**", "application", False),
        ("**", "anything/at/all", True),
        ("apps/web/db", "apps/web/db", True),
        ("apps/web/db", "apps/web/db2", False),
        ("a.b/*", "a.b/c", True),
        ("a.b/*", "aXb/c", False),  # '.' is literal
    ],
)
def test_pattern_table(pattern: str, path: str, matches: bool) -> None:
    assert Rule(pattern, frozenset({"read"})).matches(path) is matches
    assert allowed([(pattern, ["read"])], "read", path) is matches


def test_deny_by_default_deny_wins_and_admin_implies_all() -> None:
    assert not allowed([], "read", "a")
    rules = [("apps/**", ["read", "write"]), ("apps/prod/**", ["deny"])]
    assert allowed(rules, "read", "apps/dev/db")
    assert not allowed(rules, "read", "apps/prod/db")
    assert not allowed(rules, "list", "apps/dev/db")
    assert allowed([("x/**", ["admin"])], "delete", "x/y")
    assert not allowed([("x/**", ["admin"]), ("x/y", ["deny"])], "read", "x/y")


def test_listing_visibility() -> None:
    rules = PolicySet(
        [
            Policy(
                "p",
                (
                    Rule("apps/web/*", frozenset({"read", "list"})),
                    Rule("apps/secret/**", frozenset({"deny"})),
                    Rule("apps/**", frozenset({"list"})),
                ),
            )
        ]
    )
    assert rules.may_list("") and rules.may_list("apps") and rules.may_list("apps/web")
    assert not rules.may_list("apps/secret")
    assert rules.sees("apps/web", folder=True)
    assert not rules.sees("apps/secret", folder=True)
    assert rules.sees("apps/web/db", folder=False)
    assert not rules.may_list("other")
    narrow = PolicySet([Policy("n", (Rule("apps/web/*", frozenset({"read"})),))])
    assert not narrow.may_list("apps/web")  # read alone does not grant listing
    assert narrow.sees("apps", folder=True) and not narrow.sees("other", folder=True)


segment = st.sampled_from(["a", "b", "web", "db", "x1"])
pattern_segment = st.sampled_from(["a", "b", "web", "db", "*", "w*", "*b", "x*1"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    parts = draw(st.lists(pattern_segment, min_size=0, max_size=3))
    if draw(st.booleans()) or not parts:
        parts.append("**")
    return "/".join(parts)


@settings(max_examples=300)
@given(
    rules=st.lists(
        st.tuples(
            patterns(), st.sets(st.sampled_from(["read", "write", "deny", "admin"]), min_size=1)
        ),
        max_size=6,
    ),
    path=st.lists(segment, min_size=1, max_size=4).map("/".join),
    capability=st.sampled_from(["read", "write", "list"]),
)
def test_trie_agrees_with_naive_evaluation(
    rules: list[tuple[str, set[str]]], path: str, capability: str
) -> None:
    matching = [caps for pattern, caps in rules if Rule(pattern, frozenset(caps)).matches(path)]
    naive = not any("deny" in caps for caps in matching) and any(
        capability in caps or "admin" in caps for caps in matching
    )
    assert allowed([(p, sorted(c)) for p, c in rules], capability, path) is naive


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ([], "has no rules"),
        (
            [{"path": "a/**/b", "capabilities": ["read"]}],
            "rule 1 (line 3) ('a/**/b'): '**' may only be the last",
        ),
        (
            [{"path": "a", "capabilities": ["read"]}, {"path": "/b", "capabilities": ["read"]}],
            "rule 2",
        ),
        ([{"path": "a", "capabilities": ["reed"]}], "unknown capability 'reed'"),
        ([{"path": "a", "capabilities": []}], "non-empty list"),
        ([{"path": "a", "caps": ["read"]}], "unknown field 'caps'"),
        ([{"path": "a b", "capabilities": ["read"]}], "segment 'a b' is not allowed"),
        (["a"], "a rule is a mapping"),
    ],
)
def test_malformed_policies_name_rule_and_reason(rules: list[object], fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        Policy.from_document("p", rules, lines=[3, 7])  # type: ignore[arg-type]
    assert fragment in caught.value.message


def test_line_numbers_appear_when_known() -> None:
    with pytest.raises(ValidationFailed, match=r"rule 2 \(line 7\)"):
        Policy.from_document(
            "p",
            [{"path": "a", "capabilities": ["read"]}, {"path": "b", "capabilities": ["x"]}],
            lines=[3, 7],
        )
    assert check_pattern("**") is None
    with pytest.raises(ValidationFailed, match="policy name"):
        Policy.from_document("bad name", [{"path": "a", "capabilities": ["read"]}])
