"""The Kubernetes importer: Secrets from manifests on disk (and, in ``kube_live``, a cluster).

Manifests: multi-document YAML or JSON, ``kind: List`` (what ``kubectl get
secrets -o yaml`` prints), Helm-rendered output; objects that are not core
``v1`` Secrets (ConfigMaps, Deployments, SealedSecrets...) are passed over.
Every Secret type is read the same way: ``data`` is base64, decoded as the
API server does (Go's ``StdEncoding``: standard alphabet, ``=`` padding
required, CR and LF ignored so a wrapped block is valid, anything else an
error; Python's default decoder silently drops invalid characters, so it is
not used); ``stringData`` is text and wins over ``data`` for the same key; a
missing ``type`` means ``Opaque``, a missing namespace ``default``. Values
are kept byte-exact; bytes that are not UTF-8 are stored as binary.

Default target: ``k8s/<namespace>/<name>``, one key per Secret key.
"""

from __future__ import annotations

import binascii
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from secretsd.migrations.model import Imported, Problem, Source, file_digest

__all__ = [
    "HELM_RELEASE_TYPE",
    "SA_TOKEN_TYPE",
    "KubeImporter",
    "KubeManifests",
    "secret_items",
    "strict_b64decode",
]

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"  # noqa: S105 (a type name)
HELM_RELEASE_TYPE = "helm.sh/release.v1"
_SUFFIXES = {".yaml", ".yml", ".json"}
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
MAX_FILE_BYTES = 64 * 1024 * 1024

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Base64Invalid(ValueError):
    """Not base64 as the API server reads it."""


def strict_b64decode(text: str) -> bytes:
    """Decode like Go's ``base64.StdEncoding`` (what the API server uses).

    CR and LF are ignored; any other character outside the standard alphabet,
    missing or misplaced padding is an error.
    """
    raw = text.replace("\r", "").replace("\n", "").encode("ascii", "replace")
    if len(raw) % 4 or not _B64.fullmatch(raw):
        raise Base64Invalid(
            "characters outside the base64 alphabet"
            if not _B64.fullmatch(raw)
            else "length is not a multiple of 4 (missing '=' padding?)"
        )
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error:
        raise Base64Invalid("malformed base64 padding") from None


@dataclass(frozen=True)
class KubeManifests:
    """A manifest file or a folder of them (searched recursively)."""

    path: Path
    skip_types: frozenset[str] = frozenset()
    namespaces: Sequence[str] = field(default_factory=tuple)  # only these, if given


def _problem(src: Source, where: str, code: str, message: str, digest: str) -> Imported:
    return Imported(
        src,
        "k8s",
        f"k8s/{src.namespace or 'default'}/{src.name or 'unnamed'}",
        src.key or "value",
        digest,
        problem=Problem(code, where, message),
    )


