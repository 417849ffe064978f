"""The weekly report through the running daemon: Markdown of the last ISO week in `reports.timezone`, delivered to
a real local webhook endpoint and written to the configured file; the cron job registered in that zone."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from itsmd.config import load_config
from itsmd.core.report import Period, previous_week
from tests import daemon as d
from tests.notify_sinks import HttpSink
from tests.test_reports import fixture

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday 08:00 in Berlin


@pytest.fixture
async def sink() -> AsyncIterator[HttpSink]:
    s = await HttpSink().start()
    yield s
    await s.close()


@pytest.fixture
async def daemon(tmp_path: Path, sink: HttpSink) -> AsyncIterator[Daemon]:
    (tmp_path / "itsmd.yaml").write_text(f"""
notifiers:
  - {{name: ops-chat, type: webhook, url: "{sink.url('/report')}"}}
reports:
  timezone: Europe/Berlin
  sla: {{P1: {{ack: 5m, restore: 1h}}}}
  weekly: {{cron: "0 8 * * MON", notifier: ops-chat, file: reports/weekly.md}}
""")
    (tmp_path / "reports").mkdir()
    cfg = load_config(tmp_path / "itsmd.yaml", dict(os.environ), tmp_path)
    dm = d.daemon(cfg, FakeClock(NOW))
    await dm.start_core()
    await dm.store.write(fixture)
    yield dm
    await dm.stop()


def test_the_previous_week_is_local() -> None:
    assert previous_week(NOW, "Europe/Berlin") == Period(datetime(2026, 11, 22, 23, tzinfo=UTC),
                                                        datetime(2026, 11, 29, 23, tzinfo=UTC))
    # Sunday 23:30 UTC is already Monday in Berlin: the week that just ended is the previous one.
    assert previous_week(datetime(2026, 11, 29, 23, 30, tzinfo=UTC), "Europe/Berlin").start == datetime(
        2026, 11, 22, 23, tzinfo=UTC)
    assert previous_week(datetime(2026, 11, 29, 23, 30, tzinfo=UTC), "UTC").start == datetime(2026, 11, 16, tzinfo=UTC)


async def test_weekly_report_reaches_the_notifier_and_the_file(daemon: Daemon, sink: HttpSink,
                                                               tmp_path: Path) -> None:
    outcome = await daemon.weekly_report()
    assert outcome.sent_to == "ops-chat" and outcome.written_to == tmp_path / "reports" / "weekly.md"
    [body] = sink.bodies("/report")
    assert body["event"] == "report" and body["report"] == outcome.markdown
    assert body["reason"] == "week 2026-11-22T23:00:00.000000Z .. 2026-11-29T23:00:00.000000Z"
    text = (tmp_path / "reports" / "weekly.md").read_text()
    assert text == outcome.markdown
    assert text.startswith("# Incident summary\n\n2026-11-22T23:00:00Z .. 2026-11-29T23:00:00Z\n")
    lines = text.splitlines()
    # Berlin's week 48 holds C, D and E (B fired one second before it began).
    assert any(line.startswith("| all | 3 | 5 |") for line in lines)
    assert any(line.startswith("| web | 2 |") for line in lines) and "# Recurring problems" in text


async def test_the_cron_job_runs_in_the_report_time_zone(daemon: Daemon) -> None:
    job = daemon.scheduler._aps.get_job("weekly-report")
    assert job is not None
    after = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert job.trigger.get_next_fire_time(None, after) == datetime(2026, 11, 30, 7, tzinfo=UTC)
