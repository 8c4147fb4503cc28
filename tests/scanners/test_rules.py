"""Every rule's examples, run through the real engine (the rules file checks itself)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from secretsd.scanners.config import ScanConfig
from secretsd.scanners.engine import Engine
from secretsd.scanners.model import Fragment
from secretsd.scanners.rules import Rule, RuleSet, load_default_rules, merge_rules, parse_rules

from secretsd.errors import ConfigError

RULES = load_default_rules()


def _ids(rule: Rule) -> str:
    return rule.id


def test_default_rules_load_and_have_examples() -> None:
    assert len(RULES) >= 50
    assert len({r.id for r in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.must_match, f"{rule.id} has no examples.match"
        assert rule.must_not_match, f"{rule.id} has no examples.no_match"
        assert rule.keywords or rule.kind == "private-key", rule.id
        assert rule.compiled.pattern  # bundled rules compile lazily: force it here
        assert rule.group in rule.compiled.groupindex or isinstance(rule.group, int)
        assert rule.allow_compiled is not None


@pytest.mark.parametrize("rule", RULES, ids=_ids)
def test_rule_examples_alone(rule: Rule) -> None:
    """Each must-match example is found by the rule on its own (pure-re matcher)."""
    alone = Engine(RuleSet((rule,)), matcher="re")
    for example in rule.must_match:
        found = alone.scan(Fragment(example.path, example.text.encode()))
        assert [f.rule for f in found] == [rule.id], f"{rule.id} misses example {example.path}"
        if example.confidence is not None:
            assert found[0].confidence == example.confidence, (
                f"{rule.id}: example {example.text[:40]!r} is {found[0].confidence}, "
                f"documented as {example.confidence}"
            )


@pytest.mark.parametrize("rule", RULES, ids=_ids)
def test_rule_examples_with_all_rules(rule: Rule, engine: Engine) -> None:
    """With every rule loaded (Hyperscan matcher), matches are found and non-matches are not."""
    for example in rule.must_match:
        found = engine.scan(Fragment(example.path, example.text.encode()))
        assert found, f"{rule.id}: nothing found in a must-match example"
    for example in rule.must_not_match:  # not reported at the default floor (medium)
        found = engine.scan(Fragment(example.path, example.text.encode()))
        reported = {f.rule for f in found if f.confidence != "low"}
        assert rule.id not in reported, f"{rule.id} matched a no_match example"


def test_bad_regex_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"rule 'broken' in x\.toml: regex does not compile"):
        Rule(
            **parse_rules('[[rules]]\nid = "broken"\ndescription = "d"\nregex = "("\n', "x.toml")[0]
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rules]]\nid = "Bad Id"\n', "'id' must be"),
        ('[[rules]]\nid = "ok"\nregexp = "x"\n', "unknown field"),
        ('[[rules]]\nid = "ok"\nkind = "magic"\n', "kind must be one of"),
        ("rules = 3\n", "array of tables"),
        ("[[rules]\n", "not valid TOML"),
        (
            '[[rules]]\nid = "twice"\nregex = "a"\n[[rules]]\nid = "twice"\nregex = "b"\n',
            r"rule 'twice' in x\.toml: the id is used by \[\[rules\]\] tables 1 and 2",
        ),
    ],
)
def test_rule_shape_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_rules(text, "x.toml")


def test_bad_paths_pattern_is_a_config_error_and_paths_limit_the_files() -> None:
    with pytest.raises(ConfigError, match=r"rule 'keyfile' in x\.toml: paths pattern"):
        Rule(
            **parse_rules(
                '[[rules]]\nid = "keyfile"\ndescription = "d"\nregex = "(?P<secret>k+)"\n'
                'paths = "(["\n',
                "x.toml",
            )[0]
        )
    rule = Rule(id="keyfile", description="d", regex="(?P<secret>k{8})", paths=r"\.key$")
    assert rule.applies_to("config/master.key") and not rule.applies_to("README.md")


def test_unknown_checksum_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown checksum"):
        Rule(id="x1", description="d", regex="a(?P<secret>b+)", checksum="md5")


def test_override_disable_and_extend() -> None:
    extra = parse_rules(
        '[[rules]]\nid = "generic-password"\nmin_length = 12\n'
        '[[rules]]\nid = "acme-token"\ndescription = "Acme"\n'
        "regex = '''\\b(?P<secret>acme_[a-z0-9]{20})\\b'''\nkeywords = [\"acme_\"]\n",
        "team.toml",
    )
    merged = merge_rules(RULES, extra, disabled=["jwt"])
    by_id = {r.id: r for r in merged}
    assert by_id["generic-password"].min_length == 12
    assert "acme-token" in by_id
    assert "jwt" not in by_id
    with pytest.raises(ConfigError, match="unknown rule"):
        merge_rules(RULES, [], disabled=["no-such-rule"])
    with pytest.raises(ConfigError, match="a new rule needs"):
        merge_rules(RULES, parse_rules('[[rules]]\nid = "new-one"\n', "t.toml"))


def test_config_file_rules_and_errors(tmp_path: Path) -> None:
    (tmp_path / ".secretsd-scan.toml").write_text(
        '[scan]\ndisabled_rules = ["jwt"]\nreport_test_paths = false\n'
        '[allowlist]\npaths = ["docs/**"]\n'
    )
    config = ScanConfig.load(tmp_path)
    assert "jwt" not in {r.id for r in config.rules}
    assert config.report_test_paths is False
    assert not config.path_allowed("docs/a/b.md")
    assert config.path_allowed("src/docs.py")
    (tmp_path / "bad.toml").write_text("[scan]\nmax_file_size = -1\n")
    with pytest.raises(ConfigError, match="max_file_size"):
        ScanConfig.load(tmp_path, tmp_path / "bad.toml")
    (tmp_path / "bad2.toml").write_text("[scanner]\n")
    with pytest.raises(ConfigError, match="unknown section"):
        ScanConfig.load(tmp_path, tmp_path / "bad2.toml")
    with pytest.raises(ConfigError, match="cannot read scan config"):
        ScanConfig.load(tmp_path, tmp_path / "missing.toml")


def test_the_cache_key_covers_the_prefilter() -> None:
    """Hyperscan compiles a rule's prefilter: a changed prefilter must not reuse a cached
    database (a stale one kept a rule on the slow whole-chunk fallback)."""
    rule = next(r for r in RULES if r.prefilter)
    changed = dataclasses.replace(rule, prefilter=rule.prefilter + "|unlikely-literal-x")
    assert RuleSet((rule,)).fingerprint() != RuleSet((changed,)).fingerprint()


def test_every_bundled_rule_compiles_in_hyperscan() -> None:
    """A rule Hyperscan refuses runs in Python over whole chunks wherever its keywords occur:
    on a long history that cost seconds. Bundled rules give such patterns a ``prefilter``."""
    hyperscan = pytest.importorskip("hyperscan")
    refused = []
    for rule in RULES:
        flag = hyperscan.HS_FLAG_MULTILINE | (hyperscan.HS_FLAG_DOTALL if rule.multiline else 0)
        try:
            hyperscan.Database().compile(
                expressions=[(rule.prefilter or rule.regex).encode()],
                ids=[0],
                elements=1,
                flags=[flag],
            )
        except hyperscan.HyperscanError:
            refused.append(rule.id)
    assert refused == []


class _EverywhereMatcher:
    """The slow path: every rule's regex over the whole text, no prefilter, no windows."""

    name = "everywhere"

    def __init__(self, rules: int) -> None:
        self._rules = rules

    def windows(self, data: bytes) -> dict[int, list[tuple[int, int]]]:
        return {index: [(0, len(data))] for index in range(self._rules)}


