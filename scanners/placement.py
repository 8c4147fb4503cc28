"""A value found behind structure (base64 in a Secret, a cell of a credential column) is
judged by rewriting it as one ``key: value`` config line and scanning that with the same
rules; this module moves the findings back to where the value stands in its file, since
the original line, not the rewritten one, is what a user must edit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from secretsd.scanners.model import Finding, Fragment

__all__ = ["Placed", "judged_as_config"]


@dataclasses.dataclass(frozen=True)
class Placed:
    """Where a decoded value really stands, and how its findings say where it came from."""

    line: int
    column: int
    line_text: str
    origin: str
    tag: str


def judged_as_config(
    scan: Callable[[Fragment], list[Finding]],
    rewritten: Fragment,
    placed: Placed,
    hides: tuple[str, ...] = (),
) -> list[Finding]:
    """Findings of the rules on a value rewritten as one ``key: value`` config line, moved
    back to the line and column the value stands at in its file (the rewritten line is what
    the rules judge; the original line is what a user must edit)."""
    return [
        dataclasses.replace(
            hit,
            path=rewritten.path,
            line=placed.line,
            column=max(1, placed.column),
            line_text=placed.line_text,
            commit=rewritten.commit,
            description=f"{hit.description} ({placed.origin})",
            tags=(*hit.tags, placed.tag),
            line_secrets=(*hit.line_secrets, *hides),
        )
        for hit in scan(rewritten)
    ]
