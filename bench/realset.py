"""Labelled evaluation sets cut from real public repository files (issue 12).

Every other set in bench/ is generated from templates; these are windows of real files
(configs, ``.env``, manifests, CI files, code and tests in many languages, docs, i18n),
found by keyword queries over stored copies of public GitHub files and labelled by hand
before any scanner was run on them (the guide is ``bench/REALSET.md``). The sets:

- ``real`` (round 4): 422 windows, split by repository into ``real-tune`` (tuned on) and
  ``real-heldout``;
- ``real2`` (round 6): 297 windows from other queries and other files, scored whole once
  on arrival, then split the same way into ``real2-tune`` and ``real2-heldout``;
- ``real3`` (round 6): 299 windows from a third query list, held out whole (``real3``);
- ``real4``-``real8`` (round 8): five more sets, each by its own labeller (``REALSET.md``,
  "Round 8"): ``real4`` split like ``real``, ``real5`` and ``real8`` held out whole, ``real6``
  and ``real7`` tuned on after one scoring on arrival;
- ``real9``-``real12`` (round 9): four representative mixes from disjoint seed queries,
  ``real9`` and ``real10`` tuned on, ``real11`` and ``real12`` held out whole; ``real13`` and
  ``real14``, two more written later in the round, held out whole; ``real15`` and ``real16``,
  written last, tuned on;
- ``real17``-``real26`` (round 10): ten more representative mixes; ``real17``, ``real18``,
  ``real23``-``real26`` held out whole (``real25`` and ``real26`` written after the changes),
  ``real19``-``real22`` tuned on;
- ``real27``-``real36`` (round 11): ten more; ``real29``, ``real30``, ``real33``, ``real34``
  held out whole, ``real27``, ``real28``, ``real31``, ``real32``, ``real35``, ``real36`` tuned on;
- ``real37``-``real46`` (round 12): ten more; ``real37``, ``real38``, ``real41`` and (written
  mid-round) ``real43``-``real45`` held out whole, ``real39``, ``real40``, ``real42`` and
  ``real46`` tuned on;
- ``real47``-``real57`` (round 13): eleven more; ``real47``-``real49`` and (written mid-round)
  ``real54``, ``real55`` held out whole, ``real50``-``real53``, ``real56`` and ``real57`` tuned on.
- ``real58``-``real62`` (round 14): five more; ``real58`` and ``real59`` (cross-sections,
  config-heavy and code-heavy) held out whole, ``real60``-``real62`` tuned on; written
  mid-round, ``real63`` and ``real64`` held out whole, ``real65`` tuned on.
- ``real66``-``real70`` (round 15): five more; ``real66`` (a cross-section) and ``real67``
  (application code and tests) held out whole, ``real68``-``real70`` (operations files, docs
  and scripts in many human languages, a second cross-section) tuned on; written mid-round,
  ``real71`` and ``real72`` (a cross-section, self-hosting operations) held out whole,
  ``real73`` and ``real74`` (application code, small projects) tuned on.
- ``real75``-``real79`` (round 16): five more; ``real75`` (a cross-section) and ``real76`` (CI and
  infrastructure as code) held out whole, ``real77``-``real79`` (backend code in many languages,
  docs in many human languages, front-end/mobile/firmware code) tuned on; written mid-round,
  ``real80`` (docs and UI text in 26 languages) and ``real81`` (a cross-section) held out whole.
- ``real82``-``real85`` (round 17): four more; ``real82`` (a cross-section) and ``real83``
  (application code and tests) held out whole, ``real84`` (docs in many human languages) and
  ``real85`` (operations and data) tuned on; written later, ``real86`` (a cross-section of
  less-searched languages and file kinds) and ``real87`` (application code and tests), tuned on;
  written mid-round, ``real88`` (a cross-section) and ``real89`` (self-hosting and operations),
  held out whole.
- ``real90``-``real105`` (round 18): sixteen more; ``real90``, ``real91``, ``real94``-``real96``,
  ``real98``, ``real99``, ``real104`` and ``real105`` held out whole (``real94``-``real96`` written
  after the first rules, ``real98`` and ``real99`` mid-round, ``real104`` and ``real105`` last);
  ``real92``, ``real93``, ``real97`` and ``real100``-``real103`` tuned on.
- ``real106``-``real117`` (round 19): twelve more; ``real106``, ``real107``, ``real111``, ``real112``,
  ``real115``, ``real116`` and ``real117`` held out whole (``real111``, ``real112``, ``real115``
  written after the first rules, ``real116`` and ``real117`` last); ``real108``-``real110``,
  ``real113`` and ``real114`` tuned on.
- ``real118``-``real126`` and ``real128`` (round 20): ten more; ``real118``, ``real119``, (written
  after the first rules) ``real123``, ``real124`` and (written last) ``real128`` held out whole;
  ``real120``-``real122``, ``real125`` and ``real126`` tuned on.

Each set is two files:

- ``bench/realset_labels.json``, ``realset2_labels.json``, ... (tracked): one entry per
  file window with its provenance and the SHA-256 of its text, and one label per
  candidate value: path, first and last line, positive or not, kind, a note. No file text.
- the text of the windows, ``bench/.realset/realset.json.gz``,
  ``bench/.realset2/realset2.json.gz``, ... (``$REALSET_DATA``, ``$REALSET2_DATA``, ...;
  git-ignored): copies of third-party public files, real leaked credentials among them,
  so it is kept out of the repository.

``build`` materialises a part as ``evalset.py`` does (``files/`` + ``labels.json``).

    python bench/realset.py                          # build every part under bench/.corpus/
    python bench/realset.py --compile DIR [--set real2]  # staging files (*.txt) -> data + labels
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

Label = dict[str, Any]


@dataclass(frozen=True)
class RealSet:
    """One labelled set: its tracked labels, its untracked text and the parts it splits into.

    A set with two parts splits by repository (a hash of the slug), so its tuning part
    shares no repository with its held-out part; a set with one part is held out whole.
    """

    name: str
    manifest: Path
    data: Path
    parts: tuple[str, ...]

    def side(self, repo: str) -> str:
        """The part a repository belongs to."""
        if len(self.parts) == 1:
            return self.parts[0]
        return self.parts[hashlib.sha256(repo.encode()).digest()[0] & 1]


def _real_set(name: str, parts: tuple[str, ...]) -> RealSet:
    """A set by its name: ``real4`` -> ``realset4_labels.json`` (tracked) and
    ``.realset4/realset4.json.gz`` (``$REALSET4_DATA``, not tracked)."""
    n = name.removeprefix("real")
    data = os.environ.get(f"REALSET{n}_DATA", HERE / f".realset{n}" / f"realset{n}.json.gz")
    return RealSet(name, HERE / f"realset{n}_labels.json", Path(data), parts)


#: Round 4: half tuned on, half held out.
FIRST = _real_set("real", ("real-tune", "real-heldout"))
#: Round 6: other queries, other files; scored whole once on arrival, then split like the first.
SECOND = _real_set("real2", ("real2-tune", "real2-heldout"))
#: Round 6, later: other queries again; held out whole, never tuned on.
THIRD = _real_set("real3", ("real3",))
#: Round 8: operations and infrastructure files; split like the first.
FOURTH = _real_set("real4", ("real4-tune", "real4-heldout"))
#: Round 8: application code, tests and docs; held out whole.
FIFTH = _real_set("real5", ("real5",))
#: Round 8: docs/CI/apps/IoT, and tests/fixtures/deployment; scored whole once on arrival,
#: then tuned on (their misses may be listed).
SIXTH = _real_set("real6", ("real6",))
SEVENTH = _real_set("real7", ("real7",))
#: Round 8, last: a representative mix, held out whole, written after most of the changes.
EIGHTH = _real_set("real8", ("real8",))
#: Round 9: four representative mixes written at once by four labellers from disjoint seed
#: queries; ``real9`` and ``real10`` are tuned on, ``real11`` and ``real12`` held out whole.
NINTH = _real_set("real9", ("real9",))
TENTH = _real_set("real10", ("real10",))
ELEVENTH = _real_set("real11", ("real11",))
TWELFTH = _real_set("real12", ("real12",))
#: Round 9, later: two more representative mixes from new seed queries, written while the
#: round's changes were made and held out whole (scored on arrival and at the end only).
THIRTEENTH = _real_set("real13", ("real13",))
FOURTEENTH = _real_set("real14", ("real14",))
#: Round 9, last: two more representative mixes, tuned on (their misses may be listed).
FIFTEENTH = _real_set("real15", ("real15",))
SIXTEENTH = _real_set("real16", ("real16",))
#: Round 10: four representative mixes written at once from disjoint seed queries, before
#: any change of the round; ``real17`` and ``real18`` held out whole, ``real19`` and
#: ``real20`` tuned on.
SEVENTEENTH = _real_set("real17", ("real17",))
EIGHTEENTH = _real_set("real18", ("real18",))
NINETEENTH = _real_set("real19", ("real19",))
TWENTIETH = _real_set("real20", ("real20",))
#: Round 10, later: four more, written while the round's changes were made; ``real21`` and
#: ``real22`` tuned on, ``real23`` and ``real24`` held out whole.
TWENTY_FIRST = _real_set("real21", ("real21",))
TWENTY_SECOND = _real_set("real22", ("real22",))
TWENTY_THIRD = _real_set("real23", ("real23",))
TWENTY_FOURTH = _real_set("real24", ("real24",))
#: Round 10, last: two more, written after the round's changes, held out whole: the final
#: build on files nobody tuned on.
TWENTY_FIFTH = _real_set("real25", ("real25",))
TWENTY_SIXTH = _real_set("real26", ("real26",))
#: Round 11: eight more, written blind: ``real27``, ``real28`` (at the start) and ``real31``,
#: ``real32`` (mid-round) tuned on; ``real29``, ``real30`` (at the start) held out whole.
TWENTY_SEVENTH = _real_set("real27", ("real27",))
TWENTY_EIGHTH = _real_set("real28", ("real28",))
TWENTY_NINTH = _real_set("real29", ("real29",))
THIRTIETH = _real_set("real30", ("real30",))
THIRTY_FIRST = _real_set("real31", ("real31",))
THIRTY_SECOND = _real_set("real32", ("real32",))
#: Round 11, written while the round's changes were made: held out whole.
THIRTY_THIRD = _real_set("real33", ("real33",))
THIRTY_FOURTH = _real_set("real34", ("real34",))
#: Round 11, late: two more tuning sets (mail and SMTP; directory and remote login), scored once
#: on arrival.
THIRTY_FIFTH = _real_set("real35", ("real35",))
THIRTY_SIXTH = _real_set("real36", ("real36",))
#: Round 12, written at the start: infrastructure provisioning, application frameworks and
#: messaging/mobile held out whole; operations scripts, docs/notebooks and CI/cloud tuned on.
THIRTY_SEVENTH = _real_set("real37", ("real37",))
THIRTY_EIGHTH = _real_set("real38", ("real38",))
THIRTY_NINTH = _real_set("real39", ("real39",))
FORTIETH = _real_set("real40", ("real40",))
FORTY_FIRST = _real_set("real41", ("real41",))
FORTY_SECOND = _real_set("real42", ("real42",))
#: Round 12, written mid-round after the round's rules: embedded/desktop, data/ML and legacy
#: enterprise held out whole; test suites tuned on after one scoring on arrival.
FORTY_THIRD = _real_set("real43", ("real43",))
FORTY_FOURTH = _real_set("real44", ("real44",))
FORTY_FIFTH = _real_set("real45", ("real45",))
FORTY_SIXTH = _real_set("real46", ("real46",))
#: Round 13, written at the start: web application backends, deployment configs and
#: compiled-language code held out whole; infrastructure provisioning, embedded/legacy code
#: and docs/CI/scripts tuned on.
FORTY_SEVENTH = _real_set("real47", ("real47",))
FORTY_EIGHTH = _real_set("real48", ("real48",))
FORTY_NINTH = _real_set("real49", ("real49",))
FIFTIETH = _real_set("real50", ("real50",))
FIFTY_FIRST = _real_set("real51", ("real51",))
FIFTY_SECOND = _real_set("real52", ("real52",))
#: Round 13, written mid-round after the first rules had landed: container and cluster
#: deployment files tuned on; two representative cross-sections (config-heavy, code-heavy)
#: held out whole.
FIFTY_THIRD = _real_set("real53", ("real53",))
FIFTY_FOURTH = _real_set("real54", ("real54",))
FIFTY_FIFTH = _real_set("real55", ("real55",))
#: Round 13, late: two more cross-sections (config-heavy, code-heavy), tuned on.
FIFTY_SIXTH = _real_set("real56", ("real56",))
FIFTY_SEVENTH = _real_set("real57", ("real57",))
#: Round 14, written at the start: two cross-sections (config-heavy, code-heavy) held out
#: whole; deployment files, enterprise configs, and docs and scripts in many languages, tuned on.
FIFTY_EIGHTH = _real_set("real58", ("real58",))
FIFTY_NINTH = _real_set("real59", ("real59",))
SIXTIETH = _real_set("real60", ("real60",))
SIXTY_FIRST = _real_set("real61", ("real61",))
SIXTY_SECOND = _real_set("real62", ("real62",))
#: Round 14, written mid-round after most of its rules had landed: a balanced cross-section and
#: operations repositories, held out whole; web-framework code and configs, tuned on.
SIXTY_THIRD = _real_set("real63", ("real63",))
SIXTY_FOURTH = _real_set("real64", ("real64",))
SIXTY_FIFTH = _real_set("real65", ("real65",))
#: Round 15, written at the start: a balanced cross-section and application code and tests,
#: held out whole; deployment and operations files, docs and scripts in many human languages,
#: and a second cross-section, tuned on.
SIXTY_SIXTH = _real_set("real66", ("real66",))
SIXTY_SEVENTH = _real_set("real67", ("real67",))
SIXTY_EIGHTH = _real_set("real68", ("real68",))
SIXTY_NINTH = _real_set("real69", ("real69",))
SEVENTIETH = _real_set("real70", ("real70",))
#: Round 15, written mid-round: a cross-section and self-hosting/home-lab operations, held out
#: whole; application code (bots, apps, notebooks) and small projects, tuned on.
SEVENTY_FIRST = _real_set("real71", ("real71",))
SEVENTY_SECOND = _real_set("real72", ("real72",))
SEVENTY_THIRD = _real_set("real73", ("real73",))
SEVENTY_FOURTH = _real_set("real74", ("real74",))
SEVENTY_FIFTH = _real_set("real75", ("real75",))
SEVENTY_SIXTH = _real_set("real76", ("real76",))
SEVENTY_SEVENTH = _real_set("real77", ("real77",))
SEVENTY_EIGHTH = _real_set("real78", ("real78",))
SEVENTY_NINTH = _real_set("real79", ("real79",))
EIGHTIETH = _real_set("real80", ("real80",))
EIGHTY_FIRST = _real_set("real81", ("real81",))
#: Round 17: ``real82`` (a cross-section) and ``real83`` (application code and tests) held out
#: whole; ``real84`` (docs in many human languages) and ``real85`` (operations and data) tuned on.
EIGHTY_SECOND = _real_set("real82", ("real82",))
EIGHTY_THIRD = _real_set("real83", ("real83",))
EIGHTY_FOURTH = _real_set("real84", ("real84",))
EIGHTY_FIFTH = _real_set("real85", ("real85",))
#: Written later in round 17, tuned on: ``real86`` (a cross-section of less-searched languages and
#: file kinds) and ``real87`` (application code and tests).
EIGHTY_SIXTH = _real_set("real86", ("real86",))
EIGHTY_SEVENTH = _real_set("real87", ("real87",))
#: Written mid-round 17, held out whole: ``real88`` (a cross-section) and ``real89`` (self-hosting
#: and operations).
EIGHTY_EIGHTH = _real_set("real88", ("real88",))
EIGHTY_NINTH = _real_set("real89", ("real89",))
#: Round 18, written at the start: ``real90`` (a cross-section) and ``real91`` (application code
#: and tests) held out whole; ``real92`` (operations and self-hosting) and ``real93`` (less-searched
#: languages and file kinds) tuned on.
NINETIETH = _real_set("real90", ("real90",))
NINETY_FIRST = _real_set("real91", ("real91",))
NINETY_SECOND = _real_set("real92", ("real92",))
NINETY_THIRD = _real_set("real93", ("real93",))
#: Written later in round 18 (after the first rules from ``real92``/``real93``), by labellers who
#: saw no rule: ``real94`` (a cross-section), ``real95`` (operations and self-hosting) and
#: ``real96`` (application code and tests) held out whole; ``real97`` (configs and docs in many
#: human languages) tuned on.
NINETY_FOURTH = _real_set("real94", ("real94",))
NINETY_FIFTH = _real_set("real95", ("real95",))
NINETY_SIXTH = _real_set("real96", ("real96",))
NINETY_SEVENTH = _real_set("real97", ("real97",))
#: Written mid-round 18, once ``0557cc8`` was main, by labellers who saw no rule: ``real98`` (a
#: cross-section) and ``real99`` (application code, tests and notebooks) held out whole;
#: ``real100`` (operations, network devices and security write-ups) tuned on.
NINETY_EIGHTH = _real_set("real98", ("real98",))
NINETY_NINTH = _real_set("real99", ("real99",))
HUNDREDTH = _real_set("real100", ("real100",))
#: Written late in round 18, tuned on: ``real101`` (web backends and their configs), ``real102``
#: (data and ML work) and ``real103`` (mobile, desktop, game and embedded code).
HUNDRED_FIRST = _real_set("real101", ("real101",))
HUNDRED_SECOND = _real_set("real102", ("real102",))
HUNDRED_THIRD = _real_set("real103", ("real103",))
#: Written last in round 18, after its final rules, held out whole: ``real104`` (a cross-section)
#: and ``real105`` (operations and application code).
HUNDRED_FOURTH = _real_set("real104", ("real104",))
HUNDRED_FIFTH = _real_set("real105", ("real105",))
#: Round 19, at the start: ``real106`` (a cross-section) and ``real107`` (application code and tests),
#: held out whole; ``real108``-``real110`` tuned on (see REALSET.md, "Round 19").
HUNDRED_SIXTH = _real_set("real106", ("real106",))
HUNDRED_SEVENTH = _real_set("real107", ("real107",))
HUNDRED_EIGHTH = _real_set("real108", ("real108",))
HUNDRED_NINTH = _real_set("real109", ("real109",))
HUNDRED_TENTH = _real_set("real110", ("real110",))
#: Round 19, after the first rules: ``real111``, ``real112`` and ``real115`` held out whole,
#: ``real113`` and ``real114`` tuned on.
HUNDRED_ELEVENTH = _real_set("real111", ("real111",))
HUNDRED_TWELFTH = _real_set("real112", ("real112",))
HUNDRED_THIRTEENTH = _real_set("real113", ("real113",))
HUNDRED_FOURTEENTH = _real_set("real114", ("real114",))
HUNDRED_FIFTEENTH = _real_set("real115", ("real115",))
#: Round 19, written last, held out whole: ``real116`` (a cross-section) and ``real117``
#: (operations and application code).
HUNDRED_SIXTEENTH = _real_set("real116", ("real116",))
HUNDRED_SEVENTEENTH = _real_set("real117", ("real117",))
#: Round 20, at the start: ``real118`` and ``real119`` (cross-sections) held out whole;
#: ``real120``-``real122`` tuned on (see REALSET.md, "Round 20").
HUNDRED_EIGHTEENTH = _real_set("real118", ("real118",))
HUNDRED_NINETEENTH = _real_set("real119", ("real119",))
HUNDRED_TWENTIETH = _real_set("real120", ("real120",))
HUNDRED_TWENTY_FIRST = _real_set("real121", ("real121",))
HUNDRED_TWENTY_SECOND = _real_set("real122", ("real122",))
#: Round 20, after the first rules: ``real123`` and ``real124`` held out whole, ``real125`` and
#: ``real126`` tuned on.
HUNDRED_TWENTY_THIRD = _real_set("real123", ("real123",))
HUNDRED_TWENTY_FOURTH = _real_set("real124", ("real124",))
HUNDRED_TWENTY_FIFTH = _real_set("real125", ("real125",))
HUNDRED_TWENTY_SIXTH = _real_set("real126", ("real126",))
#: Round 20, written last (after every rule of the round), held out whole: ``real128`` (a
#: cross-section of application code and operations). ``real127``, written beside it, holds 59
#: credentials, under the 60 a set needs, and is not registered (REALSET.md, "Round 20").
HUNDRED_TWENTY_EIGHTH = _real_set("real128", ("real128",))
#: Round 21 (see REALSET.md, "Round 21"): ``real129`` (a cross-section), ``real130`` (application
#: code and tests), ``real134`` (a cross-section) and ``real135`` (operations and application code)
#: held out whole; ``real131`` (a cross-section), ``real132`` (administration and operations) and
#: ``real133`` (third-party and regional service SDKs) tuned on.
HUNDRED_TWENTY_NINTH = _real_set("real129", ("real129",))
HUNDRED_THIRTIETH = _real_set("real130", ("real130",))
HUNDRED_THIRTY_FIRST = _real_set("real131", ("real131",))
HUNDRED_THIRTY_SECOND = _real_set("real132", ("real132",))
HUNDRED_THIRTY_THIRD = _real_set("real133", ("real133",))
HUNDRED_THIRTY_FOURTH = _real_set("real134", ("real134",))
HUNDRED_THIRTY_FIFTH = _real_set("real135", ("real135",))
HUNDRED_THIRTY_SIXTH = _real_set("real136", ("real136",))
HUNDRED_THIRTY_SEVENTH = _real_set("real137", ("real137",))
HUNDRED_THIRTY_EIGHTH = _real_set("real138", ("real138",))
HUNDRED_THIRTY_NINTH = _real_set("real139", ("real139",))
HUNDRED_FORTIETH = _real_set("real140", ("real140",))
HUNDRED_FORTY_FIRST = _real_set("real141", ("real141",))
HUNDRED_FORTY_SECOND = _real_set("real142", ("real142",))
SETS = {
    real.name: real
    for real in (
        FIRST, SECOND, THIRD, FOURTH, FIFTH, SIXTH, SEVENTH, EIGHTH,
        NINTH, TENTH, ELEVENTH, TWELFTH, THIRTEENTH, FOURTEENTH, FIFTEENTH, SIXTEENTH,
        SEVENTEENTH, EIGHTEENTH, NINETEENTH, TWENTIETH,
        TWENTY_FIRST, TWENTY_SECOND, TWENTY_THIRD, TWENTY_FOURTH, TWENTY_FIFTH, TWENTY_SIXTH,
        TWENTY_SEVENTH, TWENTY_EIGHTH, TWENTY_NINTH, THIRTIETH, THIRTY_FIRST, THIRTY_SECOND,
        THIRTY_THIRD, THIRTY_FOURTH, THIRTY_FIFTH, THIRTY_SIXTH,
        THIRTY_SEVENTH, THIRTY_EIGHTH, THIRTY_NINTH, FORTIETH, FORTY_FIRST, FORTY_SECOND,
        FORTY_THIRD, FORTY_FOURTH, FORTY_FIFTH, FORTY_SIXTH,
        FORTY_SEVENTH, FORTY_EIGHTH, FORTY_NINTH, FIFTIETH, FIFTY_FIRST, FIFTY_SECOND,
        FIFTY_THIRD, FIFTY_FOURTH, FIFTY_FIFTH, FIFTY_SIXTH, FIFTY_SEVENTH,
        FIFTY_EIGHTH, FIFTY_NINTH, SIXTIETH, SIXTY_FIRST, SIXTY_SECOND,
        SIXTY_THIRD, SIXTY_FOURTH, SIXTY_FIFTH,
        SIXTY_SIXTH, SIXTY_SEVENTH, SIXTY_EIGHTH, SIXTY_NINTH, SEVENTIETH,
        SEVENTY_FIRST, SEVENTY_SECOND, SEVENTY_THIRD, SEVENTY_FOURTH,
        SEVENTY_FIFTH, SEVENTY_SIXTH, SEVENTY_SEVENTH, SEVENTY_EIGHTH, SEVENTY_NINTH,
        EIGHTIETH, EIGHTY_FIRST, EIGHTY_SECOND, EIGHTY_THIRD, EIGHTY_FOURTH, EIGHTY_FIFTH,
        EIGHTY_SIXTH, EIGHTY_SEVENTH, EIGHTY_EIGHTH, EIGHTY_NINTH,
        NINETIETH, NINETY_FIRST, NINETY_SECOND, NINETY_THIRD,
        NINETY_FOURTH, NINETY_FIFTH, NINETY_SIXTH, NINETY_SEVENTH,
        NINETY_EIGHTH, NINETY_NINTH, HUNDREDTH, HUNDRED_FIRST, HUNDRED_SECOND, HUNDRED_THIRD,
        HUNDRED_FOURTH, HUNDRED_FIFTH, HUNDRED_SIXTH, HUNDRED_SEVENTH, HUNDRED_EIGHTH,
        HUNDRED_NINTH, HUNDRED_TENTH, HUNDRED_ELEVENTH, HUNDRED_TWELFTH, HUNDRED_THIRTEENTH,
        HUNDRED_FOURTEENTH, HUNDRED_FIFTEENTH, HUNDRED_SIXTEENTH, HUNDRED_SEVENTEENTH,
        HUNDRED_EIGHTEENTH, HUNDRED_NINETEENTH, HUNDRED_TWENTIETH, HUNDRED_TWENTY_FIRST,
        HUNDRED_TWENTY_SECOND, HUNDRED_TWENTY_THIRD, HUNDRED_TWENTY_FOURTH, HUNDRED_TWENTY_FIFTH,
        HUNDRED_TWENTY_SIXTH, HUNDRED_TWENTY_EIGHTH,
        HUNDRED_TWENTY_NINTH, HUNDRED_THIRTIETH, HUNDRED_THIRTY_FIRST, HUNDRED_THIRTY_SECOND,
        HUNDRED_THIRTY_THIRD, HUNDRED_THIRTY_FOURTH, HUNDRED_THIRTY_FIFTH,
        HUNDRED_THIRTY_SIXTH, HUNDRED_THIRTY_SEVENTH, HUNDRED_THIRTY_EIGHTH, HUNDRED_THIRTY_NINTH,
        HUNDRED_FORTIETH, HUNDRED_FORTY_FIRST, HUNDRED_FORTY_SECOND,
    )
}  # fmt: skip
PARTS = tuple(part for real in SETS.values() for part in real.parts)


def set_of(part: str) -> RealSet:
    """The set a part belongs to."""
    for real in SETS.values():
        if part in real.parts:
            return real
    raise ValueError(part)


class MissingData(RuntimeError):
    """The windows' text is not on this machine (it is not tracked: see the module doc)."""