def test_the_matcher_finds_what_every_regex_finds_everywhere(engine: Engine) -> None:
    """Hyperscan scans each rule's prefilter (or its regex, as Hyperscan reads it), and the
    regex then runs only in the windows around the hits: a fast path for running every regex
    over the whole text. Over every rule's examples, matching and not (the shapes the rules
    are about and the near misses beside them), both paths must report the same findings."""
    slow = Engine(engine.rules, matcher="re")
    slow.matcher = _EverywhereMatcher(len(slow._rules))
    differ = []
    for rule in RULES:
        for example in (*rule.must_match, *rule.must_not_match):
            fragment = Fragment(example.path, example.text.encode())
            fast_found = {(f.rule, f.line, f.confidence) for f in engine.scan(fragment)}
            slow_found = {(f.rule, f.line, f.confidence) for f in slow.scan(fragment)}
            if fast_found != slow_found:
                differ.append((rule.id, sorted(fast_found ^ slow_found)))
    assert differ == []


@pytest.mark.timeout(60)
def test_pathological_values_are_judged_without_backtracking(engine: Engine) -> None:
    """Long runs of one character class in a credential-named value: a nested quantifier in
    a context check (``(\\d+[-_.]?)+``) once took minutes on such a value, and a tree or
    history scan hung on it."""
    from secretsd.scanners import context

    runs = ["1" * 150 + "x", "test_" * 30 + "!", "1-" * 70 + "x", "a" * 150 + "1", "9." * 70]
    for value in runs:
        context._mostly_made_up(value)
        context._mostly_made_up("sk-" + value)
    text = "\n".join(f'API_KEY = "{v}"\npassword: {v}\nsecret_key={v},' for v in runs)
    engine.scan(Fragment("settings.py", text.encode()))
    engine.scan(Fragment("tests/test_settings.py", text.encode()))


