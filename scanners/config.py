"""The scanner's configuration file: rule overrides, allowlists, test-path policy.

Looked up as ``--config FILE``, else ``.secretsd-scan.toml`` at the scanned
root. Everything has a default, so no file is needed. Example::

    [scan]
    max_file_size = 1048576        # bytes; larger files are skipped and counted
    report_test_paths = true       # false: drop findings under tests/, *_test.go, ...
    disabled_rules = ["jwt"]
    rules_files = ["ci/extra-rules.toml"]

    [allowlist]
    paths = ["docs/**", "**/*.lock"]       # globs on paths relative to the root
    values = ["^AKIA[A-Z2-7]{12}TEST$"]    # regexes on the secret value
    fingerprints = ["3f2a..."]             # accept one finding forever

    [filters]                      # context filters: drop a shape, or keep it at low confidence
    placeholders = ["acme-dev"]            # extra whole values that are placeholders
    example_hosts = ["example.com", ".test", ".invalid", ".example"]  # URI creds there: dropped
    weak_passwords = "low"         # "low" | "drop": dictionary words, fixture-looking values
    uuid_values = "low"            # "low" | "drop": UUIDs under keys (API-key names: medium)
    test_paths = "keep"            # "keep" | "low" | "drop": generic findings under test paths
    encrypted_keys = "drop"        # "drop" | "low": passphrase-protected private keys

    [[rules]]                      # same id: override fields; new id: a new rule
    id = "generic-password"
    min_length = 6
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secretsd.scanners.filters import DEFAULT_FILTERS, Filters
from secretsd.scanners.rules import (
    CONFIDENCES,
    RuleSet,
    load_default_rules,
    load_rules_file,
    merge_rules,
    parse_rule_tables,
)

from secretsd.errors import ConfigError

__all__ = ["DEFAULT_CONFIG_NAME", "DEFAULT_MAX_FILE_SIZE", "ScanConfig", "glob_to_regex"]

DEFAULT_CONFIG_NAME = ".secretsd-scan.toml"
DEFAULT_MAX_FILE_SIZE = 2 * 1024 * 1024
#: Files the scanner writes itself: never scanned.
BUILTIN_ALLOWED_PATHS = (".secretsd-baseline.json", "**/.secretsd-baseline.json")
_SCAN_KEYS = {
    "max_file_size",
    "report_test_paths",
    "disabled_rules",
    "rules_files",
    "confidence",
}
_FILTER_KEYS = {
    "placeholders",
    "example_hosts",
    "weak_passwords",
    "uuid_values",
    "test_paths",
    "encrypted_keys",
}
_FILTER_CHOICES = {
    "weak_passwords": ("low", "drop"),
    "uuid_values": ("low", "drop"),
    "test_paths": ("keep", "low", "drop"),
    "encrypted_keys": ("drop", "low"),
}
_ALLOW_KEYS = {"paths", "values", "fingerprints"}


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """``**`` spans directories, ``*`` and ``?`` stay inside one path segment."""
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    body = "".join(out)
    if pattern.endswith("/"):
        body += ".*"
    return re.compile(body + r"\Z")


@dataclass
class ScanConfig:
    """The effective configuration of one scan."""

    rules: RuleSet
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    report_test_paths: bool = True
    allow_paths: tuple[re.Pattern[str], ...] = ()
    allow_values: tuple[re.Pattern[str], ...] = ()
    allow_fingerprints: frozenset[str] = frozenset()
    source: str = "<defaults>"
    path_globs: tuple[str, ...] = field(default_factory=tuple)
    confidence: str | None = None  # the [scan] floor, when the file sets one
    filters: Filters = DEFAULT_FILTERS

    def path_allowed(self, path: str) -> bool:
        """False when ``path`` is allowlisted (not scanned at all)."""
        return not any(p.match(path) for p in self.allow_paths)

    def value_allowed(self, secret: str) -> bool:
        """False when the secret matches a value allowlist entry."""
        return not any(p.search(secret) for p in self.allow_values)

    @classmethod
    def load(
        cls,
        root: Path,
        config_path: Path | None = None,
        *,
        overrides: dict[str, Any] | None = None,
    ) -> ScanConfig:
        """Defaults, then the config file, then ``overrides`` (from CLI flags)."""
        document: dict[str, Any] = {}
        source = "<defaults>"
        candidate = config_path
        if candidate is None:
            base = root if root.is_dir() else root.parent
            default = base / DEFAULT_CONFIG_NAME
            candidate = default if default.is_file() else None
        if candidate is not None:
            source = str(candidate)
            try:
                text = candidate.read_text("utf-8")
            except OSError as error:
                raise ConfigError(
                    f"cannot read scan config {source!r} ({error.strerror}); check --config"
                ) from None
            except UnicodeDecodeError:
                raise ConfigError(f"scan config {source!r} is not UTF-8 text") from None
            try:
                document = tomllib.loads(text)
            except tomllib.TOMLDecodeError as error:
                raise ConfigError(f"{source} is not valid TOML ({error}); fix the file") from None
        return cls._from_document(document, source, candidate, overrides or {})

    @classmethod
    def _from_document(
        cls,
        document: dict[str, Any],
        source: str,
        path: Path | None,
        overrides: dict[str, Any],
    ) -> ScanConfig:
        unknown = set(document) - {"scan", "allowlist", "rules", "filters"}
        if unknown:
            raise ConfigError(
                f"{source}: unknown section(s) {', '.join(sorted(unknown))}; "
                "known: [scan], [allowlist], [filters], [[rules]]"
            )
        scan = _table(document, "scan", source, _SCAN_KEYS)
        allow = _table(document, "allowlist", source, _ALLOW_KEYS)
        max_size = overrides.get("max_file_size", scan.get("max_file_size", DEFAULT_MAX_FILE_SIZE))
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size <= 0:
            raise ConfigError(f"{source}: [scan] max_file_size must be a positive number of bytes")
        confidence = scan.get("confidence")
        if confidence is not None and confidence not in CONFIDENCES:
            raise ConfigError(
                f"{source}: [scan] confidence must be one of {', '.join(CONFIDENCES)}"
            )
        filters = _filters(_table(document, "filters", source, _FILTER_KEYS), source)
        report_tests = overrides.get("report_test_paths", scan.get("report_test_paths", True))
        if not isinstance(report_tests, bool):
            raise ConfigError(f"{source}: [scan] report_test_paths must be true or false")
        overrides_rules: list[dict[str, Any]] = []
        base_dir = path.parent if path is not None else Path.cwd()
        for extra in _strings(scan.get("rules_files", []), source, "[scan] rules_files"):
            overrides_rules.extend(load_rules_file(base_dir / extra))
        overrides_rules.extend(parse_rule_tables(document.get("rules", []), source))
        rules = merge_rules(
            load_default_rules(),
            overrides_rules,
            _strings(scan.get("disabled_rules", []), source, "[scan] disabled_rules"),
        )
        globs = (*BUILTIN_ALLOWED_PATHS, *_strings(allow.get("paths", []), source, "paths"))
        values = []
        for pattern in _strings(allow.get("values", []), source, "[allowlist] values"):
            try:
                values.append(re.compile(pattern))
            except re.error as error:
                raise ConfigError(
                    f"{source}: [allowlist] values entry {pattern!r} is not a regex ({error})"
                ) from None
        return cls(
            rules=rules,
            max_file_size=max_size,
            report_test_paths=report_tests,
            allow_paths=tuple(glob_to_regex(g) for g in globs),
            allow_values=tuple(values),
            allow_fingerprints=frozenset(
                _strings(allow.get("fingerprints", []), source, "[allowlist] fingerprints")
            ),
            source=source,
            path_globs=globs,
            confidence=confidence,
            filters=filters,
        )


def _filters(table: dict[str, Any], source: str) -> Filters:
    """The ``[filters]`` table as a ``Filters`` (defaults for what it does not set)."""
    values: dict[str, Any] = {}
    for name, choices in _FILTER_CHOICES.items():
        if name in table:
            if table[name] not in choices:
                raise ConfigError(
                    f"{source}: [filters] {name} must be one of {', '.join(choices)}, "
                    f"got {table[name]!r}"
                )
            values[name] = table[name]
    if "placeholders" in table:
        words = _strings(table["placeholders"], source, "[filters] placeholders")
        values["placeholders"] = frozenset(w.lower() for w in words)
    if "example_hosts" in table:
        values["example_hosts"] = tuple(
            _strings(table["example_hosts"], source, "[filters] example_hosts")
        )
    return Filters(**values)


def _table(document: dict[str, Any], name: str, source: str, known: set[str]) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    unknown = set(table) - known
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) in [{name}]: {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    return table


def _strings(raw: Any, source: str, name: str) -> Sequence[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ConfigError(f"{source}: {name} must be a list of strings")
    return raw
