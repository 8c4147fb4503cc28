"""Noticing that the agent's configuration changed, without a pod restart.

The kubelet rewrites the downward-API annotations file when a pod's
annotations change (``kubectl annotate pod ...``): it writes a new timestamped
directory and swaps the ``..data`` symlink, so the file gets a new inode. The
sidecar asks :meth:`ConfigSource.changed` about once a second (a ``stat`` per
file, nothing more while nothing changes) and, when it did, loads the whole
configuration again with the one loader (``secretsd.agent.config``). A file
that no longer parses is reported and ignored: the agent keeps its current
configuration and its files until a good version arrives.
"""

from __future__ import annotations

import os
from pathlib import Path

from secretsd.agent.config import AgentConfig, load_config

__all__ = ["ConfigSource"]

Fingerprint = tuple[tuple[int, int, int] | None, ...]


class ConfigSource:
    """The annotations file and/or the YAML file the agent was started with."""

    def __init__(
        self,
        annotations: Path | None,
        config: Path | None,
        *,
        default_annotations: Path | None = None,
    ) -> None:
        self.annotations = annotations
        self.config = config
        self.default_annotations = default_annotations
        self._seen: Fingerprint | None = None

    def files(self) -> list[Path]:
        found = [p for p in (self.config, self.annotations) if p is not None]
        if self.annotations is None and self.default_annotations is not None:
            found.append(self.default_annotations)
        return found

    def _fingerprint(self) -> Fingerprint:
        marks: list[tuple[int, int, int] | None] = []
        for path in self.files():
            try:
                info = os.stat(path)  # follows the downward API's symlinks
            except OSError:
                marks.append(None)
            else:
                marks.append((info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(marks)

    def load(self) -> AgentConfig:
        """The configuration as the files say now (ConfigError if they do not parse)."""
        self._seen = self._fingerprint()
        return load_config(
            self.annotations, self.config, default_annotations=self.default_annotations
        )

    def changed(self) -> bool:
        """Whether a file changed since the last ``load`` (or the last True answer)."""
        now = self._fingerprint()
        if now == self._seen:
            return False
        self._seen = now
        return True