def repo_of(path: str) -> str:
    """The repository slug a window belongs to: its first path component."""
    return path.split("/", 1)[0]


# --- staging format -------------------------------------------------------------------
# A staging file is a run of windows: ``@@ <slug>/<path> src=<source>`` then the window's
# lines verbatim. A candidate line ends with `` ⟦+kind note⟧`` (credential) or
# `` ⟦-kind note⟧`` (not one); a note ending in `` >`` opens a span that the next line
# ending in `` ⟦<⟧`` closes (PEM blocks). The markers are cut off when compiling.

_HEADER = re.compile(r"^@@ (\S+) src=(\S+)\s*$")
_MARK = re.compile(r" ?⟦([+-])(\S+)(?: (.*?))?⟧$")
_CLOSE = " ⟦<⟧"


def parse_staging(text: str) -> tuple[list[dict[str, str]], list[Label]]:
    files: list[dict[str, str]] = []
    labels: list[Label] = []
    lines: list[str] = []
    path = source = ""
    open_span: Label | None = None

    def flush() -> None:
        if path:
            if open_span is not None:
                raise ValueError(f"{path}: span not closed")
            files.append({"path": path, "source": source, "text": "\n".join(lines) + "\n"})

    for raw in text.splitlines():
        header = _HEADER.match(raw)
        if header:
            flush()
            path, source, lines = header.group(1), header.group(2), []
            continue
        number = len(lines) + 1
        if raw.endswith(_CLOSE):
            if open_span is None:
                raise ValueError(f"{path}:{number}: close without open")
            open_span["last"] = number
            labels.append(open_span)
            open_span = None
            lines.append(raw[: -len(_CLOSE)])
            continue
        mark = _MARK.search(raw)
        if mark:
            sign, kind, note = mark.group(1), mark.group(2), (mark.group(3) or "")
            opens = note == ">" or note.endswith(" >")
            label: Label = {
                "path": path,
                "first": number,
                "last": number,
                "positive": sign == "+",
                "kind": kind,
                "note": note.removesuffix(">").strip() if opens else note,
            }
            if opens:
                open_span = label
            else:
                labels.append(label)
            raw = raw[: mark.start()]
        lines.append(raw)
    flush()
    return files, labels


