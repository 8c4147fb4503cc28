"""``Spot``: where a judged value and its key stand, found once for every context check."""

from __future__ import annotations

from secretsd.scanners.spot import Spot

#: The value appears twice: as the driver's name and as the password.
DRIVER_LINE = 'db, err := sql.Open("postgres", "user=app password=postgres host=db")'


def test_the_match_position_decides_which_occurrence_is_judged() -> None:
    at = DRIVER_LINE.rindex("postgres")
    spot = Spot.locate(DRIVER_LINE, "postgres", "password", at, DRIVER_LINE.index("password"))
    assert spot.at == at
    assert spot.between == "="
    assert spot.before.endswith("password=")
    assert not spot.quoted  # inside a DSN, not a literal of its own


def test_without_positions_the_value_after_the_key_is_taken() -> None:
    spot = Spot.locate(DRIVER_LINE, "postgres", "password")
    assert spot.at == DRIVER_LINE.rindex("postgres")
    assert spot.key_at == DRIVER_LINE.index("password")


def test_a_position_where_the_value_does_not_stand_is_not_trusted() -> None:
    spot = Spot.locate('password = "Tq4Wn8Zr"', "Tq4Wn8Zr", "password", at=0, key_at=5)
    assert (spot.at, spot.key_at) == (12, 0)
    assert spot.quoted


def test_the_key_of_a_shell_default_is_the_setting_not_its_lookup() -> None:
    line = "DB_PASSWORD: ${DB_PASSWORD:-Tq4Wn8Zr}"
    spot = Spot.locate(line, "${DB_PASSWORD:-Tq4Wn8Zr}", "DB_PASSWORD")
    assert spot.key_at == 0
    inner = spot.narrowed("Tq4Wn8Zr")
    assert inner.at == line.index("Tq4Wn8Zr")
    assert inner.key_at == 0
    assert inner.after == "}"


def test_a_value_not_on_the_line() -> None:
    spot = Spot.locate("nothing here", "Tq4Wn8Zr", "password")
    assert (spot.at, spot.end, spot.before, spot.after, spot.between) == (
        -1,
        -1,
        "nothing here",
        "",
        "",
    )
    assert not spot.quoted
