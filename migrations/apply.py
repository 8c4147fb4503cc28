"""Applying a plan through the SDK, idempotently, and verifying drift afterwards.

Every write goes through ``secretsd.Client`` (authorised and audited like any
other): one check-and-set write per target secret (``cas`` = the version the
plan saw; 0 = create only), merging the planned keys into the secret's other
keys, carrying its provenance for the secret's custom metadata
(``secretsd-migrate-plan``, ``secretsd-migrate-source``,
``secretsd-migrate-key.<key>``) in the same write. Writes travel in batches
(``Client.put_many``: one request per 100 secrets, each write still decided,
audited and check-and-set on its own by the service), so a migration costs
one round trip per hundred secrets, not two per secret. Unchanged values are
not written; nothing is ever deleted, in secretsd or in the source.

Crash safety. A rerun after an interruption plans again from the sources and
sees what the first run wrote: values already there are ``unchanged``. The
one gap is a kill between a secret's data write and its metadata write (two
Vault calls the service makes for one write); a small journal closes it:
before a batch of writes the target paths are appended (and fsynced) as
pending, after the batch's answer as done; a rerun writes the provenance of
every path still pending whose values are already in place. The plan id
depends only on the sources and the mapping, so the provenance of an
interrupted run and of its rerun are identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secretsd.migrations.model import Imported, Source
from secretsd.migrations.plan import Plan, PlanItem, TargetState, read_targets

from secretsd.client import SecretWrite
from secretsd.errors import CasMismatch, Conflict, InvalidInput, SecretsdError, Unauthenticated

if TYPE_CHECKING:
    from secretsd.client import Client, Written

__all__ = [
    "ApplyReport",
    "Journal",
    "apply_plan",
    "check_sources",
    "default_journal",
    "provenance",
]

META_PLAN = "secretsd-migrate-plan"
META_SOURCE = "secretsd-migrate-source"
META_KEY = "secretsd-migrate-key."
MAX_KEY_ENTRIES = 48  # Vault allows 64 custom-metadata keys; leave room for others
#: Secrets per batch request (and per journal entry); a few batches are in flight at once.
BATCH = 100


class Journal:
    """Append-only record of paths whose write is in flight (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def pending(self) -> set[str]:
        pending: set[str] = set()
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return pending
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line from a kill
            pending.update(entry.get("pending", ()))
            pending.difference_update(entry.get("done", ()))
        return pending

    def _append(self, entry: Mapping[str, Any], sync: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(entry) + "\n").encode())
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def begin(self, paths: Sequence[str]) -> None:
        self._append({"pending": list(paths)}, sync=True)

    def done(self, paths: Sequence[str]) -> None:
        self._append({"done": list(paths)}, sync=False)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def default_journal(addr: str, plan: Plan) -> Journal:
    """One journal per service address and source, in the user's state folder."""
    import platformdirs

    key = hashlib.sha256(
        json.dumps([addr, plan.source, plan.mapping], sort_keys=True, default=str).encode()
    ).hexdigest()[:24]
    return Journal(platformdirs.user_state_path("secretsd") / "migrate" / f"{key}.journal")


def _source_summary(items: Sequence[PlanItem]) -> str:
    labels = sorted({_source_object(i.source) for i in items})
    text = labels[0] if len(labels) == 1 else f"{labels[0]} (+{len(labels) - 1} more)"
    return text[:512]


def _source_object(source: Source) -> str:
    if source.type == "ansible":
        return f"ansible:{source.file}"
    where = source.file if source.file is not None else "cluster"
    return f"k8s:{where}:{source.namespace}/{source.name}"


def provenance(plan_id: str, items: Sequence[PlanItem]) -> dict[str, str]:
    """The custom metadata of one target secret written by plan ``plan_id``."""
    meta = {META_PLAN: plan_id, META_SOURCE: _source_summary(items)}
    keyed = sorted({i.key: i for i in items}.items())
    if len(keyed) <= MAX_KEY_ENTRIES:
        for key, item in keyed:
            source = item.source
            if source.type == "ansible":
                var = ".".join(str(p) for p in source.var_path) if source.var_path else "(file)"
                detail = f"{source.file}: {var}"
            else:
                detail = f"{source.namespace}/{source.name}#{source.key}"
            meta[(META_KEY + key)[:128]] = detail[:512]
    return meta


@dataclass
class ApplyReport:
    plan_id: str
    written: list[str] = field(default_factory=list)  # target paths written
    unchanged: int = 0
    repaired: list[str] = field(default_factory=list)  # provenance completed after a crash
    skipped: list[PlanItem] = field(default_factory=list)  # items with errors (--skip-errors)
    failed: dict[str, str] = field(default_factory=dict)  # path -> error message

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def to_json(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "written": sorted(self.written),
            "unchanged": self.unchanged,
            "provenance_repaired": sorted(self.repaired),
            "skipped": [i.problem.to_json() for i in self.skipped if i.problem],
            "failed": [{"path": p, "message": m} for p, m in sorted(self.failed.items())],
        }