def compile_staging(directory: Path, real: RealSet = FIRST) -> dict[str, int]:
    """Staging files -> the set's ``data`` (text) and ``manifest`` (provenance, hashes, labels)."""
    stagings = sorted(directory.glob("s*.txt"))
    if not stagings:  # a mistyped directory must not replace the tracked labels with nothing
        raise ValueError(f"{directory}: no staging files (s*.txt) there; nothing was changed")
    files: list[dict[str, str]] = []
    labels: list[Label] = []
    for staging in stagings:
        more_files, more_labels = parse_staging(staging.read_text())
        files += more_files
        labels += more_labels
    seen: set[str] = set()
    for f in files:
        if f["path"] in seen:
            raise ValueError(f"duplicate window path {f['path']}")
        seen.add(f["path"])
    real.data.parent.mkdir(parents=True, exist_ok=True)
    blob = json.dumps({"files": files}, ensure_ascii=False, sort_keys=True).encode()
    real.data.write_bytes(gzip.compress(blob, mtime=0))
    manifest = {
        "files": [
            {
                "path": f["path"],
                "source": f["source"],
                "sha256": hashlib.sha256(f["text"].encode()).hexdigest(),
                "side": real.side(repo_of(f["path"])),
            }
            for f in files
        ],
        "labels": labels,
    }
    real.manifest.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return summary(manifest)


