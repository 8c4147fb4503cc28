"""Rules are data: load, merge and validate them.

The default rules live in ``rules/default.toml``; users extend or override
them from their config (same ``id`` = override, new ``id`` = extra rule,
``disabled_rules`` = off). Every rule carries examples it must and must not
match; ``check_examples`` runs them through the real engine, so a rule and its
documentation cannot drift apart (the gitleaks habit). Loading validates the
shape and compiles each regex, and a bad rule is reported by id and file with
a hint, never as a traceback.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from secretsd.errors import ConfigError

__all__ = [
    "CONFIDENCES",
    "KINDS",
    "Example",
    "Rule",
    "RuleSet",
    "default_rules_text",
    "load_default_rules",
    "load_rules_file",
    "merge_rules",
    "parse_rule_tables",
    "parse_rules",
]

#: What the engine's context checks do with a match of each kind of rule.
KINDS = ("token", "generic", "password", "uri", "private-key", "header")
_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,63}")
_LITERAL = re.compile(r"[A-Za-z0-9_-]+")
_SEVERITIES = ("low", "medium", "high", "critical")
_FIELDS = {
    "id",
    "description",
    "regex",
    "secret_group",
    "keywords",
    "kind",
    "min_entropy",
    "min_length",
    "checksum",
    "severity",
    "multiline",
    "priority",
    "enabled",
    "allow_values",
    "examples",
    "tags",
    "prefilter",
    "confidence",
    "paths",
}
CONFIDENCES = ("low", "medium", "high")
#: What a rule's findings are worth before context checks, by kind: a known format is
#: ``high``; a credential-named assignment, a URI password or a bare header value ``medium``.
_KIND_CONFIDENCE = {
    "token": "high",
    "private-key": "high",
    "header": "medium",
    "uri": "medium",
    "generic": "medium",
    "password": "medium",
}


@dataclass(frozen=True, slots=True)
class Example:
    """A text a rule must (or must not) report, scanned as if it were file ``path``."""

    text: str
    path: str = "example.txt"
    confidence: str | None = None  # the tier the finding must have, when given


@dataclass(frozen=True)
class Rule:
    """One detector: a regex plus the checks that keep its precision high."""

    id: str
    description: str
    regex: str
    kind: str = "token"
    prefilter: str | None = None
    secret_group: str | int = "secret"  # noqa: S105 - a regex group name
    keywords: tuple[str, ...] = ()
    min_entropy: float = 0.0
    min_length: int = 0
    checksum: str | None = None
    severity: str = "high"
    multiline: bool = False
    priority: int = 10
    enabled: bool = True
    allow_values: tuple[str, ...] = ()
    #: A regex on the file's path: the rule reports only in such files (``config/master.key``
    #: holds nothing but a key, so its bare hex line is one; anywhere else it is not).
    paths: str | None = None
    tags: tuple[str, ...] = ()
    confidence: str | None = None
    must_match: tuple[Example, ...] = ()
    must_not_match: tuple[Example, ...] = ()
    origin: str = "<default>"
    lazy: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"rule {self.id!r} in {self.origin}"
        if self.checksum is not None:
            from secretsd.scanners.checksums import VALIDATORS

            if self.checksum not in VALIDATORS:
                raise ConfigError(
                    f"{where}: unknown checksum {self.checksum!r}; "
                    f"known: {', '.join(sorted(VALIDATORS))}"
                )
        if not self.lazy:  # user rules are checked at load; bundled ones by the test-suite
            _ = self.compiled, self.group, self.allow_compiled, self.paths_compiled

    @property
    def base_confidence(self) -> str:
        """The tier before context checks: ``confidence`` if set, else by kind (a checksum
        verified format is always ``high``)."""
        if self.confidence is not None:
            return self.confidence
        if self.checksum is not None:
            return "high"
        return _KIND_CONFIDENCE[self.kind]

    @cached_property
    def literal_prefixes(self) -> tuple[str, ...]:
        """The literal texts a secret of this rule starts with (``ghp_``, ``AKIA``, ``sk_live_``),
        read from the regex itself: the only part of a secret a report may show."""
        if self.kind != "token":
            return ()
        at = self.regex.find("(?P<secret>")
        if at < 0:
            return ()
        found = _expand_prefix(self.regex, at + len("(?P<secret>"))
        return tuple(sorted({p for p in found if p}, key=len, reverse=True))

    def public_prefix(self, secret: str) -> str:
        """The part of ``secret`` reports may show: the rule's literal prefix, if it has one."""
        for prefix in self.literal_prefixes:  # longest first
            if secret[: len(prefix)].lower() == prefix.lower():
                return secret[: len(prefix)]
        return ""

    @cached_property
    def compiled(self) -> re.Pattern[bytes]:
        """The rule's regex (compiled on first use: most rules never match in a scan)."""
        flags = re.MULTILINE | (re.DOTALL if self.multiline else 0)
        try:
            return re.compile(self.regex.encode(), flags)
        except (re.error, UnicodeEncodeError) as error:
            raise ConfigError(
                f"rule {self.id!r} in {self.origin}: regex does not compile ({error}); "
                "fix the pattern"
            ) from None

    @cached_property
    def group(self) -> str | int:
        """The group holding the secret: ``secret_group`` if present, else 1, else 0."""
        compiled = self.compiled
        group = self.secret_group
        if isinstance(group, str) and group not in compiled.groupindex:
            return 1 if compiled.groups >= 1 else 0
        if isinstance(group, int) and group > compiled.groups:
            raise ConfigError(
                f"rule {self.id!r} in {self.origin}: secret_group {group} but the regex has "
                f"{compiled.groups} groups"
            )
        return group

    @cached_property
    def paths_compiled(self) -> re.Pattern[str] | None:
        """``paths`` compiled, or None for a rule that applies to every file."""
        if self.paths is None:
            return None
        try:
            return re.compile(self.paths)
        except re.error as error:
            raise ConfigError(
                f"rule {self.id!r} in {self.origin}: paths pattern {self.paths!r}: {error}"
            ) from None

    def applies_to(self, path: str) -> bool:
        """Whether the rule reports in the file at ``path`` (see ``paths``)."""
        compiled = self.paths_compiled
        return compiled is None or compiled.search(path) is not None

    @cached_property
    def allow_compiled(self) -> tuple[re.Pattern[str], ...]:
        allow: list[re.Pattern[str]] = []
        for pattern in self.allow_values:
            try:
                allow.append(re.compile(pattern))
            except re.error as error:
                raise ConfigError(
                    f"rule {self.id!r} in {self.origin}: allow_values pattern {pattern!r}: {error}"
                ) from None
        return tuple(allow)


