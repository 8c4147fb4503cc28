"""The real-file evaluation set (bench/realset.py) materialises a consistent set.

Its labels are tracked, its text is not (bench/REALSET.md): the staging format and the
tracked labels are checked here; ``realset.build`` itself refuses a label outside its
window wherever the text is present.
Nothing here prints a labelled value.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import realset  # noqa: E402

STAGING = """\
@@ acme-app/config/.env src=acme/app:config/.env
APP_NAME=demo
DB_PASSWORD=hunter22 ⟦+password weak⟧
DB_USER=${USER} ⟦-reference env⟧
@@ other-repo/keys/test.py src=12345
KEY = '''-----BEGIN PRIVATE KEY----- ⟦+private-key test key >⟧
MC4CAQAwBQYDK2VwBCIEIAAAA
-----END PRIVATE KEY-----''' ⟦<⟧
TOKEN = "<your-token>" ⟦-placeholder <>⟧
"""


def sample(where: Path, parts: tuple[str, ...] = realset.FIRST.parts) -> realset.RealSet:
    """A set like the first one, with its files under ``where``."""
    return realset.RealSet("sample", where / "labels.json", where / "data.json.gz", parts)


@pytest.fixture
def staged(tmp_path: Path) -> Path:
    """The staging sample compiled into ``tmp_path``; returns the labels file."""
    (tmp_path / "s01.txt").write_text(STAGING)
    realset.compile_staging(tmp_path, sample(tmp_path))
    return tmp_path / "labels.json"


def test_staging_markers_become_line_labels_and_are_cut_from_the_text(tmp_path: Path) -> None:
    (tmp_path / "s01.txt").write_text(STAGING)
    real = sample(tmp_path)
    counts = realset.compile_staging(tmp_path, real)
    assert counts == {"files": 2, "repos": 2, "labels": 4, "positives": 2, "negatives": 2}

    texts, manifest = realset.load(real)
    spans = [(x["path"], x["first"], x["last"], x["positive"]) for x in manifest["labels"]]
    assert spans == [
        ("acme-app/config/.env", 2, 2, True),
        ("acme-app/config/.env", 3, 3, False),
        ("other-repo/keys/test.py", 1, 3, True),
        ("other-repo/keys/test.py", 4, 4, False),
    ]
    assert all("⟦" not in text for text in texts.values())
    assert texts["acme-app/config/.env"].splitlines()[1] == "DB_PASSWORD=hunter22"

    built = {part: realset.build(tmp_path / part, part, real) for part in real.parts}
    assert sum(b["labels"] for b in built.values()) == 4


def test_a_set_with_one_part_is_held_out_whole(tmp_path: Path) -> None:
    (tmp_path / "s01.txt").write_text(STAGING)
    real = sample(tmp_path, ("held",))
    realset.compile_staging(tmp_path, real)
    assert realset.build(tmp_path / "held", "held", real)["labels"] == 4
    with pytest.raises(ValueError):
        realset.build(tmp_path / "other", "real-tune", real)


def test_a_label_outside_its_window_is_refused(tmp_path: Path, staged: Path) -> None:
    manifest = json.loads(staged.read_text())
    manifest["labels"][0]["last"] = 99
    staged.write_text(json.dumps(manifest))
    real = sample(tmp_path)
    part = real.side(realset.repo_of("acme-app/config/.env"))
    with pytest.raises(ValueError, match="label outside its window"):
        realset.build(tmp_path / part, part, real)


def test_a_window_edited_after_labelling_is_refused(staged: Path) -> None:
    manifest = json.loads(staged.read_text())
    manifest["files"][0]["sha256"] = "0" * 64
    staged.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not the labelled version"):
        realset.load(sample(staged.parent))


@pytest.mark.parametrize("real", realset.SETS.values(), ids=realset.SETS)
def test_tracked_labels_point_into_listed_windows_and_sides_share_no_repository(
    real: realset.RealSet,
) -> None:
    manifest = json.loads(real.manifest.read_text())
    files = {f["path"]: f for f in manifest["files"]}
    assert len(files) == len(manifest["files"])
    for label in manifest["labels"]:
        assert label["path"] in files
        assert 1 <= label["first"] <= label["last"]
        assert label["kind"]
    sides: dict[str, set[str]] = {part: set() for part in real.parts}
    for f in manifest["files"]:
        assert f["side"] == real.side(realset.repo_of(f["path"]))
        sides[f["side"]].add(realset.repo_of(f["path"]))
    if len(real.parts) == 2:
        assert not sides[real.parts[0]] & sides[real.parts[1]]
    positives = [x for x in manifest["labels"] if x["positive"]]
    # big enough to measure; round 11's two late sets were asked for ~180 windows, not ~220, and
    # round 13's two cross-sections hold fewer credentials per window (82 and 71 of ~200), and
    # round 17's code-and-tests set 67 of 186 windows
    assert len(positives) >= 60
    assert len(manifest["labels"]) - len(positives) >= 140


def test_no_two_sets_share_a_file() -> None:
    sources = [
        {f["source"] for f in json.loads(real.manifest.read_text())["files"]}
        for real in realset.SETS.values()
    ]
    for one, other in itertools.combinations(sources, 2):
        assert not one & other


def test_compiling_a_directory_without_staging_files_changes_nothing(tmp_path: Path) -> None:
    """A mistyped staging directory must not overwrite a set's tracked labels with an empty
    set."""
    real = sample(tmp_path)
    real.manifest.write_text('{"files": [], "labels": ["kept"]}')
    with pytest.raises(ValueError, match="no staging files"):
        realset.compile_staging(tmp_path / "typo", real)
    assert "kept" in real.manifest.read_text()
    assert not real.data.exists()
