"""The Ansible importer: every vault value of an Ansible tree, and plaintext look-alikes.

It walks the whole tree (inventory files and folders, ``group_vars/``,
``host_vars/``, role ``vars/`` and ``defaults/``, playbooks and the files
they name in ``vars_files``) and yields:

- each leaf of a wholly encrypted vars file (``file_var``; unquoted YAML 1.1
  scalars keep Ansible's reading: ``yes`` is a boolean, stored as ``true``);
- each inline ``!vault |`` value, wherever it sits in nested maps and lists
  (always a string, as in Ansible);
- each wholly encrypted non-vars file (a keystore, a certificate) as one value,
  byte-exact (``file_blob``);
- each plaintext variable that the secret scanner's rules flag (the same
  engine and rules as ``secretsd scan``, not a second list), marked
  ``plaintext``.

Default targets: ``ansible/<group-or-host>/<var>`` with the rest of the
variable's path (keys and list indices joined by ``.``) as the key, or
``value`` for a plain scalar; ``ansible/roles/<role>/<var>`` for role vars;
``ansible/<file path>`` with key ``content`` for encrypted non-vars files.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from secretsd.migrations.model import Imported, PathPart, Problem, Source, file_digest
from secretsd.migrations.run_ahead import Deferred, default_workers, in_order
from secretsd.migrations.vault_crypto import VaultError, VaultSecret, decrypt, is_vault

__all__ = ["AnsibleImporter", "AnsibleTree", "VaultLoader", "place", "walk_nodes"]

_YAML_SUFFIXES = {".yml", ".yaml", ".json"}
_VARS_DIRS = {"group_vars", "host_vars"}
_SEGMENT_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".tox"}
MAX_FILE_BYTES = 16 * 1024 * 1024


_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class VaultLoader(_Loader):  # type: ignore[misc,valid-type]
    """YAML 1.1 safe loader that knows Ansible's ``!vault`` tag (kept as its vault text)."""


class VaultText(str):
    """The vault text of an inline ``!vault`` value (not yet decrypted)."""

    __slots__ = ()


def _vault_constructor(loader: yaml.SafeLoader, node: yaml.Node) -> VaultText:
    return VaultText(loader.construct_scalar(node))  # type: ignore[arg-type]


VaultLoader.add_constructor("!vault", _vault_constructor)
VaultLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def segment(text: str) -> str:
    """``text`` as one path segment / key (``[A-Za-z0-9._-]``); other characters become ``-``."""
    cleaned = _SEGMENT_BAD.sub("-", text).strip("-") or "_"
    return "_" if cleaned in (".", "..") else cleaned


def _stem(name: str) -> str:
    suffix = PurePosixPath(name).suffix
    return name[: -len(suffix)] if suffix in _YAML_SUFFIXES else name


@dataclass(frozen=True, slots=True)
class Placement:
    path: str
    key: str
    context: dict[str, str]


def place(rel: PurePosixPath, var_path: Sequence[PathPart], *, inventory: bool) -> Placement:
    """The default target of a variable at ``var_path`` in the vars file ``rel``."""
    parts = rel.parts
    context: dict[str, str] = {"file": str(rel)}
    base: str | None = None
    rest: list[PathPart] = list(var_path)
    for folder in _VARS_DIRS:
        if folder in parts[:-1]:
            i = parts.index(folder)
            name = _stem(parts[i + 1]) if i + 1 == len(parts) - 1 else parts[i + 1]
            context["group" if folder == "group_vars" else "host"] = name
            base = f"ansible/{segment(name)}"
            break
    if base is None and "roles" in parts[:-2]:
        i = parts.index("roles")
        if i + 2 < len(parts) and parts[i + 2] in ("vars", "defaults"):
            context["role"] = parts[i + 1]
            base = f"ansible/roles/{segment(parts[i + 1])}"
    if base is None and inventory:
        found = [j for j, p in enumerate(var_path[:-1]) if p in ("hosts", "vars")]
        if found:
            j = found[-1]
            if var_path[j] == "hosts":
                name = str(var_path[j + 1])
                context["host"] = name
                rest = list(var_path[j + 2 :])
            else:
                name = str(var_path[j - 1]) if j > 0 else "all"
                context["group"] = name
                rest = list(var_path[j + 1 :])
            base = f"ansible/{segment(name)}"
    if base is None and var_path and isinstance(var_path[0], int):
        # A playbook (a list of plays): variables sit under a play's "vars".
        if "vars" in var_path:
            j = list(var_path).index("vars")
            rest = list(var_path[j + 1 :])
        base = "ansible/playbooks/" + segment(_stem(parts[-1]))
    if base is None:
        base = "ansible/" + "/".join(segment(p) for p in (*parts[:-1], _stem(parts[-1])))
    if not rest:
        context["var"] = _stem(parts[-1])
        return Placement(base, "value", context)
    var, *tail = rest
    context["var"] = str(var)
    key = ".".join(segment(str(p)) for p in tail) if tail else "value"
    return Placement(f"{base}/{segment(str(var))}", key, context)


