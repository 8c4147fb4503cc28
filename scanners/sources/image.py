"""Container images: every file of every layer, plus the image config and build history.

``secretsd scan --image PATH`` reads an image without a container engine, from
any of the three forms tools write to disk:

* a ``docker save`` archive (``manifest.json`` naming the config and each
  layer's ``layer.tar``; also what ``skopeo copy ... docker-archive:`` writes),
* an OCI archive (a tar of an OCI layout: ``oci-layout``, ``index.json``,
  ``blobs/sha256/...``; ``skopeo copy ... oci-archive:``, ``buildah push``),
* an OCI layout directory (``umoci``, ``skopeo copy ... oci:``).

Every layer is scanned on its own, in order, so a file that a later layer
deletes (a whiteout) or overwrites is still found, and is reported with the
layer that added it: a secret in a lower layer ships with the image whatever
the upper layers do. The image config's ``Env``, ``Cmd``, ``Entrypoint``,
labels and the build history's ``created_by`` lines (``ENV``, ``ARG``,
``RUN echo ... > ~/.netrc``) are scanned as text too. Paths read
``image@sha256:<image id>:<layer>/<path>``, the layer being the first 12 hex
digits of its uncompressed digest (``diff_id``, the same in every format), or
``config/Env`` and friends for the config.

Layers are streamed (``tarfile`` in stream mode), so memory stays flat
whatever the image size; gzip layers are decompressed on the fly. zstd layers
need the ``zstandard`` package and are reported as skipped without it.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from secretsd.scanners.model import Fragment
from secretsd.scanners.sources.tree import SkipStats

from secretsd.errors import InvalidInput

__all__ = ["ImageSource", "inner_path"]

_SNIFF = 8192
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_WHITEOUT = ".wh."


def inner_path(path: str) -> str:
    """``image@sha256:<id>:<layer>/etc/app.env`` -> ``etc/app.env`` (the path inside the image);
    the config and the build history are one place (an ``ENV`` shows up in both)."""
    _image, _sep, rest = path.rpartition("@sha256:")
    _digest, _sep, located = rest.partition(":")
    if located.startswith(("config/", "history/")):
        return "config"
    return located.partition("/")[2]


@dataclass
class _Layer:
    diff_id: str
    open: Any  # () -> binary file object of the (possibly compressed) layer tar
    media_type: str = ""


class _Store:
    """Read files of an image on disk: a directory or a tar archive, by relative path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if path.is_file():
            try:
                self._tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
            except (tarfile.TarError, OSError) as error:
                raise InvalidInput(
                    f"--image {str(path)!r} is not a tar archive ({error}); give a `docker save` "
                    "archive, an OCI archive or an OCI layout directory"
                ) from None
            for member in self._tar.getmembers():
                self._members[member.name.removeprefix("./")] = member
        elif not path.is_dir():
            raise InvalidInput(
                f"--image {str(path)!r} does not exist; give a `docker save` archive, an OCI "
                "archive or an OCI layout directory"
            )

    def exists(self, name: str) -> bool:
        if self._tar is not None:
            return name in self._members
        return (self.path / name).is_file()

    def open(self, name: str) -> IO[bytes]:
        if self._tar is not None:
            member = self._members.get(name)
            handle = self._tar.extractfile(member) if member is not None else None
            if handle is None:
                raise InvalidInput(
                    f"--image {str(self.path)!r}: {name} is missing from the archive"
                )
            return handle
        try:
            return (self.path / name).open("rb")
        except OSError as error:
            raise InvalidInput(
                f"--image {str(self.path)!r}: cannot read {name} ({error.strerror})"
            ) from None

    def read(self, name: str) -> bytes:
        with self.open(name) as handle:
            return handle.read()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError:
            raise InvalidInput(f"--image {str(self.path)!r}: {name} is not valid JSON") from None

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()


