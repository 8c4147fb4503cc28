"""What importers produce: one :class:`Imported` per source value, and the ``Importer`` protocol.

An importer is pure: it reads its source (files, or a cluster's API) and
yields items; it never writes anywhere and never talks to secretsd. Planning
and applying (``plan.py``, ``apply.py``) are shared by every importer.

A value that cannot be read (wrong password, bad base64...) is still an item,
carrying a :class:`Problem` instead of a value, so a plan can show every bad
input at once and ``--skip-errors`` can carry on with the good ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["Imported", "Importer", "Origin", "Problem", "Source", "file_digest"]

#: ``vault`` an encrypted Ansible value, ``plaintext`` a plain Ansible variable the
#: scanner's rules call a secret, ``k8s`` a Kubernetes Secret value.
Origin = Literal["vault", "plaintext", "k8s"]

PathPart = str | int


@dataclass(frozen=True, slots=True)
class Source:
    """Where one value comes from (the ``source`` object of the plan JSON)."""

    type: Literal["ansible", "k8s"]
    file: str | None  # relative to the root given; None: live cluster / whole file
    var_path: tuple[PathPart, ...] | None = None  # ansible (None: a whole encrypted file)
    namespace: str | None = None  # k8s
    name: str | None = None
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.type == "ansible":
            return {
                "type": "ansible",
                "file": self.file,
                "var_path": list(self.var_path) if self.var_path is not None else None,
            }
        return {
            "type": "k8s",
            "file": self.file,
            "namespace": self.namespace,
            "name": self.name,
            "key": self.key,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Source:
        if raw.get("type") == "ansible":
            var_path = raw.get("var_path")
            return cls(
                "ansible",
                raw.get("file"),
                tuple(var_path) if var_path is not None else None,
            )
        return cls(
            "k8s", raw.get("file"), None, raw.get("namespace"), raw.get("name"), raw.get("key")
        )

    def label(self) -> str:
        """A short human name: ``group_vars/all.yml: db.password``, ``k8s shop/web#key``."""
        if self.type == "ansible":
            where = self.file or "?"
            if self.var_path is None:
                return where
            return f"{where}: {'.'.join(str(p) for p in self.var_path)}"
        obj = f"{self.namespace}/{self.name}"
        if self.key:
            obj += f"#{self.key}"
        return f"{self.file}: {obj}" if self.file else f"cluster: {obj}"

    def sort_key(self) -> tuple[str, ...]:
        return (
            self.type,
            self.file or "",
            self.namespace or "",
            self.name or "",
            "\0".join(str(p) for p in self.var_path or ()),
            self.key or "",
        )


@dataclass(frozen=True, slots=True)
class Problem:
    """A bad input: a stable ``code``, where it is, and how to fix it (never a value)."""

    code: str
    where: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "where": self.where, "message": self.message}

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.code}]"


@dataclass(frozen=True, slots=True)
class Imported:
    """One source value (or the problem that kept it from being read).

    ``fingerprint`` identifies the exact source state (the SHA-256 of the file
    bytes, or a live object's uid and resourceVersion): a saved plan keeps it
    instead of the value, and applying refuses when it changed. ``context`` holds
    the names the target mapping may use (``group``, ``var``, ``namespace``...).
    """

    source: Source
    origin: Origin
    default_path: str
    default_key: str
    fingerprint: str
    value: bytes = field(default=b"", repr=False)
    context: Mapping[str, str] = field(default_factory=dict)
    problem: Problem | None = None
    note: str = ""  # e.g. the scanner rule that flagged a plaintext value

    def __repr__(self) -> str:
        state = f"problem={self.problem.code}" if self.problem else "value=<hidden>"
        return f"Imported({self.source.label()!r}, {self.origin}, {state})"


class Importer(Protocol):
    """Reads one kind of source; pure (no writes, no secretsd)."""

    def read(self, source: Any) -> Iterator[Imported]:
        """Every value of ``source``, in a stable order."""
        ...


def file_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
