"""Audit records made storable and safe to print, whatever the request carried."""

from __future__ import annotations

from typing import Any

__all__ = ["clean_row", "escape_text"]

#: Column widths (characters) of the audit_log strings: longer values are cut.
_LIMITS = {
    "time": 32,
    "request_id": 64,
    "identity": 64,
    "display_name": 200,
    "method": 32,
    "action": 32,
    "path": 600,
    "outcome": 16,
    "client": 64,
    "detail": 300,
}
_MAX_VERSION = 2**31 - 1  # INTEGER column on PostgreSQL


def escape_text(value: str) -> str:
    """Non-printable characters (controls, escapes, lone surrogates) as ``\\xNN``-style text."""
    return "".join(ch if ch.isprintable() else _escape_char(ord(ch)) for ch in value)


def _escape_char(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """Make one record storable and safe to print, in place; returns ``row``.

    Strings from outside (a path, a display name, a client address) may hold
    terminal escapes, NULs (PostgreSQL refuses them), lone surrogates (no
    encoder takes them) or be longer than their column; a version may be any
    integer. All are made printable, cut to the column and bounded, with a
    note in ``detail``, so one hostile value cannot fail a whole batch.
    """
    for name, limit in _LIMITS.items():
        value = row[name]
        if type(value) is not str:
            value = row[name] = "" if value is None else f"<{type(value).__name__}>"
        if len(value) > limit or not value.isprintable():
            row[name] = escape_text(value[: limit * 2])[:limit]
    version = row["version"]
    if version is not None and (type(version) is not int or not 0 <= version <= _MAX_VERSION):
        row["version"] = None
        shown = str(version) if type(version) is int and abs(version) < 10**30 else "out of range"
        row["detail"] = f"version {shown} not stored; {row['detail']}"[: _LIMITS["detail"]]
    return row
