"""`silences:` in itsmd.yaml: maintenance windows compiled to silences with stable ids, every problem with its path."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from itsmd.config import load_config
from itsmd.errors import ConfigError

WINDOWS = """
silences:
  - matchers: ['job="postgres"', 'env=~"prod|staging"']
    schedule: "0 2 * * SUN"
    duration: 2h
    timezone: Europe/Berlin
    comment: weekly database maintenance
  - matchers: ['instance="db-3:9100"']
    starts_at: 2026-12-01T06:00:00Z         # YAML timestamps may go unquoted
    ends_at: "2026-12-01T09:00:00+01:00"
    created_by: dba-team
    comment: disk replacement
"""


def load(tmp_path: Path, text: str) -> object:
    (tmp_path / "itsmd.yaml").write_text(textwrap.dedent(text))
    return load_config(tmp_path / "itsmd.yaml", {}, tmp_path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [p.split(": ", 1)[1] for p in caught.value.problems]


def test_windows_load_as_silences(tmp_path: Path) -> None:
    weekly, disk = load(tmp_path, WINDOWS).silences  # type: ignore[attr-defined]
    assert weekly.id.startswith("config:") and weekly.created_by == "config" and weekly.starts_at is None
    assert [str(m) for m in weekly.matchers] == ['job="postgres"', 'env=~"prod|staging"']
    assert weekly.schedule.expression == "0 2 * * SUN" and weekly.schedule.timezone == "Europe/Berlin"
    assert weekly.duration == 7200.0 and weekly.ends_at is None
    assert weekly.active_at(datetime(2026, 11, 29, 1, 30, tzinfo=UTC))  # Sunday 02:30 in Berlin
    assert disk.created_by == "dba-team" and disk.comment == "disk replacement"
    assert disk.starts_at == datetime(2026, 12, 1, 6, tzinfo=UTC)
    assert disk.ends_at == datetime(2026, 12, 1, 8, tzinfo=UTC)  # +01:00 in the file


def test_ids_depend_only_on_the_definition(tmp_path: Path) -> None:
    first = [s.id for s in load(tmp_path, WINDOWS).silences]  # type: ignore[attr-defined]
    assert [s.id for s in load(tmp_path, WINDOWS).silences] == first  # type: ignore[attr-defined]
    changed = [s.id for s in load(tmp_path, WINDOWS.replace("2h", "3h")).silences]  # type: ignore[attr-defined]
    assert changed[0] != first[0] and changed[1] == first[1]
    assert load(tmp_path, "silences: []").silences == ()  # type: ignore[attr-defined]


def test_every_problem_has_its_path(tmp_path: Path) -> None:
    found = problems(tmp_path, """
        silences:
          - {matchers: ['job="db"', 'bad'], schedule: "0 2 * *", duration: 1h, timezone: Mars/Base}
          - {matchers: ['job="db"'], schedule: "@daily"}
          - {matchers: ['job="db"'], duration: 1h, ends_at: "2026-12-01T00:00:00Z"}
          - {matchers: ['job="db"'], ends_at: 2026-12-01}
          - {matchers: ['job=~".*"'], ends_at: "2026-12-01T00:00:00Z"}
          - {matchers: [], ends_at: "2026-12-01T00:00:00Z", surprise: 1}
          - {matchers: ['job="db"'], ends_at: "2026-12-01T00:00:00Z", comment: twice}
          - {matchers: ['job="db"'], ends_at: "2026-12-01T00:00:00Z", comment: twice}
          - {matchers: ['job="db"'], starts_at: "2026-12-02T00:00:00Z", ends_at: "2026-12-01T00:00:00Z"}
          - {matchers: ['job="db"'], schedule: "0 0 31 2 *", duration: 1h}
        """)
    assert found == [
        "silences[0].matchers[1]: invalid matcher 'bad': expected an operator (=, !=, =~ or !~) after bad, "
        "found the end (column 4)",
        "silences[0].schedule: cron needs 5 fields (minute hour day-of-month month day-of-week) or a macro like "
        "@daily; got 4",
        "silences[0].timezone: unknown time zone 'Mars/Base'; use an IANA name like UTC or Europe/Berlin",
        "silences[1]: schedule needs duration: how long each window lasts",
        "silences[2]: duration goes with schedule; a one-off silence takes ends_at",
        "silences[3].ends_at: must be an RFC 3339 time like 2026-12-01T02:00:00Z",
        "silences[4]: at least one matcher must not match the empty string (else the silence mutes every alert)",
        "silences[5]: unknown key 'surprise'",
        "silences[5].matchers: [] should be non-empty",
        "silences[7]: the same silence as silences[6]",
        "silences[8]: ends_at is before starts_at",
        "silences[9].schedule: the schedule never fires: no month it names has any of its days",
    ]


def test_a_window_in_the_past_is_no_problem(tmp_path: Path) -> None:
    """A config valid yesterday stays valid: an old one-off window is inert, not an error."""
    [old] = load(tmp_path, "silences: [{matchers: ['a=\"b\"'], ends_at: '2020-01-01T00:00:00Z'}]").silences  # type: ignore[attr-defined]
    assert not old.active_at(datetime(2026, 1, 1, tzinfo=UTC))