# --- materialising ----------------------------------------------------------------------


def load(real: RealSet = FIRST) -> tuple[dict[str, str], dict[str, Any]]:
    """The windows' text by path (checked against the manifest's hashes) and the manifest."""
    manifest = json.loads(real.manifest.read_text())
    if not real.data.exists():
        raise MissingData(
            f"{real.data} is not here: the real set's text is not tracked (bench/REALSET.md)"
        )
    stored = json.loads(gzip.decompress(real.data.read_bytes()))["files"]
    texts = {f["path"]: f["text"] for f in stored}
    for entry in manifest["files"]:
        text = texts.get(entry["path"])
        if text is None or hashlib.sha256(text.encode()).hexdigest() != entry["sha256"]:
            raise ValueError(f"{entry['path']}: text missing or not the labelled version")
    return texts, manifest


def build(out: Path, part: str, real: RealSet | None = None) -> dict[str, int]:
    """Write ``out/files/...`` and ``out/labels.json`` for ``part`` (one of ``PARTS``)."""
    real = real or set_of(part)
    if part not in real.parts:
        raise ValueError(part)
    texts, manifest = load(real)
    if out.exists():
        shutil.rmtree(out)
    files = out / "files"
    chosen = {e["path"] for e in manifest["files"] if real.side(repo_of(e["path"])) == part}
    for path in sorted(chosen):
        target = files / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(texts[path])
    labels = [x for x in manifest["labels"] if x["path"] in chosen]
    for label in labels:  # a label must point at a non-blank line inside its window
        lines = texts[label["path"]].split("\n")
        if (
            not (1 <= label["first"] <= label["last"] <= len(lines))
            or not lines[label["first"] - 1].strip()
        ):
            raise ValueError(f"label outside its window: {label['path']}:{label['first']}")
    (out / "labels.json").write_text(json.dumps(labels, indent=1, ensure_ascii=False))
    return summary({"files": [{"path": p} for p in chosen], "labels": labels})


def summary(manifest: dict[str, Any]) -> dict[str, int]:
    files = manifest["files"]
    labels = manifest["labels"]
    assert isinstance(files, list)
    assert isinstance(labels, list)
    return {
        "files": len(files),
        "repos": len({repo_of(str(f["path"])) for f in files}),
        "labels": len(labels),
        "positives": sum(1 for x in labels if x["positive"]),
        "negatives": sum(1 for x in labels if not x["positive"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compile", type=Path, metavar="DIR", help="staging dir -> data + labels")
    parser.add_argument("--set", choices=tuple(SETS), default=FIRST.name, help="with --compile")
    args = parser.parse_args()
    if args.compile:
        try:
            print("compiled:", compile_staging(args.compile, SETS[args.set]))
        except ValueError as problem:  # a bad staging dir or file: say what, not a traceback
            print(f"realset: {problem}", file=sys.stderr)
            return 2
        return 0
    for part in PARTS:
        try:
            print(part, build(HERE / ".corpus" / f"eval-{part}", part))
        except MissingData as missing:
            print(part, "skipped:", missing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
