"""Rewrite output: the sources as they look once their values live in secretsd.

Written into an output folder at the same relative paths, never over the
originals, and only for files that change:

- Ansible: each migrated inline or plaintext value becomes
  ``"{{ lookup('secretsd', 'secretsd://path#key') }}"`` in place (the rest
  of the file, comments included, is kept byte for byte); a wholly encrypted
  vars file becomes a plain vars file whose every leaf is such a lookup.
  Encrypted non-vars files (keystores) cannot hold a lookup: they are listed
  in ``MIGRATION-NOTES.txt`` with the ``secretsd get`` command that restores
  them.
- Kubernetes: each migrated Secret is removed; every workload that used it
  (``envFrom``, ``env[].valueFrom.secretKeyRef``, ``secret`` volumes) gets
  the agent annotations of DESIGN.md instead (``secretsd.io/inject``,
  ``secretsd.io/role``, ``secretsd.io/secret-<file>``, ``format-<file>``) and
  loses the reference. The agent renders files under ``/secretsd``; the notes
  file lists what each container used to get and where it is now.

Duplicates: a value the plan found in several places is referenced at the
one path the plan keeps (``PlanItem.reference``), from Ansible lookups, from
``secretKeyRef`` and from volume files alike, whichever source it came from.
A Secret loaded whole through ``envFrom`` keeps pointing at its own path (one
dotenv file needs one secret); the notes name each of its keys whose value is
kept elsewhere. A plan over an Ansible tree and Kubernetes manifests together
writes each source's files below ``ansible/`` and ``k8s/`` in the output
folder.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from secretsd.migrations.ansible import VaultLoader, walk_nodes
from secretsd.migrations.kube import is_secret
from secretsd.migrations.plan import Plan, PlanItem
from secretsd.migrations.sources import source_parts, source_root

__all__ = ["lookup", "rewrite"]

NOTES = "MIGRATION-NOTES.txt"
_ANNOTATION_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def lookup(item: PlanItem) -> str:
    return f"{{{{ lookup('secretsd', '{item.reference}') }}}}"


def _write(out: Path, rel: str, text: str) -> Path:
    target = out / rel
    if out.resolve() not in target.resolve().parents:
        raise ValueError(f"refusing to write outside the output folder: {rel}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, "utf-8", newline="")
    return target


def rewrite(plan: Plan, out: Path) -> list[Path]:
    """Write the rewritten files of ``plan`` into ``out``; return the files written."""
    parts = source_parts(plan.source)
    roots = [(part, source_root(part)) for part in parts]
    out = out.absolute()
    for _, root in roots:
        resolved = root.resolve() if root is not None else None
        if resolved is not None and (
            out.resolve() == resolved
            or resolved in out.resolve().parents
            or out.resolve() in resolved.parents
        ):
            from secretsd.errors import ConfigError

            raise ConfigError(
                f"the rewrite folder {out} overlaps the source {resolved}; choose a separate folder"
            )
    if all(root is None for _, root in roots):
        return []  # a live cluster: there are no manifests to rewrite
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    written: list[Path] = []
    for part, root in roots:
        if root is None:
            continue
        into = out / part["type"] if len(parts) > 1 else out
        mine = [i for i in plan.items if i.source.type == part["type"]]
        items = [i for i in mine if i.problem is None]
        if part["type"] == "ansible":
            written += _ansible(root.resolve(), items, into, notes)
        else:
            broken = {(i.source.namespace, i.source.name) for i in mine if i.problem}
            whole = [i for i in items if (i.source.namespace, i.source.name) not in broken]
            written += _kube(root.resolve(), whole, into, notes)
    if notes:
        written.append(_write(out, NOTES, "\n".join(notes) + "\n"))
    return written


# -- Ansible ---------------------------------------------------------------------------------


def _ansible(root: Path, items: list[PlanItem], out: Path, notes: list[str]) -> Iterator[Path]:
    by_file: dict[str, list[PlanItem]] = defaultdict(list)
    for item in items:
        by_file[str(item.source.file)].append(item)
    for rel, members in sorted(by_file.items()):
        raw = (root / rel).read_bytes()
        if any(m.source.var_path is None for m in members):
            target = members[0]
            notes.append(
                f"{rel}: an encrypted file, now in {target.reference}; restore it with\n"
                f"  secretsd get {target.reference} > {rel}"
            )
            continue
        if raw.lstrip().startswith(b"$ANSIBLE_VAULT"):
            yield _write(out, rel, _whole_file(members))
        else:
            yield _write(out, rel, _inline(raw.decode("utf-8"), members))


def _whole_file(members: list[PlanItem]) -> str:
    document: Any = None
    for item in sorted(members, key=lambda m: [str(p).zfill(8) for p in m.source.var_path or ()]):
        path = list(item.source.var_path or ())
        if document is None:
            document = [] if path and isinstance(path[0], int) else {}
        node = document
        for part, following in zip(path, [*path[1:], None], strict=True):
            if following is None:
                _put(node, part, lookup(item))
            else:
                child = _get(node, part)
                if child is None:
                    child = [] if isinstance(following, int) else {}
                    _put(node, part, child)
                node = child
    header = "# Values moved to secretsd by `secretsd migrate`; read through the lookup plugin.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)


def _get(node: Any, part: Any) -> Any:
    if isinstance(node, list):
        return node[part] if part < len(node) else None
    return node.get(part)


def _put(node: Any, part: Any, value: Any) -> None:
    if isinstance(node, list):
        while len(node) <= part:
            node.append(None)
        node[part] = value
    else:
        node[part] = value


def _inline(text: str, members: list[PlanItem]) -> str:
    wanted = {tuple(m.source.var_path or ()): m for m in members}
    spans: list[tuple[int, int, str]] = []
    for document in yaml.compose_all(text, Loader=VaultLoader):
        if document is None:
            continue
        for var_path, node in walk_nodes(document):
            item = wanted.get(var_path)
            if item is None:
                continue
            start, end = node.start_mark.index, node.end_mark.index
            span = text[start:end]
            trailing = span[len(span.rstrip()) :]
            spans.append((start, end, f'"{lookup(item)}"{trailing}'))
    for start, end, replacement in sorted(spans, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


# -- Kubernetes ------------------------------------------------------------------------------

_WORKLOAD_TEMPLATE = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def _pod_template(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") == "Pod":
        return obj  # type: ignore[return-value]
    route = _WORKLOAD_TEMPLATE.get(str(obj.get("kind")))
    node: Any = obj
    for step in route or ():
        node = node.get(step) if isinstance(node, dict) else None
    return node if route and isinstance(node, dict) else None


def _file_name(*parts: str) -> str:
    name = _ANNOTATION_NAME.sub("-", "-".join(parts)).strip("-.")
    return name[:50] or "secret"


class _Secrets:
    """Migrated Secrets by (namespace, name): each key's plan item."""

    def __init__(self, items: list[PlanItem]) -> None:
        self.keys: dict[tuple[str, str], dict[str, PlanItem]] = defaultdict(dict)
        for item in items:
            self.keys[(str(item.source.namespace), str(item.source.name))][str(item.source.key)] = (
                item
            )

    def get(self, namespace: str, name: str) -> dict[str, PlanItem] | None:
        return self.keys.get((namespace, name))


