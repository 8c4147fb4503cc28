"""The environment lookups the context check knows are the ones the env-fallback-default rule
reads: two spellings of one list, so a lookup added to one and not the other fails here."""

from __future__ import annotations

import pytest
from secretsd.scanners import context
from secretsd.scanners.engine import Engine
from secretsd.scanners.model import Fragment
from secretsd.scanners.rules import load_default_rules, merge_rules

#: One real spelling of every lookup in ``context.ENV_LOOKUP_CALLS`` and
#: ``ENV_LOOKUP_INDEXES``: the text before the variable's name, and how its default follows.
SPELLINGS = {
    r"getenv": ('$pw = getenv("', '")', " ?: ", ""),
    r"environ\.get": ('pw = os.environ.get("', '"', ", ", ")"),
    r"getProperty": ('String pw = System.getProperty("', '"', ", ", ")"),
    r"getOrDefault": ('String pw = System.getenv().getOrDefault("', '"', ", ", ")"),
    r"getOrElse": ('val pw = sys.env.getOrElse("', '"', ", ", ")"),
    r"GetEnvironmentVariable": ('var pw = Environment.GetEnvironmentVariable("', '")', " ?? ", ""),
    r"\benv": ("'password' => env('", "'", ", ", ")"),
    r"ENV\.fetch": ('password = ENV.fetch("', '"', ", ", ")"),
    r"Deno\.env\.get": ('const pw = Deno.env.get("', '")', " ?? ", ""),
    r"env::var": ('let pw = env::var("', '")', ".unwrap_or(", ")"),
    r"process\.env\.": ("const pw = process.env.", "", " || ", ""),
    r"import\.meta\.env\.": ("const pw = import.meta.env.", "", " ?? ", ""),
    r"process\.env\[[\"']": ('const pw = process.env["', '"]', " || ", ""),
    r"\bENV\[[\"']": ('password: ENV["', '"]', " || ", ""),
    r"\benvironment\[[\"']": ('let pw = ProcessInfo.processInfo.environment["', '"]', " ?? ", ""),
}
RULE = next(rule for rule in load_default_rules() if rule.id == "env-fallback-default")
ALONE = Engine(merge_rules([RULE], []))


def test_every_lookup_has_a_spelling() -> None:
    assert set(SPELLINGS) == set(context.ENV_LOOKUP_CALLS) | set(context.ENV_LOOKUP_INDEXES)


@pytest.mark.parametrize("lookup", sorted(SPELLINGS))
def test_the_rule_and_the_context_check_read_the_same_lookup(lookup: str) -> None:
    opening, after_name, joint, closing = SPELLINGS[lookup]
    # the context check: the text before the variable's name is a lookup
    assert context._ENV_LOOKUP_BEFORE.search(opening), opening
    # the rule: the lookup's literal default is reported
    text = f"{opening}DB_PASSWORD{after_name}{joint}'Wq9x7Lm2vRt'{closing};\n"
    found = ALONE.scan(Fragment("src/settings.code", text.encode()))
    assert [f.rule for f in found] == ["env-fallback-default"], text