def secret_items(
    obj: Mapping[str, Any],
    *,
    file: str | None,
    where: str,
    fingerprint: str,
    skip_types: frozenset[str] = frozenset(),
    namespaces: Sequence[str] = (),
) -> Iterator[Imported]:
    """The values of one Secret object (a manifest mapping or a serialised API object)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    name = metadata.get("name")
    namespace = metadata.get("namespace") or "default"
    secret_type = obj.get("type") or "Opaque"
    base = Source("k8s", file, None, str(namespace), str(name) if name else None, None)
    if not isinstance(name, str) or not name:
        yield _problem(
            base,
            where,
            "manifest_invalid",
            "a Secret without metadata.name; give it a name (Kubernetes requires one)",
            fingerprint,
        )
        return
    if not isinstance(namespace, str) or not _KEY.fullmatch(namespace):
        yield _problem(
            base, where, "manifest_invalid", "metadata.namespace is not a name", fingerprint
        )
        return
    if secret_type in skip_types or (namespaces and namespace not in namespaces):
        return
    where = f"{where} Secret {namespace}/{name}"
    values: dict[str, tuple[bytes, str]] = {}
    failed: list[Imported] = []
    for field_name in ("data", "stringData"):
        section = obj.get(field_name)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            yield _problem(
                base,
                where,
                "manifest_invalid",
                f"{field_name} is not a map of keys to strings",
                fingerprint,
            )
            return
        for key, raw in section.items():
            src = Source("k8s", file, None, namespace, name, str(key))
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                failed.append(
                    _problem(
                        src,
                        f"{where} {field_name}",
                        "manifest_invalid",
                        "a key outside the Kubernetes key charset (letters, digits, '-', '_', '.')",
                        fingerprint,
                    )
                )
                continue
            if raw is None:
                raw = ""
            if not isinstance(raw, str):
                failed.append(
                    _problem(
                        src,
                        f"{where} {field_name}.{key}",
                        "manifest_invalid",
                        f"the value is a {type(raw).__name__}, not a string; quote it "
                        "(the API server rejects it too)",
                        fingerprint,
                    )
                )
                continue
            if field_name == "data":
                try:
                    values[key] = (strict_b64decode(raw), "data")
                except Base64Invalid as error:
                    failed.append(
                        _problem(
                            src,
                            f"{where} data.{key}",
                            "base64_invalid",
                            f"not valid base64 ({error}); encode the value with `base64 -w0`",
                            fingerprint,
                        )
                    )
            else:
                values[key] = (raw.encode("utf-8"), "stringData")
    yield from failed
    if failed:
        return
    for key in sorted(values):
        value, origin_field = values[key]
        yield Imported(
            Source("k8s", file, None, namespace, name, key),
            "k8s",
            f"k8s/{namespace}/{name}",
            key,
            fingerprint,
            value,
            {
                "namespace": namespace,
                "name": name,
                "type": str(secret_type),
                "field": origin_field,
                "file": file or "",
            },
        )


def _objects(document: Any) -> Iterator[tuple[int | None, Mapping[str, Any]]]:
    if not isinstance(document, Mapping):
        return
    kind = document.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list):
        for index, item in enumerate(document["items"]):
            if isinstance(item, Mapping):
                yield index, item
    else:
        yield None, document


def is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and obj.get("apiVersion", "v1") == "v1"


class KubeImporter:
    """``read(KubeManifests) -> Iterator[Imported]``: pure, reads files only."""

    def read(self, source: KubeManifests) -> Iterator[Imported]:
        root = source.path
        files = [root] if root.is_file() else list(_manifest_files(root))
        base = root.parent if root.is_file() else root
        for path in files:
            rel = PurePosixPath(path.relative_to(base).as_posix())
            try:
                data = path.read_bytes()
            except OSError as error:
                yield _problem(
                    Source("k8s", str(rel)),
                    str(rel),
                    "manifest_invalid",
                    f"cannot read the file ({error.strerror})",
                    "",
                )
                continue
            yield from self.read_bytes(str(rel), data, source)

    def read_bytes(self, rel: str, data: bytes, source: KubeManifests) -> Iterator[Imported]:
        digest = file_digest(data)
        if b"Secret" not in data:
            return
        try:
            documents = list(yaml.load_all(data, Loader=_Loader))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            yield _problem(
                Source("k8s", rel),
                f"{rel}{line}",
                "yaml_invalid",
                "not valid YAML; fix the manifest (kubectl would refuse it too)",
                digest,
            )
            return
        for doc_index, document in enumerate(documents):
            for list_index, obj in _objects(document):
                if not is_secret(obj):
                    continue
                where = f"{rel} document {doc_index + 1}"
                if list_index is not None:
                    where += f" item {list_index + 1}"
                yield from secret_items(
                    obj,
                    file=rel,
                    where=where,
                    fingerprint=digest,
                    skip_types=source.skip_types,
                    namespaces=source.namespaces,
                )


def _manifest_files(root: Path) -> Iterable[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix in _SUFFIXES and path.is_file() and not path.is_symlink():
                yield path
