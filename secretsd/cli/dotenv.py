"""Env files, written by ``secretsd export --format dotenv`` and read by ``secretsd run``.

One dialect both ways: ``NAME=value`` lines, values quoted the POSIX shell
way (``shlex.quote``), so ``set -a; . ./app.env`` gives back the exact values,
newlines and quotes included. Reading accepts ``export NAME=...``, comments,
blank lines, and single-, double- or un-quoted values (no ``$VAR`` expansion).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from secretsd.errors import InvalidInput

__all__ = ["ENV_NAME", "format_dotenv", "parse_dotenv"]

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


def format_dotenv(values: Mapping[str, str]) -> str:
    lines = []
    for name, value in values.items():
        if not ENV_NAME.fullmatch(name):
            raise InvalidInput(
                f"{name!r} is not a valid environment variable name (letters, digits, '_', "
                "not starting with a digit); rename the key or use --format json or yaml"
            )
        if "\0" in value:
            raise InvalidInput(f"the value of {name!r} contains a NUL byte; use --format json")
        lines.append(f"{name}={shlex.quote(value)}\n")
    return "".join(lines)


def _strip_comment(raw: str) -> str:
    """Drop a ``#`` comment: one outside quotes and after whitespace, as in the shell."""
    quote = ""
    previous = " "
    escaped = False
    for index, char in enumerate(raw):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and previous.isspace():
            return raw[:index]
        previous = char
    return raw


def _unquote(raw: str) -> str | None:
    """The one shell word in ``raw``; None while a quote is still open."""
    lexer = shlex.shlex(_strip_comment(raw), posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        words = list(lexer)
    except ValueError:
        return None
    if len(words) > 1:
        raise ValueError("more than one word")
    return words[0] if words else ""


def parse_dotenv(text: str, source: str = "env file") -> dict[str, str]:
    """``NAME -> value`` from an env file; errors name the line, never echo a value."""
    result: dict[str, str] = {}
    lines = text.split("\n")  # not splitlines(): "\r", "\x0b"... belong to values
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].lstrip()
        index += 1
        if not line.strip() or line.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            raise InvalidInput(
                f"{source} line {number}: expected NAME=value (NAME of letters, digits and '_')"
            )
        name, raw = match.groups()
        while True:
            try:
                value = _unquote(raw)
            except ValueError:
                raise InvalidInput(
                    f"{source} line {number}: the value of {name} has spaces outside quotes; "
                    "quote it"
                ) from None
            if value is not None:
                break
            if index >= len(lines):
                raise InvalidInput(f"{source} line {number}: the quote of {name} is never closed")
            raw += "\n" + lines[index]
            index += 1
        result[name] = value
    return result
