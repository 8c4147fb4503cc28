"""Where a judged value, and the key naming it, stand on their line: found once.

The context checks ask questions of the text around a value: is it quoted, inside a
``{{ ... }}``, joined onto with ``+``, what stands between the key and it, what comes
before it. Each check used to find the value again with its own ``line.find(value)``; where
the value occurs twice on a line (``sql.Open("postgres", "...password=postgres")``) they
judged different occurrences. The engine knows where its match put the value, so a
:class:`Spot` is built once from that position and every check reads the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Spot"]


@dataclass(frozen=True, slots=True)
class Spot:
    """``value`` standing at ``at`` on ``line`` (``-1``: not on it), named by ``key``, which
    stands at ``key_at`` (``-1``: no key, or not on the line)."""

    line: str
    value: str
    at: int
    key: str = ""
    key_at: int = -1

    @classmethod
    def locate(
        cls, line: str, value: str, key: str = "", at: int | None = None, key_at: int | None = None
    ) -> Spot:
        """The value at ``at`` and the key at ``key_at`` when they really stand there (the
        match's positions). Without them: the value's first occurrence after the key's
        first, else its first; the key's last occurrence before the value that is no
        ``${KEY`` lookup (``X: ${X:-default}``: the setting's own name), else its first."""
        if at is None or at < 0 or line[at : at + len(value)] != value:
            named = line.find(key) if key else -1
            at = line.find(value, named + len(key)) if named >= 0 else -1
            if at < 0:
                at = line.find(value)
        if key_at is None or key_at < 0 or line[key_at : key_at + len(key)] != key:
            key_at = _key_before(line, key, at)
        return cls(line, value, at, key, key_at)

    def narrowed(self, part: str) -> Spot:
        """The spot of ``part``, a piece of the value (the literal of ``${X:-literal}``, the
        rest after a ``plain:`` prefix): the key stays where it is."""
        offset = self.value.find(part)
        at = self.at + offset if self.at >= 0 and offset >= 0 else -1
        return Spot(self.line, part, at, self.key, self.key_at)

    @property
    def end(self) -> int:
        """Where the value ends on the line (``-1`` when it is not on it)."""
        return self.at + len(self.value) if self.at >= 0 else -1

    @property
    def before(self) -> str:
        """The line's text before the value (the whole line when the value is not on it)."""
        return self.line[: self.at] if self.at >= 0 else self.line

    @property
    def after(self) -> str:
        """The line's text after the value."""
        return self.line[self.end :] if self.at >= 0 else ""

    @property
    def between(self) -> str:
        """The text between the key and the value (empty when either is missing or the key
        stands after the value)."""
        start = self.key_at + len(self.key)
        if self.key_at < 0 or self.at < start:
            return ""
        return self.line[start : self.at]

    @property
    def quoted(self) -> bool:
        """The value is written as a string literal (the same quote on both sides)."""
        line, at, end = self.line, self.at, self.end
        return at > 0 and end < len(line) and line[at - 1] == line[end] in "\"'`"


def _key_before(line: str, key: str, value_at: int) -> int:
    """Where ``key`` stands: its last occurrence before the value, passing over ``${KEY``
    lookups (``X: ${X:-default}``: the setting's own name); its first when none precedes."""
    if not key:
        return -1
    at = line.rfind(key, 0, value_at) if value_at > 0 else -1
    while at >= 2 and line[at - 2 : at] == "${":
        at = line.rfind(key, 0, at)
    return at if at >= 0 else line.find(key)
