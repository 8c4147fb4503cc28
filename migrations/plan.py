"""Planning, shared by every importer: what would be written where, compared with secretsd.

``build_plan`` maps every imported value to its target, reads the current
state of all target secrets with batch resolves (one round trip per 250
secrets, never one per secret, overlapping the reading of the sources) and
classifies each value ``new``, ``changed``, ``unchanged`` or ``error``. It
also finds duplicates: the same value in several places, with a proposal to
keep one path and reference it from the others. Nothing is written.

A saved plan (``to_json``) holds no value: only targets, sources, each
source's fingerprint (file digest or object version) and the version of
every target secret at plan time. Applying it reads the sources again and
refuses, writing nothing, if any fingerprint or target version differs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from secretsd.migrations.mapping import Mapper, source_id
from secretsd.migrations.model import Imported, Origin, Problem, Source

from secretsd.errors import InvalidInput, NotFound, SecretsdError, Unauthenticated, Unavailable

if TYPE_CHECKING:
    from secretsd.client import Client

__all__ = ["PLAN_SCHEMA", "Plan", "PlanItem", "TargetState", "build_plan", "read_targets"]

PLAN_SCHEMA = "secretsd-migrate-plan/1"
RESOLVE_BATCH = 250
RESOLVE_PARALLEL = 2
#: Values shorter than this are not reported as duplicates ("true", "5432", ports, flags).
DUPLICATE_MIN_BYTES = 8


@dataclass(slots=True)
class PlanItem:
    """One source value in a plan; ``value`` is never serialised."""

    source: Source
    origin: Origin
    path: str
    key: str
    action: str  # new | changed | unchanged | error
    fingerprint: str
    binary: bool = False
    note: str = ""
    problem: Problem | None = None
    duplicate_of: str | None = None
    value: bytes = field(default=b"", repr=False)

    @property
    def target(self) -> str:
        return f"secretsd://{self.path}#{self.key}"

    @property
    def reference(self) -> str:
        """What the rewritten source should point at: the kept copy of a duplicate value."""
        return self.duplicate_of or self.target

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "action": self.action,
            "target": self.target,
            "source": self.source.to_json(),
            "origin": self.origin,
            "fingerprint": self.fingerprint,
            "binary": self.binary,
        }
        if self.origin == "plaintext":
            item["plaintext_finding"] = self.note
        if self.duplicate_of:
            item["duplicate_of"] = self.duplicate_of
        if self.problem is not None:
            item["error"] = self.problem.to_json()
        return item


@dataclass(frozen=True, slots=True)
class TargetState:
    """A target secret now: its version (0: absent) and its values' exact bytes."""

    version: int
    data: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    problem: str = ""


