"""Priority = impact x urgency (ServiceNow's 3x3 matrix) and urgency from the severity label."""

from __future__ import annotations

import pytest

from itsmd.core.priority import Level, Priority, parse_level, priority, urgency_of_severity

H, M, L = Level.HIGH, Level.MEDIUM, Level.LOW


@pytest.mark.parametrize(
    ("impact", "urgency", "expected"),
    [
        (H, H, "P1"),
        (H, M, "P2"),
        (H, L, "P3"),
        (M, H, "P2"),
        (M, M, "P3"),
        (M, L, "P4"),
        (L, H, "P3"),
        (L, M, "P4"),
        (L, L, "P5"),
    ],
)
def test_matrix(impact: Level, urgency: Level, expected: str) -> None:
    result = priority(impact, urgency)
    assert result == expected
    assert isinstance(result, Priority) and isinstance(result, str)


def test_levels_accept_their_text() -> None:
    assert priority("high", "low") == "P3"  # type: ignore[arg-type]
    assert [level.rank for level in Level] == [1, 2, 3]


@pytest.mark.parametrize(("text", "level"), [("high", H), (" Medium\n", M), ("LOW", L)])
def test_parse_level(text: str, level: Level) -> None:
    assert parse_level(text) is level


@pytest.mark.parametrize("text", ["", "critical", "hi", "1", "high medium"])
def test_parse_level_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected high, medium or low"):
        parse_level(text)


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        ("critical", H),
        ("page", H),
        ("P1", H),
        ("error", H),
        ("major", H),
        ("high", H),
        ("Critical", H),
        ("warning", M),
        ("medium", M),
        (None, M),
        ("", M),
        ("something-else", M),
        ("info", L),
        ("low", L),
    ],
)
def test_urgency_of_severity(severity: str | None, level: Level) -> None:
    assert urgency_of_severity(severity) is level
