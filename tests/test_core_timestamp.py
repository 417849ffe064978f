from datetime import UTC, datetime

import pytest

from itsmd.core.timestamp import format_time, parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T21:30:42Z", datetime(2026, 11, 25, 21, 30, 42, tzinfo=UTC)),
        ("2026-11-25T21:25:51.67Z", datetime(2026, 11, 25, 21, 25, 51, 670000, tzinfo=UTC)),
        ("2026-11-25T21:30:42.075989537Z", datetime(2026, 11, 25, 21, 30, 42, 75989, tzinfo=UTC)),
        ("2026-11-26T06:26:59.42610386+09:00", datetime(2026, 11, 25, 21, 26, 59, 426103, tzinfo=UTC)),
        ("2026-11-25T21:30:42.1-01:30", datetime(2026, 11, 25, 23, 0, 42, 100000, tzinfo=UTC)),
        ("2026-11-25t21:30:42z", datetime(2026, 11, 25, 21, 30, 42, tzinfo=UTC)),
    ],
)
def test_parse_any_fraction_and_offset(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


def test_go_zero_time_means_none() -> None:
    assert parse_time("0001-01-01T00:00:00Z") is None


@pytest.mark.parametrize("bad", ["2026-11-25", "2026-11-25T21:30:42", "yesterday", "2026-11-25T21:30:42.1234567890Z",
                                 "2026-13-25T21:30:42Z", ""])
def test_rejects_non_rfc3339(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_time(bad)


def test_format_is_utc_z() -> None:
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2026-01-02T03:04:05.000006Z"
    assert format_time(None) is None