@dataclass
class Plan:
    plan_id: str
    source: dict[str, Any]  # how to read the sources again (no passwords)
    mapping: dict[str, Any]
    items: list[PlanItem]
    targets: dict[str, int]  # path -> version at plan time (0: absent)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    current: dict[str, TargetState] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[PlanItem]:
        return [item for item in self.items if item.problem is not None]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for item in self.items:
            counts[item.action] += 1
        return dict(counts)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "plan_id": self.plan_id,
            "source": self.source,
            "mapping": self.mapping,
            "summary": self.counts(),
            "items": [item.to_json() for item in self.items],
            "targets": dict(sorted(self.targets.items())),
            "duplicates": self.duplicates,
            "errors": [item.problem.to_json() for item in self.errors if item.problem],
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> Plan:
        if not isinstance(raw, Mapping) or raw.get("schema") != PLAN_SCHEMA:
            raise InvalidInput(
                f"{where} is not a migration plan ({PLAN_SCHEMA}); make one with "
                "`secretsd migrate plan ... --out FILE`"
            )
        try:
            items = []
            for entry in raw["items"]:
                path, _, key = str(entry["target"]).removeprefix("secretsd://").partition("#")
                problem = entry.get("error")
                items.append(
                    PlanItem(
                        Source.from_json(entry["source"]),
                        entry["origin"],
                        path,
                        key,
                        entry["action"],
                        entry["fingerprint"],
                        bool(entry.get("binary")),
                        entry.get("plaintext_finding", ""),
                        Problem(problem["code"], problem["where"], problem["message"])
                        if problem
                        else None,
                        entry.get("duplicate_of"),
                    )
                )
            return cls(
                str(raw["plan_id"]),
                dict(raw["source"]),
                dict(raw["mapping"]),
                items,
                {str(k): int(v) for k, v in raw["targets"].items()},
                list(raw.get("duplicates", [])),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InvalidInput(
                f"{where} is a damaged migration plan (a field is missing or has the wrong "
                "type); make a new one with `secretsd migrate plan`"
            ) from None


def _plan_id(
    source: Mapping[str, Any], mapping: Mapping[str, Any], items: Sequence[PlanItem]
) -> str:
    """Depends on the sources and the mapping only, so a rerun of the same sources has the
    same id (provenance written by an interrupted run and by its rerun agree)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([source, mapping], sort_keys=True, default=str).encode())
    for item in items:
        digest.update(f"\0{source_id(item.source)}\0{item.target}\0{item.fingerprint}".encode())
    return digest.hexdigest()[:20]


def _resolve_batch(client: Client, batch: Sequence[str]) -> dict[str, TargetState]:
    refs = [f"secretsd://{p}" for p in batch]
    answers = client.resolve(refs, raise_errors=False)
    for attempt in range(2):  # a busy Vault may time out a few reads of a big batch
        if not any(isinstance(a.error, Unavailable) for a in answers):
            break
        time.sleep(0.5 * (attempt + 1))
        answers = client.resolve(refs, raise_errors=False)
    states: dict[str, TargetState] = {}
    for path, answer in zip(batch, answers, strict=True):
        error = answer.error
        if error is None:
            states[path] = TargetState(answer.version, answer.data_bytes())
        elif isinstance(error, NotFound):
            states[path] = TargetState(0)
        elif isinstance(error, Unauthenticated | Unavailable):
            raise error
        else:
            states[path] = TargetState(-1, problem=f"{error.code}: {error.message}")
    return states


class TargetReader:
    """Reads target secrets in batches while paths keep coming (from a running importer).

    Each full batch of 250 paths is resolved at once on a worker thread (two in
    flight, so every worker of the service has one to answer), so reading the
    sources (decryption) and reading secretsd overlap.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._pool = ThreadPoolExecutor(max_workers=RESOLVE_PARALLEL)
        self._seen: set[str] = set()
        self._pending: list[str] = []
        self._futures: list[Future[dict[str, TargetState]]] = []

    def add(self, path: str) -> None:
        if path in self._seen:
            return
        self._seen.add(path)
        self._pending.append(path)
        if len(self._pending) >= RESOLVE_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self._futures.append(self._pool.submit(_resolve_batch, self._client, batch))

    def result(self) -> dict[str, TargetState]:
        self._flush()
        states: dict[str, TargetState] = {}
        try:
            for future in self._futures:
                states.update(future.result())
        finally:
            self._pool.shutdown(cancel_futures=True)
        return states


def read_targets(client: Client, paths: Iterable[str]) -> dict[str, TargetState]:
    """The state of many secrets: batch resolves of 250 paths, two in flight."""
    reader = TargetReader(client)
    for path in sorted(set(paths)):
        reader.add(path)
    return reader.result()


def _duplicates(items: Sequence[PlanItem]) -> list[dict[str, Any]]:
    groups: dict[bytes, list[PlanItem]] = defaultdict(list)
    for item in items:
        if item.problem is None and len(item.value) >= DUPLICATE_MIN_BYTES:
            groups[hashlib.sha256(item.value).digest()].append(item)
    found: list[dict[str, Any]] = []
    for members in groups.values():
        targets = sorted({m.target for m in members})
        if len(targets) < 2:
            continue
        # Keep an encrypted copy over a plaintext one, then the shortest, then the first name.
        keep = min(members, key=lambda m: (m.origin == "plaintext", len(m.target), m.target))
        for member in members:
            if member.target != keep.target:
                member.duplicate_of = keep.target
        found.append(
            {
                "keep": keep.target,
                "reference_from": [t for t in targets if t != keep.target],
                "sources": [m.source.to_json() for m in members],
                "proposal": f"keep {keep.target} and make the other places reference it "
                "(then remove their copies)",
            }
        )
    found.sort(key=lambda d: str(d["keep"]))
    return found


def build_plan(
    imported: Iterable[Imported],
    mapper: Mapper,
    client: Client,
    *,
    source: Mapping[str, Any],
    mapping: Mapping[str, Any],
) -> Plan:
    """Map, compare with secretsd (batch reads only) and classify every value."""
    items: list[PlanItem] = []
    reader = TargetReader(client)
    for entry in imported:
        problem = entry.problem
        path, key = entry.default_path, entry.default_key
        if problem is None:
            try:
                path, key = mapper.target(entry)
            except SecretsdError as error:
                problem = Problem("mapping_invalid", entry.source.label(), error.message)
        binary = False
        if problem is None:
            try:
                entry.value.decode("utf-8")
            except UnicodeDecodeError:
                binary = True
        items.append(
            PlanItem(
                entry.source,
                entry.origin,
                path,
                key,
                "error" if problem else "",
                entry.fingerprint,
                binary,
                entry.note,
                problem,
                value=entry.value,
            )
        )
        if problem is None:
            reader.add(path)
    items.sort(key=lambda i: i.source.sort_key())
    by_target: dict[tuple[str, str], list[PlanItem]] = defaultdict(list)
    for item in items:
        if item.problem is None:
            by_target[(item.path, item.key)].append(item)
    for (path, key), members in by_target.items():
        if len({m.value for m in members}) > 1:
            names = "; ".join(m.source.label() for m in members)
            for member in members:
                member.problem = Problem(
                    "target_collision",
                    member.source.label(),
                    f"different values map to secretsd://{path}#{key} ({names}); "
                    "give them distinct targets with a rules file (--rules)",
                )
                member.action = "error"
    current = reader.result()
    for item in items:
        if item.problem is not None:
            continue
        state = current[item.path]
        if state.version < 0:
            item.problem = Problem("target_unreadable", item.target, state.problem)
            item.action = "error"
        elif item.key not in state.data:
            item.action = "new"
        elif state.data[item.key] == item.value:
            item.action = "unchanged"
        else:
            item.action = "changed"
    return Plan(
        _plan_id(source, mapping, items),
        dict(source),
        dict(mapping),
        items,
        {path: state.version for path, state in current.items() if state.version >= 0},
        _duplicates(items),
        current,
    )