def check_sources(plan: Plan, fresh: Iterable[Imported]) -> None:
    """Refuse (InvalidInput) when the sources read now differ from the reviewed plan."""
    now = {(i.source, i.fingerprint) for i in fresh}
    then = {(i.source, i.fingerprint) for i in plan.items}
    if now != then:
        changed = sorted({s.label() for s, _ in now ^ then})
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        raise InvalidInput(
            f"the sources changed since plan {plan.plan_id} was made ({shown}); nothing was "
            "written. Make and review a new plan."
        )


def _check_targets(plan: Plan, now: Mapping[str, TargetState]) -> None:
    moved = sorted(
        f"{path} (version {version} -> {now[path].version})"
        for path, version in plan.targets.items()
        if now[path].version != version
    )
    if moved:
        shown = ", ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
        raise Conflict(
            f"target secrets changed since plan {plan.plan_id} was made: {shown}; nothing was "
            "written. Make and review a new plan."
        )


def apply_plan(
    plan: Plan,
    client: Client,
    *,
    skip_errors: bool = False,
    reviewed: bool = False,
    journal: Journal | None = None,
    progress: Callable[[int], None] | None = None,
    concurrency: int = 2,
    batch_size: int = BATCH,
) -> ApplyReport:
    """Write ``plan`` (whose items carry their values) through ``client``.

    ``reviewed``: the plan was saved earlier, so the target secrets are read
    again and any change since then refuses the whole apply before a write.
    ``batch_size`` secrets go in one request, ``concurrency`` requests at once
    (one per service worker keeps every worker busy without queueing).
    """
    report = ApplyReport(plan.plan_id)
    errors = plan.errors
    if errors and not skip_errors:
        listed = "; ".join(str(e.problem) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InvalidInput(
            f"the plan has {len(errors)} bad input(s), so nothing was written: {listed}{more}. "
            "Fix them, or pass --skip-errors to write the good items only."
        )
    report.skipped = errors
    current = plan.current
    if reviewed or not current:
        current = read_targets(client, plan.targets)
        _check_targets(plan, current)
    by_path: dict[str, list[PlanItem]] = defaultdict(list)
    for item in plan.items:
        if item.problem is None:
            by_path[item.path].append(item)
    to_write = sorted(
        p for p, items in by_path.items() if any(i.action != "unchanged" for i in items)
    )
    report.unchanged = sum(1 for i in plan.items if i.action == "unchanged")
    if journal is not None:
        for path in sorted(journal.pending()):
            items = by_path.get(path)
            if items and path not in to_write:
                client.update_metadata(path, provenance(plan.plan_id, items))
                report.repaired.append(path)

    def write(batch: Sequence[str]) -> list[tuple[str, str | None]]:
        """One batch request: each secret's merged keys and its provenance, check-and-set."""
        writes = []
        for path in batch:
            items = by_path[path]
            data = dict(current[path].data)
            data.update({i.key: i.value for i in items})
            writes.append(
                SecretWrite(
                    path,
                    data,
                    cas=plan.targets[path],
                    custom_metadata=provenance(plan.plan_id, items),
                )
            )
        if journal is not None:
            journal.begin(batch)
        try:
            results = client.put_many(writes, raise_errors=False)
        except Unauthenticated:
            raise
        except SecretsdError as error:  # the whole request failed: none is known written
            return [(path, error.message) for path in batch]
        outcome = [(r.path, _failure(r, plan.targets[r.path])) for r in results]
        if journal is not None:
            journal.done([path for path, failure in outcome if failure is None])
        return outcome

    size = max(1, batch_size)
    batches = [to_write[start : start + size] for start in range(0, len(to_write), size)]
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, min(len(batches), concurrency))) as pool:
        for outcome in pool.map(write, batches):
            for path, failure in outcome:
                if failure is None:
                    report.written.append(path)
                else:
                    report.failed[path] = failure
            done += len(outcome)
            if progress is not None:
                progress(done)
    if journal is not None and not report.failed:
        journal.clear()
    return report


def _failure(result: Written, cas: int) -> str | None:
    """The report's message for one write of a batch (None: written)."""
    error = result.error
    if error is None:
        return None
    if isinstance(error, CasMismatch):
        return (
            f"{result.path} changed while applying (check-and-set failed at version {cas}); "
            "run the migration again"
        )
    if isinstance(error, Unauthenticated):
        raise error
    return error.message