def _annotate_pod(
    template: dict[str, Any], namespace: str, secrets: _Secrets, where: str, notes: list[str]
) -> bool:
    spec = template.get("spec")
    if not isinstance(spec, dict):
        return False
    annotations: dict[str, str] = {}
    removed_volumes: set[str] = set()
    for volume in list(spec.get("volumes") or []):
        ref = (volume.get("secret") or {}).get("secretName") if isinstance(volume, dict) else None
        keys = secrets.get(namespace, ref) if ref else None
        if keys is None:
            continue
        spec["volumes"].remove(volume)
        removed_volumes.add(str(volume.get("name")))
        for key, item in sorted(keys.items()):
            file = _file_name(str(ref), key)
            annotations[f"secretsd.io/secret-{file}"] = item.reference
            notes.append(f"{where}: volume {volume.get('name')} key {key} -> /secretsd/{file}")
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict):
            continue
        for source in list(container.get("envFrom") or []):
            ref = (source.get("secretRef") or {}).get("name") if isinstance(source, dict) else None
            keys = secrets.get(namespace, ref) if ref else None
            if keys is None:
                continue
            container["envFrom"].remove(source)
            paths = {item.path for item in keys.values()}
            file = _file_name(str(ref), "env")
            if len(paths) == 1:
                annotations[f"secretsd.io/secret-{file}"] = f"secretsd://{paths.pop()}"
                annotations[f"secretsd.io/format-{file}"] = "dotenv"
                for key, item in sorted(keys.items()):
                    if item.duplicate_of:
                        notes.append(
                            f"{where}: envFrom {ref} key {key} has the same value as "
                            f"{item.duplicate_of}; read it from there and drop the copy"
                        )
            else:
                for key, item in sorted(keys.items()):
                    annotations[f"secretsd.io/secret-{_file_name(str(ref), key)}"] = item.reference
            notes.append(
                f"{where}: container {container.get('name')} envFrom {ref} -> /secretsd/{file} "
                "(dotenv; load it with `set -a; . /secretsd/" + file + "` or `secretsd run`)"
            )
        for env in list(container.get("env") or []):
            ref_obj = (
                ((env.get("valueFrom") or {}).get("secretKeyRef") or {})
                if isinstance(env, dict)
                else {}
            )
            env_ref, env_key = ref_obj.get("name"), ref_obj.get("key")
            keys = secrets.get(namespace, env_ref) if env_ref else None
            if keys is None or env_key not in keys:
                continue
            container["env"].remove(env)
            file = _file_name(str(env_ref), str(env_key))
            annotations[f"secretsd.io/secret-{file}"] = keys[env_key].reference
            notes.append(
                f"{where}: container {container.get('name')} env {env.get('name')} -> "
                f"/secretsd/{file}"
            )
        mounts = container.get("volumeMounts") or []
        kept = [m for m in mounts if not (isinstance(m, dict) and m.get("name") in removed_volumes)]
        if len(kept) != len(mounts):
            container["volumeMounts"] = kept
    if not annotations:
        return False
    metadata = template.setdefault("metadata", {})
    current = metadata.setdefault("annotations", {}) or {}
    metadata["annotations"] = current
    current["secretsd.io/inject"] = "true"
    role = f"{namespace}-{spec.get('serviceAccountName') or 'default'}"
    current.setdefault("secretsd.io/role", role)
    current.update(annotations)
    return True