def test_cached_default_rules_are_exactly_the_parsed_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tomllib

    from secretsd.scanners.rules import _default_rules_document, default_rules_text

    monkeypatch.setenv("SECRETSD_SCAN_CACHE", str(tmp_path))
    text = default_rules_text()
    fresh = tomllib.loads(text)
    assert _default_rules_document(text) == fresh  # parsed, then stored
    [entry] = tmp_path.glob("rules-*.json")
    assert _default_rules_document(text) == fresh  # read back from the cache
    # Loaded from the cache, the rules are the same rules (every field, every example).
    cached_rules = load_default_rules()
    monkeypatch.setenv("SECRETSD_SCAN_CACHE", str(tmp_path / "empty"))
    assert cached_rules == load_default_rules()
    # A damaged entry is parsed again and replaced; another text gets another entry.
    monkeypatch.setenv("SECRETSD_SCAN_CACHE", str(tmp_path))
    entry.write_text('{"rules": [')
    assert _default_rules_document(text) == fresh
    assert json.loads(entry.read_text()) == fresh
    assert _default_rules_document(text + "\n# edited\n") == fresh
    assert len(list(tmp_path.glob("rules-*.json"))) == 2


def test_shared_fragments_are_filled_in_and_an_unknown_one_is_named() -> None:
    """``{{name}}`` in a bundled rule's regex is a ``[fragments]`` entry: after loading, no rule
    holds a placeholder, and the two prose rules share their lead word for word."""
    from secretsd.scanners.rules import _with_fragments

    for rule in RULES:
        assert "{{" not in rule.regex, rule.id
        assert "{{" not in (rule.prefilter or ""), rule.id
    by_id = {rule.id: rule for rule in RULES}
    lead = by_id["prose-password"].regex.split("(?P<op>", 1)[0]
    assert "passord" in lead and "klucz" in lead
    assert by_id["prose-password-quoted"].regex.startswith(lead)

    fields = {"id": "mine", "origin": "<test>", "regex": r"a{2}{{word}}b", "prefilter": "{{word}}"}
    filled = _with_fragments(dict(fields), {"word": "(?:cat|dog)"})
    assert filled["regex"] == r"a{2}(?:cat|dog)b"
    assert filled["prefilter"] == "(?:cat|dog)"
    with pytest.raises(ConfigError, match=r"rule 'mine' in <test>: unknown fragment \{\{word\}\}"):
        _with_fragments(dict(fields), {"other": "x"})


def test_shared_keyword_lists_are_filled_in_and_an_unknown_one_is_named() -> None:
    """``"{{name}}"`` in a bundled rule's keywords is a ``[keyword_lists]`` list: the two prose
    rules, which share their lead, are looked for on the same lines, and a rule may add words of
    its own beside a shared list."""
    from secretsd.scanners.rules import _keyword_lists, _with_fragments

    by_id = {rule.id: rule for rule in RULES}
    assert by_id["prose-password"].keywords == by_id["prose-password-quoted"].keywords
    assert {"pass", "wachtwoord", "parola"} <= set(by_id["prose-password"].keywords)
    for rule in RULES:
        assert not any("{{" in word for word in rule.keywords), rule.id

    lists = _keyword_lists({"pw": ["Pass", "PWD"]}, "<test>")
    fields = {"id": "mine", "origin": "<test>", "regex": "x", "keywords": ("{{pw}}", "secret")}
    assert _with_fragments(dict(fields), {}, lists)["keywords"] == ("pass", "pwd", "secret")
    with pytest.raises(
        ConfigError, match=r"rule 'mine' in <test>: unknown keyword list \{\{pw\}\}"
    ):
        _with_fragments(dict(fields), {}, {})
    for bad in ({"pw": []}, {"pw": "pass"}, {"pw": [1]}):
        with pytest.raises(ConfigError, match=r"\[keyword_lists\] must map names"):
            _keyword_lists(bad, "<test>")


def test_the_prose_lead_reads_every_foreign_password_word_the_context_checks_know() -> None:
    """The prose-password lead (``[fragments]``) and the context checks' list of "password" in
    other languages (``context._FOREIGN_PASSWORD_WORDS``) are two lists of one set of words, in
    two files: a word added to one and not the other is a language one check reads and the
    other drops. Words that end a phrase (``mật khẩu``) are read as that phrase."""
    import tomllib

    from secretsd.scanners import context
    from secretsd.scanners.rules import default_rules_text

    document = tomllib.loads(default_rules_text())
    lead = re.compile(document["fragments"]["prose_password_lead"])
    keywords = document["keyword_lists"]["prose_password_words"]
    phrases = {
        "khẩu": "mật khẩu",
        "sandi": "kata sandi",
        "πρόσβασης": "κωδικός πρόσβασης",
        "المرور": "كلمة المرور",
        "السر": "كلمة السر",
        "عبور": "رمز عبور",
    }
    for word in sorted(context._FOREIGN_PASSWORD_WORDS):
        text = phrases.get(word, word)
        assert lead.search(f" {text}: x"), f"the prose lead does not read {text!r}"
        assert any(k.lower() in text.lower() for k in keywords), f"no keyword finds {text!r}"
