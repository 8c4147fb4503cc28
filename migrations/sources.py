"""A source as data (kept in plans, without passwords) and reading it with its importer.

``apply plan.json`` must read exactly the sources the plan was made from, so
a plan records how to read them: the Ansible root and vault-id specs
(``label@file``: where passwords come from, never the passwords), the
manifest path, or the cluster context, namespaces and selector.

One plan may cover an Ansible tree and a Kubernetes source together
(``combined_source``), so the same value found in both is reported as a
duplicate like one found twice in either. At most one source of each type:
an item's ``file`` is relative to the root of its own type, so it stays
unambiguous.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from secretsd.migrations.model import Imported

from secretsd.errors import ConfigError

__all__ = [
    "ansible_source",
    "combined_source",
    "k8s_files_source",
    "k8s_live_source",
    "read_source",
    "source_parts",
    "source_root",
]


def ansible_source(
    root: Path,
    vault_ids: Sequence[str] = (),
    password_files: Sequence[str] = (),
    *,
    scan_plaintext: bool = True,
) -> dict[str, Any]:
    from secretsd.migrations.vault_ids import specs_for_tree

    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder; give the root of the Ansible tree")
    specs = specs_for_tree(root.absolute(), vault_ids, password_files)
    return {
        "type": "ansible",
        "root": str(root.absolute()),
        "vault_ids": [str(s) for s in specs],
        "scan_plaintext": scan_plaintext,
    }


def k8s_files_source(
    path: Path, *, namespaces: Sequence[str] = (), skip_types: Sequence[str] = ()
) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path} does not exist; give a manifest file or a folder of them")
    return {
        "type": "k8s",
        "path": str(path.absolute()),
        "namespaces": list(namespaces),
        "skip_types": sorted(skip_types),
    }


def k8s_live_source(
    context: str | None,
    *,
    namespaces: Sequence[str] = (),
    selector: str | None = None,
    skip_types: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "type": "k8s",
        "context": context,
        "namespaces": list(namespaces),
        "selector": selector,
        "skip_types": sorted(skip_types),
    }


def combined_source(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One source of several (an Ansible tree and a Kubernetes source), or the only one."""
    if len(parts) == 1:
        return dict(parts[0])
    types = [part["type"] for part in parts]
    if len(set(types)) != len(types):
        raise ConfigError(
            f"one plan reads at most one source of each type (got {', '.join(types)}); "
            "plan the others separately"
        )
    return {"type": "combined", "sources": [dict(part) for part in parts]}


def source_parts(source: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The single sources a (possibly combined) source is made of."""
    if source["type"] == "combined":
        return list(source["sources"])
    return [source]


def source_root(source: Mapping[str, Any]) -> Path | None:
    """The folder file paths of this source are relative to (None for a cluster)."""
    if source["type"] == "ansible":
        return Path(source["root"])
    if source.get("path"):
        path = Path(source["path"])
        return path.parent if path.is_file() else path
    return None


def read_source(
    source: Mapping[str, Any],
    ask: Callable[[str], str] = getpass.getpass,
    *,
    trusted: Collection[str] | None = None,
) -> Iterator[Imported]:
    """Every value of a described source, through its importer.

    ``trusted``: for a source read from a saved plan, the vault-id specs the
    user gave again (see ``vault_ids.load_secrets``).
    """
    if source["type"] == "combined":
        for part in source_parts(source):
            yield from read_source(part, ask, trusted=trusted)
        return
    if source["type"] == "ansible":
        from secretsd.migrations.ansible import AnsibleImporter, AnsibleTree
        from secretsd.migrations.vault_ids import load_secrets, parse_vault_id

        root = Path(source["root"])
        specs = [parse_vault_id(text, root) for text in source.get("vault_ids", [])]
        tree = AnsibleTree(
            root,
            load_secrets(specs, ask, trusted=trusted),
            scan_plaintext=bool(source.get("scan_plaintext", True)),
        )
        yield from AnsibleImporter().read(tree)
        return
    skip = frozenset(source.get("skip_types") or ())
    namespaces = tuple(source.get("namespaces") or ())
    if source.get("path"):
        from secretsd.migrations.kube import KubeImporter, KubeManifests

        yield from KubeImporter().read(KubeManifests(Path(source["path"]), skip, namespaces))
        return
    from secretsd.migrations.kube_live import read_cluster

    yield from read_cluster(
        context=source.get("context"),
        namespaces=namespaces,
        selector=source.get("selector"),
        skip_types=skip,
    )