def _kube(root: Path, items: list[PlanItem], out: Path, notes: list[str]) -> Iterator[Path]:
    secrets = _Secrets(items)
    migrated = set(secrets.keys)
    files = sorted({*(str(i.source.file) for i in items)} | set(_manifests(root)))
    for rel in files:
        raw = (root / rel).read_bytes()
        try:
            documents = list(yaml.safe_load_all(raw))
        except yaml.YAMLError:
            continue
        changed = False
        kept: list[Any] = []
        for document in documents:
            if document is None:
                continue
            if (
                isinstance(document, dict)
                and document.get("kind", "").endswith("List")
                and isinstance(document.get("items"), list)
            ):
                before = len(document["items"])
                document["items"] = [o for o in document["items"] if not _is_migrated(o, migrated)]
                changed |= len(document["items"]) != before
                kept.append(document)
                continue
            if isinstance(document, dict) and _is_migrated(document, migrated):
                changed = True
                continue
            if isinstance(document, dict):
                template = _pod_template(document)
                namespace = str((document.get("metadata") or {}).get("namespace") or "default")
                name = (document.get("metadata") or {}).get("name")
                where = f"{rel}: {document.get('kind')} {namespace}/{name}"
                if template is not None and _annotate_pod(
                    template, namespace, secrets, where, notes
                ):
                    changed = True
            kept.append(document)
        if changed:
            text = yaml.safe_dump_all(kept, sort_keys=False, allow_unicode=True, width=1000)
            yield _write(out, rel, text)


def _is_migrated(obj: Any, migrated: set[tuple[str, str]]) -> bool:
    if not isinstance(obj, dict) or not is_secret(obj):
        return False
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or "default"), str(metadata.get("name"))) in migrated


def _manifests(root: Path) -> Iterator[str]:
    if root.is_file():
        yield root.name
        return
    for path in sorted(root.rglob("*")):
        if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
            yield PurePosixPath(path.relative_to(root).as_posix()).as_posix()
