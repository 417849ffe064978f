"""`itsmd replay`: the real Alertmanager captures, recorded as JSON lines, through normalize and the pipeline on an
in-memory database; table and JSON output, bare bodies, bad lines, config discovery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from itsmd.cli import main
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
HEADERS = json.loads((FIXTURES / "headers.json").read_text())["files"]
# Every capture in the order the recording sink received it, at that moment.
ORDER = sorted(HEADERS, key=lambda name: HEADERS[name]["received_utc"])


def recording(folder: Path, names: list[str] = ORDER, bare: bool = False) -> Path:
    path = folder / "recording.jsonl"
    with path.open("w") as out:
        for name in names:
            body = json.loads((FIXTURES / name).read_bytes())
            line = body if bare else {"at": HEADERS[name]["received_utc"], "body": body}
            out.write(json.dumps(line) + "\n")
    return path


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder whose itsmd.yaml names the shipped rules and services."""
    (tmp_path / "itsmd.yaml").write_text(f"rules: ['{ROOT}/rules/*.yaml']\nservices: '{ROOT}/services.yaml'\n"
                                          f"playbooks: ['{ROOT}/playbooks/*.yaml']\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def replay_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["replay", *args, "--format", "json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_fixtures_replayed_as_json(shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = replay_json(capsys, str(recording(shipped)))
    assert set(doc) == {"incidents", "problems", "runs"}
    by_title = {i["title"]: i for i in doc["incidents"]}
    # 03/04: DiskSpaceLow on three nodes of prod-eu-1 -> one disk-space-low incident per node, waiting out
    # quiet:10m after the resolutions of 04b; their recurrence opened a problem for the cluster.
    disks = [i for i in doc["incidents"] if i["rule"] == "disk-space-low"]
    assert len(disks) == 3 and {i["state"] for i in disks} == {"open"} and {i["firing_count"] for i in disks} == {0}
    assert {i["service"] for i in disks} == {"node"}
    # ... and each one a free-disk-space run on its host (rules/node.yaml), left pending: replay executes nothing.
    assert sorted((r["playbook"], r["target"], r["state"]) for r in doc["runs"]) == [
        ("free-disk-space", f"node-{n}.prod-eu-1", "pending") for n in (1, 3, 5)]
    assert {r["incident_id"] for r in doc["runs"]} == {i["id"] for i in disks}
    [problem] = doc["problems"]
    assert problem["signature"] == 'disk-space-low{cluster="prod-eu-1"}' and problem["incident_count"] == 3
    # 11a: the HA pair's alert resolved (a stale firing from peer B is ignored) -> its incident resolved.
    assert by_title["HAPairTest"]["state"] == "resolved"
    assert by_title["HAOnlyOnOneInstance"]["state"] == "open"
    # 07: hostile label values stay data, never templates.
    assert by_title["HostileValues"]["alert_count"] == 2
    assert all(i["id"].startswith("INC-") for i in doc["incidents"])


def test_fixtures_replayed_as_a_table(shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(recording(shipped))]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    rows = [line for line in lines if line.startswith("INC-")]
    assert lines[0].startswith(f"33 deliveries, 48 alerts (0 quarantined): {len(rows)} incidents, 1 problems")
    assert len(rows) >= 10
    assert lines[2].split()[:4] == ["ID", "STATE", "PRIO", "RULE"]
    [ha] = [line for line in rows if line.endswith("  HAPairTest")]
    assert ha.split()[1] == "resolved"
    assert "PRB-1" in out


def test_bare_bodies_take_the_previous_time(shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = recording(shipped, ["01-single-firing.json"])
    with path.open("a") as out:
        out.write((FIXTURES / "03-group-firing.json").read_text().strip() + "\n")
    doc = replay_json(capsys, str(path))
    disks = [i for i in doc["incidents"] if i["rule"] == "disk-space-low"]
    assert len(disks) == 5
    assert {i["opened_at"] for i in disks} == {HEADERS["01-single-firing.json"]["received_utc"]}
    # a recording of bare bodies only runs at the time of the replay
    doc = replay_json(capsys, str(recording(shipped, ["01-single-firing.json"], bare=True)))
    assert len(doc["incidents"]) == 1


def test_bad_lines_are_named_and_the_rest_replayed(shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = recording(shipped, ["01-single-firing.json"])
    with path.open("a") as out:
        out.write("{not json\n")
        out.write('{"at": "yesterday", "body": {}}\n')
        out.write('{"alerts": 5}\n')
    assert main(["replay", str(path), "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert f"{path}: line 2: body is not valid JSON" in captured.err
    assert f"{path}: line 3: at: not an RFC 3339 time" in captured.err
    assert f"{path}: line 4: webhook body must have an 'alerts' list" in captured.err
    assert len(json.loads(captured.out)["incidents"]) == 1


def test_replay_finds_its_config_like_serve(shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = recording(shipped, ["01-single-firing.json"])
    rules = json.loads(json.dumps(replay_json(capsys, str(path))))["incidents"][0]["rule"]
    assert rules == "critical-catch-all"  # the shipped rules, through ./itsmd.yaml
    (shipped / "other.yaml").write_text("rules: []\n")
    assert replay_json(capsys, str(path), "-c", "other.yaml")["incidents"] == []  # -c wins: no rules
    (shipped / "itsmd.yaml").unlink()
    assert replay_json(capsys, str(path))["incidents"] == []  # defaults: ./rules/*.yaml, none here


def test_missing_file(shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "nope.jsonl"]) == 1
    assert "nope.jsonl: cannot read" in capsys.readouterr().err
