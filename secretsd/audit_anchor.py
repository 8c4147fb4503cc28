"""What anchors the audit chain outside the database: the keyed hash and checkpoints.

A plain ``sha256`` chain shows that records were edited only to someone who
cannot recompute it; anyone who can write the database can rewrite a record
and every later hash, or delete the tail and update the head row. Two anchors
close that, as Vault HMACs its audit entries:

- **Keyed hashes.** Each record's hash is ``HMAC-SHA256(key, prev_hash ||
  canonical record)`` with a key the database never holds (a 0600 file in the
  data dir, ``SECRETSD_AUDIT_KEY_FILE``). Records carry the key's id (a hash of
  the key, never the key), so replicas with different keys can share one chain
  and ``audit verify`` can say which key it needs.
- **Checkpoints.** After a committed batch (at most once per
  ``SECRETSD_AUDIT_CHECKPOINT_INTERVAL`` seconds per worker) the writer appends
  ``{seq, hash, time, key_id, mac}`` to a JSON Lines file outside the database
  (``SECRETSD_AUDIT_CHECKPOINT_FILE``; ship it elsewhere for more safety). A
  deleted tail, a rewritten head row or a chain recomputed without the key no
  longer matches a checkpoint.

Records written before keys existed (``key_id`` empty) keep their plain
``sha256`` hash and still verify; once a keyed record follows them, they are
covered too (rewriting them means recomputing keyed hashes).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from secretsd.errors import ConfigError
from secretsd.fsutil import append_whole, open_private_append

__all__ = [
    "CHAINED_FIELDS",
    "GENESIS_HASH",
    "AuditKey",
    "Checkpoint",
    "CheckpointLog",
    "checkpoint_mac",
    "load_audit_key",
    "load_or_create_audit_key",
    "read_checkpoints",
    "record_hash",
]

GENESIS_HASH = "0" * 64

#: The fields that are hashed, in order. Adding one is a schema change.
CHAINED_FIELDS = (
    "seq",
    "time",
    "request_id",
    "identity",
    "display_name",
    "method",
    "action",
    "path",
    "version",
    "outcome",
    "client",
    "detail",
)

_KEY_BYTES = 32
_CHECKPOINT_DOMAIN = b"secretsd-audit-checkpoint\0"


@dataclass(frozen=True, slots=True)
class AuditKey:
    """An HMAC key for the chain. ``key_id`` names it; ``repr`` never shows the key."""

    key: bytes
    key_id: str
    # A keyed HMAC state to copy per record: cheaper than keying one each time.
    prepared: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prepared", hmac.new(self.key, digestmod=hashlib.sha256))

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"

    @classmethod
    def from_bytes(cls, key: bytes) -> AuditKey:
        key_id = hashlib.sha256(b"secretsd-audit-key-id\0" + key).hexdigest()[:16]
        return cls(key, key_id)


def record_hash(prev_hash: str, record: Mapping[str, Any], key: AuditKey | None = None) -> str:
    """The chain hash of ``record``: keyed ``HMAC-SHA256`` or, unkeyed, ``sha256``.

    The message is ``prev_hash`` (ASCII hex) followed by the compact JSON array of
    the CHAINED_FIELDS in order, so an auditor with the key can re-check it with
    any JSON and HMAC tool.
    """
    message = prev_hash.encode("ascii") + orjson.dumps([record[name] for name in CHAINED_FIELDS])
    if key is None:
        return hashlib.sha256(message).hexdigest()
    keyed = key.prepared.copy()
    keyed.update(message)
    return str(keyed.hexdigest())


def _parse_key(path: Path) -> AuditKey:
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not hex"
        raise ConfigError(
            f"the audit key file {str(path)!r} cannot be read ({reason}); it holds 64 hex "
            "digits (restore it from a backup, or point SECRETSD_AUDIT_KEY_FILE at the right file)"
        ) from None
    if len(key) < _KEY_BYTES:
        raise ConfigError(
            f"the audit key in {str(path)!r} is {len(key)} bytes; it must be at least "
            f"{_KEY_BYTES} (64 hex digits)"
        )
    return AuditKey.from_bytes(key)


def load_audit_key(path: Path) -> AuditKey:
    """Read an existing key file (``audit verify``); ConfigError if missing or malformed."""
    return _parse_key(path)


def load_or_create_audit_key(path: Path) -> AuditKey:
    """The key in ``path``, created (0600, exclusively) on first use.

    ``O_EXCL`` makes concurrent first starts agree on one key: the loser reads
    the winner's file. An existing key file with group or other access is
    tightened to 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        for _ in range(50):  # another process may be between creating and writing it
            if path.stat().st_size:
                break
            time.sleep(0.02)
        return _parse_key(path)
    try:
        os.write(fd, secrets.token_bytes(_KEY_BYTES).hex().encode("ascii") + b"\n")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)
    return _parse_key(path)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """That the chain had record ``seq`` with ``hash`` at ``time``, MACed by ``key_id``."""

    seq: int
    hash: str
    time: str
    key_id: str
    mac: str
    line: int = 0  # where it was read from, for messages


def checkpoint_mac(key: AuditKey, seq: int, chain_hash: str, when: str) -> str:
    message = _CHECKPOINT_DOMAIN + orjson.dumps([seq, chain_hash, when, key.key_id])
    return hmac.new(key.key, message, hashlib.sha256).hexdigest()


class CheckpointLog:
    """Appends checkpoints to a JSON Lines file; one per worker, used from its audit thread.

    Writes are rate-limited to one per ``interval`` seconds (the first batch
    always gets one), each a single ``O_APPEND`` write under ``flock`` so
    several workers share the file without tearing lines. A failed write
    (a full disk) is reported to the caller, which marks audit unhealthy.
    """

    def __init__(self, path: Path, key: AuditKey, interval: float) -> None:
        self.path = path
        self._key = key
        self._interval = interval
        self._last_write = float("-inf")
        self._pending: tuple[int, str] | None = None
        self._fd: int | None = None
        self._lock = threading.Lock()

    def note(self, seq: int, chain_hash: str) -> None:
        """Remember the newest record; write it now if the interval has passed."""
        with self._lock:
            self._pending = (seq, chain_hash)
            if time.monotonic() - self._last_write >= self._interval:
                self._write_pending()

    def flush(self) -> None:
        """Write the newest noted record if it is not written yet (shutdown, retries)."""
        with self._lock:
            self._write_pending()

    @property
    def behind(self) -> bool:
        return self._pending is not None

    def _write_pending(self) -> None:
        if self._pending is None:
            return
        seq, chain_hash = self._pending
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = orjson.dumps(
            {
                "seq": seq,
                "hash": chain_hash,
                "time": when,
                "key_id": self._key.key_id,
                "mac": checkpoint_mac(self._key, seq, chain_hash, when),
            }
        )
        if self._fd is None:
            self._fd = open_private_append(self.path)
        append_whole(self._fd, line + b"\n")
        self._pending = None
        self._last_write = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_checkpoints(path: Path) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint in ``path`` and a message per unreadable line."""
    found: list[Checkpoint] = []
    problems: list[str] = []
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
            found.append(
                Checkpoint(
                    seq=int(item["seq"]),
                    hash=str(item["hash"]),
                    time=str(item["time"]),
                    key_id=str(item["key_id"]),
                    mac=str(item["mac"]),
                    line=number,
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            problems.append(f"line {number} of {path} is not a checkpoint")
    return found, problems
