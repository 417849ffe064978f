"""`itsmd report`: from the database with -c and from the daemon with --url; table, CSV, JSON and Markdown."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer

from itsmd import cli
from itsmd.core.access import Role
from itsmd.storage.database import migrate, open_database
from tests import daemon as d
from tests.test_cli_client import run_cli
from tests.test_reports import fixture

PERIOD = ["--from", "2026-11-16T00:00:00Z", "--to", "2026-11-30T00:00:00Z"]
HOSTILE = "=cmd|\x1b[2J*x*"


def itsmd(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as e:
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def config(tmp_path: Path) -> str:
    """A config whose database holds the hand-computed fixture of test_reports (SLA targets: P1 5m/1h)."""
    path = tmp_path / "itsmd.yaml"
    path.write_text("database: sqlite:///r.db\nreports: {timezone: Europe/Berlin, sla: {P1: {ack: 5m, restore: 1h}}}\n")
    db = open_database(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(db)
    with db.engine.begin() as conn:
        fixture(conn)
        conn.exec_driver_sql("UPDATE alerts SET labels = ? WHERE fingerprint = 'a3'",
                             (orjson.dumps({"alertname": HOSTILE}).decode(),))
    db.engine.dispose()
    return str(path)


def test_json_from_the_database(config: str) -> None:
    code, out, err = itsmd("report", "summary", "-c", config, *PERIOD, "--by", "week", "--format", "json")
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["incidents"] == 5 and doc["mttr"] == {"mean": 3200.0, "median": 1800.0, "p90": 7200.0, "n": 3}
    assert list(doc["by"]) == ["2026-W47", "2026-W48", "2026-W49"]  # Berlin weeks, from the config
    assert doc["sla_breaches"] == {"P1": {"ack": 1, "restore": 2}}
    assert doc["auto_remediation_rate"] is None  # no rule of this config has a playbook


def test_csv_keeps_raw_numbers_and_defuses_formulas(config: str) -> None:
    code, out, _ = itsmd("report", "summary", "-c", config, *PERIOD, "--by", "service", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["group"] for r in rows] == ["all", "(none)", "db", "web"]
    assert rows[0]["mttr_mean"] == "3200.0" and rows[0]["mtta_n"] == "3" and rows[0]["self_healed_rate"] == "0.25"
    assert rows[0]["sla_p1_ack"] == "1" and rows[0]["auto_remediation_rate"] == ""
    code, out, _ = itsmd("report", "recurring", "-c", config, *PERIOD, "--format", "csv")
    [item] = list(csv.DictReader(io.StringIO(out)))
    assert item["problem_id"] == "PRB-1" and item["downtime"] == "9600.0" and item["known_error"] == "true"


def test_table_and_markdown_humanise_and_escape(config: str) -> None:
    code, out, _ = itsmd("report", "summary", "-c", config, *PERIOD, "--noisiest", "3")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("Incident summary: 2026-11-16T00:00:00Z .. 2026-11-30T00:00:00Z")
    assert lines[1].split()[:3] == ["GROUP", "INCIDENTS", "ALERTS"]
    assert lines[2].split()[:3] == ["all", "5", "15"] and "53m 20s" in lines[2] and "25.0%" in lines[2]
    assert "\x1b" not in out and "=cmd|\\x1b[2J*x*" in out  # the hostile alert name, escaped
    code, out, _ = itsmd("report", "mttr", "-c", config, *PERIOD, "--format", "markdown")
    assert code == 0 and out.startswith("# MTTR and MTTA\n")
    assert "| GROUP | WEEK | MTTR MEAN |" in out
    assert "| all | 2026-W47 | 20m |" in out
    code, out, _ = itsmd("report", "summary", "-c", config, *PERIOD, "--format", "markdown", "--noisiest", "3")
    assert "## Noisiest alerts" in out and "| =cmd\\|\\\\x1b\\[2J\\*x\\* | 2 | 1 |" in out


def test_bad_arguments(config: str, tmp_path: Path) -> None:
    code, _, err = itsmd("report", "summary", "-c", config, "--from", "2026-11-30T00:00:00Z",
                         "--to", "2026-11-01T00:00:00Z")
    assert code == 1 and "from must be before to" in err
    assert itsmd("report", "summary", "-c", config, "--by", "team")[0] == 2  # argparse
    broken = tmp_path / "broken.yaml"
    broken.write_text("reports: {timezone: Mars/Olympus}\n")
    code, _, err = itsmd("report", "summary", "-c", str(broken))
    assert code == 2 and "unknown time zone" in err


@pytest.fixture
async def url(tmp_path: Path, aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[str]:
    dm = d.daemon(d.config(tmp_path))
    await dm.start_core()
    server = await aiohttp_server(dm.app)
    yield f"http://127.0.0.1:{server.port}"
    await dm.stop()


async def test_from_the_daemon(url: str) -> None:
    viewer = d.TOKENS[Role.VIEWER]
    code, out, err = await run_cli("report", "summary", "--url", url, "--token", viewer, "--format", "json")
    assert code == 0, err
    doc: dict[str, Any] = orjson.loads(out)
    assert doc["incidents"] == 0 and doc["by"] == {} and doc["mttr"]["n"] == 0
    code, out, err = await run_cli("report", "recurring", "--url", url, "--token", d.TOKENS[Role.INGEST])
    assert code == 1 and "may not read (HTTP 403)" in err


def test_csv_cells_never_start_a_spreadsheet_formula() -> None:
    from itsmd.client import report as formats

    doc = {"items": [{"signature": '=HYPERLINK("http://x")', "problem_id": None, "incidents": 2, "downtime": 1.5,
                      "last_seen_at": None, "known_error": False}]}
    out = io.StringIO()
    formats.write("recurring", doc, "csv", out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row == {"signature": '\'=HYPERLINK("http://x")', "problem_id": "", "incidents": "2", "downtime": "1.5",
                   "last_seen_at": "", "known_error": "false"}
