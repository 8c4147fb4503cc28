"""Generate a string that a rule's regex matches: the coverage benches' sample generator.

``gitleaks_coverage.py`` and ``peer_coverage.py`` turn each peer rule into one synthetic
sample with this (character classes filled at random from ``random.Random``, optional parts
left out, ``=`` chosen where an alternation offers it). It walks the regex's parse tree
(``re._parser``), so it understands what the peers' Python-flavoured rules use beyond
gitleaks' RE2 subset: named groups, back-references, conditionals ``(?(name)yes|no)`` and
look-arounds (which produce nothing; a sample that a look-around rejects is redrawn).
"""

from __future__ import annotations

import random
import re
import string
import warnings
from typing import cast

try:  # Python 3.11+ keeps the parser here
    import re._constants as sc  # type: ignore[import-not-found,unused-ignore]
    import re._parser as sp  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover
    import sre_constants as sc  # type: ignore[no-redef]
    import sre_parse as sp  # type: ignore[no-redef]

WORD = string.ascii_letters + string.digits + "_"
PRINTABLE = [chr(c) for c in range(33, 127)]
_REPEATS = (sc.MAX_REPEAT, sc.MIN_REPEAT, getattr(sc, "POSSESSIVE_REPEAT", None))


def _class(items: list[tuple[object, object]]) -> list[str]:
    out: list[str] = []
    negate = False
    for op, av in items:
        if op == sc.NEGATE:
            negate = True
        elif op == sc.LITERAL:
            out.append(chr(av))  # type: ignore[arg-type]
        elif op == sc.RANGE:
            lo, hi = cast(tuple[int, int], av)
            out += [chr(c) for c in range(lo, hi + 1) if 32 <= c < 127]
        elif op == sc.CATEGORY:
            out += {
                sc.CATEGORY_DIGIT: list(string.digits),
                sc.CATEGORY_WORD: list(WORD),
                sc.CATEGORY_SPACE: [" "],
                sc.CATEGORY_NOT_SPACE: PRINTABLE,
                sc.CATEGORY_NOT_WORD: list("-.:/"),
                sc.CATEGORY_NOT_DIGIT: list(string.ascii_letters),
            }.get(av, ["a"])  # type: ignore[call-overload,unused-ignore]
    if negate:
        out = [c for c in PRINTABLE if c not in out and c not in "\"'`\\"]
    return out or ["a"]


class _Redraw(Exception):
    """The draw took a branch that can never match (``(?!x)x``): draw again rather than let
    the regex engine backtrack through it (exponential on ``((?P<a>..)|..){40}(?(a)..)``)."""


def _fails(branch: object) -> bool:
    items = list(branch)  # type: ignore[call-overload]
    return len(items) == 2 and items[0][0] == sc.ASSERT_NOT and items[1][0] == sc.LITERAL


def _walk(parsed: object, rng: random.Random, groups: dict[int, str], before: str = "") -> str:
    """Text for ``parsed``; ``before`` is what the enclosing pattern produced up to here."""
    text = ""
    items = list(parsed)  # type: ignore[call-overload]
    for index, (op, av) in enumerate(items):
        if op == sc.LITERAL:
            text += chr(av)
        elif op == sc.NOT_LITERAL:
            text += "b" if chr(av) == "a" else "a"
        elif op == sc.ANY:
            text += rng.choice("abcdefXYZ0123")
        elif op == sc.IN:
            text += rng.choice(_class(av))
        elif op in _REPEATS:
            lo, hi, sub = av
            hi = lo + 20 if hi == sc.MAXREPEAT else hi
            count = 0 if lo == 0 else rng.randint(lo, min(hi, lo + (10 if lo < 8 else 4)))
            for _ in range(count):
                text += _walk(sub, rng, groups, before + text)
        elif op == sc.SUBPATTERN:
            part = _walk(av[-1], rng, groups, before + text)
            if av[0] is not None:
                groups[av[0]] = part
            text += part
        elif op == sc.BRANCH:
            # "=" as the operator, an anchor (``(?:^|/|...)`` before a token) as the context
            equals = [b for b in av[1] if list(b) == [(sc.LITERAL, ord("="))]]
            anchors = [b for b in av[1] if list(b) and all(o == sc.AT for o, _ in b)]
            pick = (equals or anchors or [rng.choice(av[1])])[0]
            text += _walk(pick, rng, groups, before + text)
        elif op == sc.GROUPREF:
            text += groups.get(av, "")
        elif op == sc.GROUPREF_EXISTS:
            group, yes, no = av
            chosen = yes if group in groups else no
            if chosen is not None and _fails(chosen):
                raise _Redraw
            text += _walk(chosen, rng, groups, before + text) if chosen is not None else ""
        elif (
            op == sc.AT
            and av == sc.AT_BOUNDARY
            and index == len(items) - 1
            and not re.match(r"\w", (before + text)[-1:])
        ):
            raise _Redraw  # a closing word boundary after a symbol: this draw cannot match
        # other anchors, ASSERT and ASSERT_NOT (look-arounds) produce nothing
    return text


def sample(regex: str, rng: random.Random, flags: int = 0, tries: int = 30) -> str | None:
    """A string ``regex`` (compiled with ``flags``, as the peer compiles it) matches; the
    last draw when none of ``tries`` matches (the peer then misses it too: not counted), None
    when the regex does not parse in Python or every draw was impossible."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Go classes such as [[:alnum:]]
        try:
            parsed, compiled = sp.parse(regex), re.compile(regex, flags)
        except (re.error, ValueError, OverflowError):
            return None
    text = ""
    for _ in range(tries):
        try:
            text = _walk(parsed, rng, {})
        except _Redraw:
            continue
        if compiled.match(text):  # the draw starts where the pattern does
            break
    return text or None
