"""The one reference parser: syntax table, error messages, round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secretsd.errors import InvalidPath, InvalidReference
from secretsd.ref import Reference, parse_reference, validate_key, validate_path


@pytest.mark.parametrize(
    ("text", "path", "key", "version"),
    [
        ("secretsd://apps/web/db", "apps/web/db", None, None),
        ("secretsd://apps/web/db#password", "apps/web/db", "password", None),
        ("secretsd://apps/web/db?version=3#password", "apps/web/db", "password", 3),
        ("secretsd://apps/web/db?version=12", "apps/web/db", None, 12),
        ("secretsd://APPS/Web.v2/db_main-1#tls.crt", "APPS/Web.v2/db_main-1", "tls.crt", None),
        ("secretsd://single", "single", None, None),
        ("secretsd://a/..b/c.#.dockerconfigjson", "a/..b/c.", ".dockerconfigjson", None),
    ],
)
def test_valid_references(text: str, path: str, key: str | None, version: int | None) -> None:
    ref = parse_reference(text)
    assert (ref.path, ref.key, ref.version) == (path, key, version)
    assert str(ref) == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("apps/web/db", "does not start with 'secretsd://'"),
        ("https://apps/web/db", "does not start with 'secretsd://'"),
        ("secretsd://", "the path is empty"),
        ("secretsd:///apps/db", "starts with '/'"),
        ("secretsd://apps/db/", "ends with '/'"),
        ("secretsd://apps//db", "segment 2 is empty"),
        ("secretsd://apps/../db", "segment 2 is '..'"),
        ("secretsd://apps/./db", "segment 2 is '.'"),
        ("secretsd://apps/we b/db", "contains ' '"),
        ("secretsd://apps/db#", "the key after '#' is empty"),
        ("secretsd://apps/db#pass word", "contains ' '"),
        ("secretsd://apps/db#a#b", "contains '#'"),
        ("secretsd://apps/db?version=0", "positive integer"),
        ("secretsd://apps/db?version=-1", "positive integer"),
        ("secretsd://apps/db?version=x", "positive integer"),
        ("secretsd://apps/db?version=01", "positive integer"),
        ("secretsd://apps/db?ver=1", "only query parameter is 'version=<n>'"),
        ("secretsd://apps/db?version", "only query parameter"),
        ("secretsd://apps/db?version=" + "9" * 5000, "positive integer"),
        ("secretsd://" + "a/" * 300 + "b", "over the limit"),
    ],
)
def test_invalid_references_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    assert fragment in caught.value.message
    assert caught.value.code == "invalid_reference"


def test_a_value_pasted_instead_of_a_reference_is_not_echoed() -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference("hunter2-super-secret")
    assert "hunter2" not in caught.value.message


def test_reference_object_validates_itself() -> None:
    with pytest.raises(InvalidReference):
        Reference("a//b")
    with pytest.raises(InvalidReference):
        Reference("a/b", key="bad key")
    with pytest.raises(InvalidReference):
        Reference("a/b", version=0)
    assert Reference("a/b", "k", 2).with_key(None) == Reference("a/b", None, 2)


def test_path_and_key_validation() -> None:
    assert validate_path("a/b") == "a/b"
    assert validate_path("", allow_empty=True) == ""
    with pytest.raises(InvalidPath, match="empty"):
        validate_path("")
    assert validate_key("tls.crt") == "tls.crt"
    with pytest.raises(InvalidPath):
        validate_key("a/b")


segment = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,15}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
key = st.from_regex(r"[-._a-zA-Z0-9]{1,20}", fullmatch=True)


@given(
    segments=st.lists(segment, min_size=1, max_size=6),
    key=st.none() | key,
    version=st.none() | st.integers(min_value=1, max_value=10**9),
)
def test_round_trip(segments: list[str], key: str | None, version: int | None) -> None:
    ref = Reference("/".join(segments), key, version)
    assert parse_reference(str(ref)) == ref