@dataclass(frozen=True)
class RuleSet:
    """The enabled rules, in a fixed order (their index is their matcher id)."""

    rules: tuple[Rule, ...]

    def __iter__(self) -> Any:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def only(self, rule_id: str) -> RuleSet:
        """The same set restricted to one rule (used to check a rule's examples alone)."""
        return RuleSet(tuple(r for r in self.rules if r.id == rule_id))

    def fingerprint(self) -> str:
        """A hash of everything that changes matching, used to key compiled-database caches."""
        import hashlib

        digest = hashlib.sha256()
        for rule in self.rules:
            # The prefilter is what Hyperscan compiles: a changed one must not reuse a database.
            digest.update(f"{rule.id}\0{rule.regex}\0{rule.prefilter}\0{rule.multiline}\n".encode())
        return digest.hexdigest()[:24]


_QUANTIFIERS = ("?", "*", "{", "+")


def _expand_prefix(regex: str, index: int, limit: int = 64) -> list[str]:
    """Every literal start of ``regex`` from ``index``: plain characters, escaped punctuation,
    small letter classes (``gh[pousr]_``) and groups of literal alternatives (``(?:live|test)``)."""
    heads = [""]
    while index < len(regex) and len(heads) <= limit:
        char = regex[index]
        if char == "\\" and index + 1 < len(regex) and not regex[index + 1].isalnum():
            step, options = 2, [regex[index + 1]]
        elif char.isalnum() or char in "_-.:/=":
            step, options = 1, [char]
        elif char == "[":
            close = regex.find("]", index)
            body = regex[index + 1 : close] if close > 0 else ""
            if not body or not body.isalnum() or len(body) > 8:
                break
            step, options = close + 1 - index, list(body)
        elif regex.startswith("(?:", index):
            close = regex.find(")", index)
            parts = regex[index + 3 : close].split("|") if close > 0 else []
            if not parts or not all(_LITERAL.fullmatch(part) for part in parts):
                leads = [_LITERAL.match(part) for part in parts]
                if parts and all(leads):  # (?:A3T[A-Z0-9]|AKIA|ASIA): literal heads only
                    heads = [head + lead.group() for head in heads for lead in leads if lead]
                break
            step, options = close + 1 - index, parts
        else:
            break
        if regex[index + step : index + step + 1] in _QUANTIFIERS:
            break  # optional or repeated: not part of every secret
        heads = [head + option for head in heads for option in options]
        index += step
    return heads