def walk_nodes(
    node: yaml.Node, prefix: tuple[PathPart, ...] = ()
) -> Iterator[tuple[tuple[PathPart, ...], yaml.ScalarNode]]:
    """Every scalar leaf of a composed YAML document with its path (keys, list indices)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key: PathPart = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            if key == "<<":
                continue
            yield from walk_nodes(value_node, (*prefix, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from walk_nodes(item, (*prefix, index))
    elif isinstance(node, yaml.ScalarNode):
        yield prefix, node


def _walk_values(
    value: Any, prefix: tuple[PathPart, ...] = ()
) -> Iterator[tuple[tuple[PathPart, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_values(item, (*prefix, key if isinstance(key, int) else str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_values(item, (*prefix, index))
    else:
        yield prefix, value


def scalar_bytes(value: Any) -> bytes:
    """A YAML scalar as the string Ansible templates would give (bool: ``true``/``false``)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if value is None:
        return b""
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat().encode()
    return str(value).encode("utf-8")


def _is_inventory(rel: PurePosixPath, document: Any) -> bool:
    if {"group_vars", "host_vars", "roles"} & set(rel.parts):
        return False
    if not isinstance(document, yaml.MappingNode):
        return False
    for _, value in document.value:
        if isinstance(value, yaml.MappingNode) and any(
            isinstance(k, yaml.ScalarNode) and k.value in ("hosts", "children")
            for k, _ in value.value
        ):
            return True
    return False


def _is_vars_location(rel: PurePosixPath) -> bool:
    parts = set(rel.parts[:-1])
    return bool(parts & (_VARS_DIRS | {"vars", "defaults", "inventory"}))


@dataclass(frozen=True)
class AnsibleTree:
    """An Ansible tree to import and the vault passwords that open it."""

    root: Path
    secrets: Sequence[VaultSecret] = ()
    scan_plaintext: bool = True
    exclude: Sequence[str] = field(default_factory=tuple)  # relative folders to leave out
    #: Threads decrypting vault texts (None: one per CPU; 1: in the reading thread).
    decrypt_workers: int | None = None


class _PlaintextJudge:
    """The scanner's rules, built once, asked whether a plain variable holds a secret."""

    def __init__(self) -> None:
        self._engine: Any = None

    def rule_for(self, rel: str, name: str, value: str) -> str | None:
        if len(value) < 6 or "{{" in value:
            return None
        if self._engine is None:
            from secretsd.scanners.engine import Engine
            from secretsd.scanners.rules import load_default_rules, merge_rules

            self._engine = Engine(merge_rules(load_default_rules(), []))
        from secretsd.scanners.model import Fragment

        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        text = f'{name}: "{quoted}"\n' if "\n" not in value else f"{name}: |\n{value}\n"
        for finding in self._engine.scan(Fragment(rel, text.encode("utf-8"))):
            if finding.secret and finding.secret in value:
                return str(finding.rule)
        return None


