"""Where each source value goes: the importer's default target, a rules file, ``--prefix``.

A rules file (YAML or JSON) overrides the defaults; the first matching rule wins::

    rules:
      - match: "ansible:group_vars/frontends.yml:*"   # glob on the source id
        target: "apps/web/{var}"                     # a path, optionally "#key"
      - match: "k8s:shop/*"
        target: "apps/shop/{name}"

Source ids: ``ansible:<file>:<var.path>`` and ``k8s:<namespace>/<name>:<key>``.
Placeholders: ``{path}`` and ``{key}`` (the default target), ``{file}``,
``{var}``, ``{group}``, ``{host}``, ``{role}`` (Ansible), ``{namespace}``,
``{name}``, ``{type}`` (Kubernetes). A target without ``#key`` keeps the
default key. ``--prefix`` is put in front of every target afterwards.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from secretsd.migrations.model import Imported, Source

from secretsd.errors import ConfigError, InvalidInput
from secretsd.ref import validate_key, validate_path

__all__ = ["Mapper", "Rule", "load_rules", "source_id"]


def source_id(source: Source) -> str:
    if source.type == "ansible":
        var = ".".join(str(p) for p in source.var_path) if source.var_path is not None else ""
        return f"ansible:{source.file}:{var}"
    return f"k8s:{source.namespace}/{source.name}:{source.key or ''}"


@dataclass(frozen=True, slots=True)
class Rule:
    match: str
    target: str


def load_rules(path: Path) -> tuple[list[Rule], str]:
    """The rules of a rules file and the file's digest (kept in plans)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"cannot read rules file {path} ({error.strerror}); check the path"
        ) from None
    try:
        raw: Any = json.loads(data) if path.suffix == ".json" else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError):
        raise ConfigError(f"rules file {path} is not valid YAML/JSON; fix its syntax") from None
    rules_raw = raw.get("rules") if isinstance(raw, Mapping) else None
    if not isinstance(rules_raw, list):
        raise ConfigError(f"rules file {path}: expected a top-level 'rules:' list")
    rules: list[Rule] = []
    for index, item in enumerate(rules_raw, 1):
        if not (
            isinstance(item, Mapping)
            and isinstance(item.get("match"), str)
            and isinstance(item.get("target"), str)
        ):
            raise ConfigError(
                f"rules file {path}, rule {index}: each rule needs 'match' and 'target' strings"
            )
        fields = [f for _, f, _, _ in string.Formatter().parse(item["target"]) if f]
        unknown = set(fields) - _PLACEHOLDERS
        if unknown:
            raise ConfigError(
                f"rules file {path}, rule {index}: unknown placeholder(s) "
                f"{', '.join(sorted(unknown))}; known: {', '.join(sorted(_PLACEHOLDERS))}"
            )
        rules.append(Rule(item["match"], item["target"]))
    return rules, "sha256:" + hashlib.sha256(data).hexdigest()


_PLACEHOLDERS = {"path", "key", "file", "var", "group", "host", "role", "namespace", "name", "type"}


class _Missing(dict[str, str]):
    def __missing__(self, name: str) -> str:
        raise KeyError(name)


@dataclass(frozen=True)
class Mapper:
    rules: Sequence[Rule] = ()
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.prefix:
            validate_path(self.prefix.strip("/"))

    def target(self, item: Imported) -> tuple[str, str]:
        """``(path, key)`` for ``item``; InvalidInput naming the source if it cannot be mapped."""
        path, key = item.default_path, item.default_key
        ident = source_id(item.source)
        for rule in self.rules:
            if fnmatch.fnmatchcase(ident, rule.match):
                values = _Missing({**item.context, "path": path, "key": key})
                try:
                    rendered = rule.target.format_map(values)
                except KeyError as missing:
                    raise InvalidInput(
                        f"{item.source.label()}: rule {rule.match!r} uses {{{missing.args[0]}}}, "
                        "which this source does not have"
                    ) from None
                path, _, new_key = rendered.partition("#")
                key = new_key or key
                break
        if self.prefix:
            path = f"{self.prefix.strip('/')}/{path}"
        validate_path(path)
        validate_key(key)
        return path, key