def _examples(raw: Any, where: str, name: str) -> tuple[Example, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: examples.{name} must be a list of strings or tables")
    found: list[Example] = []
    for item in raw:
        if isinstance(item, str):
            found.append(Example(item))
        elif isinstance(item, Mapping) and isinstance(item.get("text"), str):
            confidence = item.get("confidence")
            if confidence is not None and confidence not in CONFIDENCES:
                raise ConfigError(f"{where}: examples.{name} confidence must be low|medium|high")
            found.append(Example(item["text"], str(item.get("path", "example.txt")), confidence))
        else:
            raise ConfigError(
                f"{where}: each examples.{name} entry is a string or {{text, path, confidence}}"
            )
    return tuple(found)


def _strings(raw: Any, where: str, name: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ConfigError(f"{where}: {name} must be a list of strings")
    return tuple(raw)


def _rule_fields(raw: Mapping[str, Any], origin: str, index: int) -> dict[str, Any]:
    """Check the shape of one ``[[rules]]`` table and turn it into Rule keyword arguments."""
    rule_id = raw.get("id")
    where = f"rule #{index + 1} in {origin}"
    if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
        raise ConfigError(
            f"{where}: 'id' must be lower-case letters, digits and '-' (2-64 chars), "
            f"got {rule_id!r}"
        )
    where = f"rule {rule_id!r} in {origin}"
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"known fields: {', '.join(sorted(_FIELDS))}"
        )
    fields: dict[str, Any] = {"id": rule_id, "origin": origin}
    for name, kind in (
        ("description", str),
        ("regex", str),
        ("kind", str),
        ("severity", str),
        ("prefilter", str),
        ("paths", str),
    ):
        if name in raw:
            if not isinstance(raw[name], kind):
                raise ConfigError(f"{where}: {name} must be a string")
            fields[name] = raw[name]
    if "confidence" in raw:
        if raw["confidence"] not in CONFIDENCES:
            raise ConfigError(f"{where}: confidence must be one of {', '.join(CONFIDENCES)}")
        fields["confidence"] = raw["confidence"]
    if "kind" in fields and fields["kind"] not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}")
    if "severity" in fields and fields["severity"] not in _SEVERITIES:
        raise ConfigError(f"{where}: severity must be one of {', '.join(_SEVERITIES)}")
    for name, types in (
        ("min_entropy", (int, float)),
        ("min_length", (int,)),
        ("priority", (int,)),
        ("multiline", (bool,)),
        ("enabled", (bool,)),
        ("secret_group", (int, str)),
    ):
        if name in raw:
            if not isinstance(raw[name], types):
                raise ConfigError(f"{where}: {name} has the wrong type")
            fields[name] = raw[name]
    if "checksum" in raw:
        fields["checksum"] = str(raw["checksum"])
    for name in ("keywords", "allow_values", "tags"):
        if name in raw:
            fields[name] = _strings(raw[name], where, name)
    if "keywords" in fields:
        fields["keywords"] = tuple(k.lower() for k in fields["keywords"])
    examples = raw.get("examples", {})
    if not isinstance(examples, Mapping):
        raise ConfigError(f"{where}: examples must be a table with 'match' and 'no_match'")
    if "match" in examples:
        fields["must_match"] = _examples(examples["match"], where, "match")
    if "no_match" in examples:
        fields["must_not_match"] = _examples(examples["no_match"], where, "no_match")
    return fields