def _blob(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


class ImageSource:
    """Fragments of one image: config text first, then each layer's files, lowest layer first."""

    def __init__(
        self,
        path: Path,
        *,
        max_file_size: int,
        stats: SkipStats,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.path = path
        self.progress = progress  # (bytes, layers done); called with 0 layers first
        self.max_file_size = max_file_size
        self.stats = stats
        self.layers_scanned = 0
        self.layers_total = 0
        self.image_id = ""
        self.name = "image"

    # -- reading the image's structure -----------------------------------------------
    def _docker(self, store: _Store) -> tuple[bytes, list[_Layer]]:
        manifest = store.json("manifest.json")
        if not isinstance(manifest, list) or not manifest or "Config" not in manifest[0]:
            raise InvalidInput(f"--image {str(self.path)!r}: manifest.json has no image")
        entry = manifest[0]
        tags = entry.get("RepoTags") or []
        if tags:
            self.name = str(tags[0])
        config = store.read(str(entry["Config"]))
        diff_ids = json.loads(config).get("rootfs", {}).get("diff_ids", [])
        layers = []
        for index, name in enumerate(entry.get("Layers", [])):
            diff_id = diff_ids[index] if index < len(diff_ids) else str(name)
            layers.append(_Layer(str(diff_id), lambda n=str(name): store.open(n)))
        return config, layers

    def _oci(self, store: _Store) -> tuple[bytes, list[_Layer]]:
        index = store.json("index.json")
        manifests = index.get("manifests") or []
        if not manifests:
            raise InvalidInput(f"--image {str(self.path)!r}: index.json lists no image")
        descriptor = manifests[0]
        for _depth in range(4):  # an index of indexes (multi-platform): take the first image
            if descriptor.get("mediaType") not in _INDEX_TYPES:
                break
            nested = store.json(_blob(descriptor["digest"]))
            descriptor = (nested.get("manifests") or [descriptor])[0]
        name = (descriptor.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        if name:
            self.name = str(name)
        manifest = store.json(_blob(descriptor["digest"]))
        config = store.read(_blob(manifest["config"]["digest"]))
        diff_ids = json.loads(config).get("rootfs", {}).get("diff_ids", [])
        layers = []
        for position, layer in enumerate(manifest.get("layers", [])):
            diff_id = diff_ids[position] if position < len(diff_ids) else layer["digest"]
            blob = _blob(layer["digest"])
            layers.append(
                _Layer(str(diff_id), lambda b=blob: store.open(b), str(layer.get("mediaType", "")))
            )
        return config, layers

    # -- fragments ---------------------------------------------------------------------
    def _prefix(self) -> str:
        # Always "image": the same image saved in another format (with another tag, or
        # none) yields the same paths and fingerprints; its name is in the stats.
        return f"image@sha256:{self.image_id}"

    def _config_fragments(self, config: dict[str, Any]) -> Iterator[Fragment]:
        """The config as text in Dockerfile shapes, so the usual rules apply to it."""
        body = config.get("config") or config.get("container_config") or {}
        prefix = self._prefix()
        env = body.get("Env") or []
        if env:
            text = "".join(f"ENV {item}\n" for item in env if isinstance(item, str))
            yield Fragment(f"{prefix}:config/Env", text.encode())
        for key in ("Entrypoint", "Cmd"):
            value = body.get(key)
            if isinstance(value, list) and value:
                yield Fragment(
                    f"{prefix}:config/{key}", (" ".join(map(str, value)) + "\n").encode()
                )
        labels = body.get("Labels") or {}
        if labels:
            text = "".join(f"{k}={v}\n" for k, v in labels.items())
            yield Fragment(f"{prefix}:config/Labels", text.encode())
        history = config.get("history") or []
        lines = [str(h.get("created_by", "")) for h in history if isinstance(h, dict)]
        if any(lines):
            text = "".join(_history_line(line) + "\n" for line in lines)
            yield Fragment(f"{prefix}:history/created_by", text.encode())

    def _layer_files(self, layer: _Layer) -> Iterator[Fragment]:
        layer_id = layer.diff_id.partition(":")[2][:12] or layer.diff_id[:12]
        prefix = f"{self._prefix()}:{layer_id}/"
        stats = self.stats
        if "zstd" in layer.media_type:
            try:
                import zstandard  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                stats.unreadable += 1
                stats.skipped_paths.append(f"{prefix} (zstd layer: pip install zstandard)")
                return
            handle = zstandard.ZstdDecompressor().stream_reader(layer.open())
            stream = tarfile.open(fileobj=handle, mode="r|")  # noqa: SIM115 - closed below
        else:
            handle = layer.open()
            stream = tarfile.open(fileobj=handle, mode="r|*")  # noqa: SIM115
        with handle, stream:
            for member in stream:
                name = posixpath.normpath(member.name.lstrip("/")).removeprefix("./")
                base = posixpath.basename(name)
                if base.startswith(_WHITEOUT):
                    continue  # a deletion marker: the lower layer's file was scanned there
                if member.issym() or member.islnk():
                    stats.symlinks += 1
                    continue
                if not member.isfile():
                    continue
                if member.size > self.max_file_size:
                    stats.too_large += 1
                    stats.skipped_paths.append(prefix + name)
                    continue
                member_file = stream.extractfile(member)
                if member_file is None:
                    continue
                data = member_file.read()
                if b"\0" in data[:_SNIFF]:
                    stats.binary += 1
                    continue
                stats.files += 1
                stats.bytes += len(data)
                yield Fragment(prefix + name, data)
        self.layers_scanned += 1

    def fragments(self) -> Iterator[Fragment]:
        store = _Store(self.path)
        try:
            if store.exists("manifest.json"):
                config_raw, layers = self._docker(store)
            elif store.exists("index.json"):
                config_raw, layers = self._oci(store)
            else:
                raise InvalidInput(
                    f"--image {str(self.path)!r} has neither manifest.json (docker save) nor "
                    "index.json (OCI); give a `docker save` archive, an OCI archive or an OCI "
                    "layout directory"
                )
            self.image_id = hashlib.sha256(config_raw).hexdigest()
            try:
                config = json.loads(config_raw)
            except ValueError:
                raise InvalidInput(
                    f"--image {str(self.path)!r}: the image config is not valid JSON"
                ) from None
            self.stats.bytes += len(config_raw)
            yield from self._config_fragments(config)
            self.layers_total = len(layers)
            if self.progress is not None:
                self.progress(0, 0)
            for layer in layers:
                before = self.stats.bytes
                try:
                    yield from self._layer_files(layer)
                except (tarfile.TarError, OSError, EOFError) as error:
                    raise InvalidInput(
                        f"--image {str(self.path)!r}: layer {layer.diff_id} is not a readable tar "
                        f"({error}); is the archive complete?"
                    ) from None
                if self.progress is not None:
                    self.progress(self.stats.bytes - before, 1)
        finally:
            store.close()


def _history_line(created_by: str) -> str:
    """``/bin/sh -c #(nop)  ENV A=b`` -> ``ENV A=b``; ``/bin/sh -c echo x`` -> ``RUN echo x``."""
    line = created_by.strip()
    for shell in ("/bin/sh -c ", "/bin/bash -c "):
        if line.startswith(shell):
            line = line[len(shell) :].strip()
    if line.startswith("#(nop)"):
        return line[len("#(nop)") :].strip()
    if line.split(" ", 1)[0] in ("ENV", "ARG", "RUN", "LABEL", "COPY", "ADD", "CMD", "USER"):
        return line
    return "RUN " + line