class AnsibleImporter:
    """``read(AnsibleTree) -> Iterator[Imported]``: pure, reads files only."""

    def __init__(self) -> None:
        self._judge = _PlaintextJudge()

    def read(self, source: AnsibleTree) -> Iterator[Imported]:
        """Every value, in file order; decryption runs on worker threads ahead of the reader."""
        workers = source.decrypt_workers
        return in_order(self._produce(source), default_workers() if workers is None else workers)

    def _produce(self, source: AnsibleTree) -> Iterator[Imported | Deferred[Imported]]:
        root = source.root
        for path in _files(root, source.exclude):
            rel = PurePosixPath(path.relative_to(root).as_posix())
            try:
                if path.stat().st_size > MAX_FILE_BYTES:
                    with path.open("rb") as head:
                        if is_vault(head.read(64)):
                            yield _too_large(rel)
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            digest = file_digest(data)
            if is_vault(data[:64]):
                yield Deferred(partial(self._whole_file, rel, data, digest, source))
            elif rel.suffix in _YAML_SUFFIXES or (set(rel.parts[:-1]) & _VARS_DIRS):
                yield from self._vars_file(rel, data, digest, source)

    # -- wholly encrypted files --------------------------------------------------------

    def _whole_file(
        self, rel: PurePosixPath, data: bytes, digest: str, source: AnsibleTree
    ) -> list[Imported]:
        """Decrypt a wholly encrypted file and list its values (runs on a worker thread)."""
        return list(self._whole_file_values(rel, data, digest, source))

    def _whole_file_values(
        self, rel: PurePosixPath, data: bytes, digest: str, source: AnsibleTree
    ) -> Iterator[Imported]:
        src = Source("ansible", str(rel), None)
        blob_path = "ansible/" + "/".join(segment(p) for p in rel.parts)
        try:
            plaintext, _ = decrypt(data, source.secrets)
        except VaultError as error:
            yield Imported(
                src,
                "vault",
                blob_path,
                "content",
                digest,
                problem=Problem(error.code, str(rel), error.message),
            )
            return
        document: Any = None
        if rel.suffix in _YAML_SUFFIXES or _is_vars_location(rel):
            try:
                document = yaml.load(plaintext, Loader=VaultLoader)  # noqa: S506 (safe loader)
            except yaml.YAMLError:
                document = None
        if not isinstance(document, dict | list):
            yield Imported(
                src, "vault", blob_path, "content", digest, plaintext, {"file": str(rel)}
            )
            return
        is_inventory = False
        for var_path, value in _walk_values(document):
            if isinstance(value, VaultText):  # an inline vault inside an encrypted file
                yield self._inline(rel, var_path, value, digest, source, is_inventory)
                continue
            placement = place(rel, var_path, inventory=is_inventory)
            yield Imported(
                Source("ansible", str(rel), var_path),
                "vault",
                placement.path,
                placement.key,
                digest,
                scalar_bytes(value),
                placement.context,
            )

    # -- plaintext YAML with inline vault values -----------------------------------------

    def _vars_file(
        self, rel: PurePosixPath, data: bytes, digest: str, source: AnsibleTree
    ) -> Iterator[Imported | Deferred[Imported]]:
        has_vault = b"!vault" in data
        try:
            documents = list(yaml.compose_all(data, Loader=VaultLoader))
        except yaml.YAMLError as error:
            if has_vault or _is_vars_location(rel):
                mark = getattr(error, "problem_mark", None)
                line = f" line {mark.line + 1}" if mark is not None else ""
                yield Imported(
                    Source("ansible", str(rel), None),
                    "vault",
                    "ansible/" + "/".join(segment(p) for p in rel.parts),
                    "value",
                    digest,
                    problem=Problem(
                        "yaml_invalid",
                        f"{rel}{line}",
                        "not valid YAML; fix the file (ansible-playbook would refuse it too)",
                    ),
                )
            return
        for document in documents:
            if document is None:
                continue
            inventory = _is_inventory(rel, document)
            for var_path, node in walk_nodes(document):
                if node.tag == "!vault":  # each inline value is its own work: own salt, own PBKDF2
                    yield Deferred.single(
                        partial(
                            self._inline,
                            rel,
                            var_path,
                            VaultText(node.value),
                            digest,
                            source,
                            inventory,
                        )
                    )
                elif source.scan_plaintext and node.tag == "tag:yaml.org,2002:str" and var_path:
                    name = str(var_path[-1])
                    rule = self._judge.rule_for(str(rel), name, node.value)
                    if rule is not None:
                        placement = place(rel, var_path, inventory=inventory)
                        yield Imported(
                            Source("ansible", str(rel), var_path),
                            "plaintext",
                            placement.path,
                            placement.key,
                            digest,
                            node.value.encode("utf-8"),
                            placement.context,
                            note=rule,
                        )

    def _inline(
        self,
        rel: PurePosixPath,
        var_path: tuple[PathPart, ...],
        text: str,
        digest: str,
        source: AnsibleTree,
        inventory: bool,
    ) -> Imported:
        placement = place(rel, var_path, inventory=inventory)
        src = Source("ansible", str(rel), var_path)
        try:
            plaintext, _ = decrypt(text, source.secrets)
        except VaultError as error:
            where = f"{rel}: {'.'.join(str(p) for p in var_path)}"
            return Imported(
                src,
                "vault",
                placement.path,
                placement.key,
                digest,
                context=placement.context,
                problem=Problem(error.code, where, error.message),
            )
        return Imported(
            src, "vault", placement.path, placement.key, digest, plaintext, placement.context
        )


def _too_large(rel: PurePosixPath) -> Imported:
    return Imported(
        Source("ansible", str(rel), None),
        "vault",
        "ansible/" + "/".join(segment(p) for p in rel.parts),
        "content",
        "",
        problem=Problem(
            "file_too_large",
            str(rel),
            f"an encrypted file over {MAX_FILE_BYTES // (1024 * 1024)} MiB; secrets this large "
            "do not belong in a secret store (exclude it, or store a reference to it)",
        ),
    )


def _files(root: Path, exclude: Sequence[str]) -> Iterator[Path]:
    """Every regular file below ``root`` in a stable order, skipping VCS and tool folders."""
    excluded = {os.path.normpath(e) for e in exclude}
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in _SKIP_DIRS and os.path.normpath(os.path.join(rel_folder, d)) not in excluded
        )
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path