def _toml_document(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{origin} is not valid TOML ({error}); fix the file") from None


def parse_rules(text: str, origin: str) -> list[dict[str, Any]]:
    """Parse a rules TOML document into per-rule field dicts (not yet merged)."""
    return parse_rule_tables(_toml_document(text, origin).get("rules", []), origin)


def parse_rule_tables(raw_rules: Any, origin: str) -> list[dict[str, Any]]:
    """Validate ``[[rules]]`` tables already read from TOML (a rules file or a config)."""
    if not isinstance(raw_rules, list) or not all(isinstance(r, Mapping) for r in raw_rules):
        raise ConfigError(f"{origin}: 'rules' must be an array of tables ([[rules]])")
    tables = [_rule_fields(raw, origin, i) for i, raw in enumerate(raw_rules)]
    first: dict[str, int] = {}
    for index, fields in enumerate(tables):
        # Two tables with one id would silently merge, the later replacing the earlier's fields.
        earlier = first.setdefault(fields["id"], index)
        if earlier != index:
            raise ConfigError(
                f"rule {fields['id']!r} in {origin}: the id is used by [[rules]] tables "
                f"{earlier + 1} and {index + 1}; give each rule its own id (to change a rule, "
                "keep one table and edit it)"
            )
    return tables


def merge_rules(
    base: Sequence[Rule],
    overrides: Iterable[Mapping[str, Any]],
    disabled: Iterable[str] = (),
) -> RuleSet:
    """Apply overrides (same id: replace given fields; new id: add) and drop disabled ids."""
    by_id: dict[str, Rule] = {rule.id: rule for rule in base}
    order = [rule.id for rule in base]
    for fields in overrides:
        rule_id = fields["id"]
        if rule_id in by_id:
            current = by_id[rule_id]
            changes = {k: v for k, v in fields.items() if k != "id"}
            by_id[rule_id] = replace(current, **changes, lazy=False)
        else:
            missing = [name for name in ("description", "regex") if name not in fields]
            if missing:
                raise ConfigError(
                    f"rule {rule_id!r} in {fields.get('origin')}: a new rule needs "
                    f"{' and '.join(missing)}"
                )
            by_id[rule_id] = Rule(**fields)
            order.append(rule_id)
    dropped = set(disabled)
    unknown = dropped - set(by_id)
    if unknown:
        raise ConfigError(
            f"disabled_rules names unknown rule(s): {', '.join(sorted(unknown))}; "
            "run `secretsd scan --list-rules` to see the ids"
        )
    return RuleSet(tuple(by_id[i] for i in order if i not in dropped and by_id[i].enabled))


def default_rules_text() -> str:
    """The text of the bundled rules file."""
    return (resources.files("secretsd.scanners") / "rules" / "default.toml").read_text("utf-8")


def load_default_rules() -> list[Rule]:
    """The bundled rules, validated, with their shared fragments filled in."""
    document = _default_rules_document(default_rules_text())
    tables = parse_rule_tables(document.get("rules", []), "<default rules>")
    fragments = _fragments(document.get("fragments", {}), "<default rules>")
    keyword_lists = _keyword_lists(document.get("keyword_lists", {}), "<default rules>")
    return [
        Rule(**_with_fragments(fields, fragments, keyword_lists), lazy=True) for fields in tables
    ]


#: ``{{name}}`` in a bundled rule's regex or prefilter: a ``[fragments]`` entry's text.
_FRAGMENT = re.compile(r"\{\{([a-z][a-z0-9_]*)\}\}")


def _fragments(raw: Any, origin: str) -> dict[str, str]:
    """The ``[fragments]`` table: regex text several rules share (one word list, written
    once, so the rules that use it cannot drift apart)."""
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ConfigError(f"{origin}: [fragments] must map names to regex strings")
    return dict(raw)


def _keyword_lists(raw: Any, origin: str) -> dict[str, tuple[str, ...]]:
    """The ``[keyword_lists]`` table: keyword lists several rules share. Two rules that read the
    same words (the prose-password pair) must be looked for on the same lines, so their
    keywords are one list, not two copies kept equal by hand."""
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, list) and v and all(isinstance(w, str) for w in v)
        for k, v in raw.items()
    ):
        raise ConfigError(f"{origin}: [keyword_lists] must map names to non-empty string lists")
    return {name: tuple(word.lower() for word in words) for name, words in raw.items()}


def _with_fragments(
    fields: dict[str, Any],
    fragments: Mapping[str, str],
    keyword_lists: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """``fields`` with every ``{{name}}`` in its regex and prefilter replaced by the fragment,
    and every ``"{{name}}"`` entry of its keywords by that ``[keyword_lists]`` list."""

    def unknown(what: str, name: str, known: Mapping[str, object]) -> ConfigError:
        return ConfigError(
            f"rule {fields['id']!r} in {fields['origin']}: unknown {what} {{{{{name}}}}}; "
            f"known {what}s: {', '.join(sorted(known)) or 'none'}"
        )

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in fragments:
            raise unknown("fragment", name, fragments)
        return fragments[name]

    for name in ("regex", "prefilter"):
        if name in fields:
            fields[name] = _FRAGMENT.sub(fill, fields[name])
    if "keywords" in fields:
        lists = keyword_lists or {}
        words: list[str] = []
        for keyword in fields["keywords"]:
            whole = _FRAGMENT.fullmatch(keyword)
            if whole is None:
                words.append(keyword)
            elif whole.group(1) in lists:
                words.extend(lists[whole.group(1)])
            else:
                raise unknown("keyword list", whole.group(1), lists)
        fields["keywords"] = tuple(dict.fromkeys(words))
    return fields


def _default_rules_document(text: str) -> dict[str, Any]:
    """The bundled rules' TOML, parsed; cached as JSON under a name derived from the text.

    Parsing the TOML is half of a scan's fixed cost (what the pre-commit hook waits for on
    every commit); loading the same document as JSON costs a few milliseconds. The cached
    document is exactly what ``tomllib`` returned (``test_rules`` checks it), and only the
    bundled file is cached: a user's rules are read fresh.
    """
    from secretsd.scanners.cache import cache_dir, store

    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    cached = cache_dir() / f"rules-{digest}.json"
    try:
        document = json.loads(cached.read_bytes())
        if isinstance(document, dict):
            return document
    except (OSError, ValueError):
        pass
    document = _toml_document(text, "<default rules>")
    store(cached, json.dumps(document).encode())
    return document


def load_rules_file(path: Path) -> list[dict[str, Any]]:
    """Rule tables from a user's extra rules file."""
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise ConfigError(
            f"cannot read rules file {str(path)!r} ({error.strerror}); check the path"
        ) from None
    return parse_rules(text, str(path))
