"""The `scaleout:` section: durations into the daemon's timers; unknown keys and bad values are problems; a change
needs a restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from itsmd.app import Timers
from itsmd.config import load_config
from itsmd.config.model import Scaleout
from itsmd.errors import ConfigError
from itsmd.reload import restart_needed


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "itsmd.yaml"
    path.write_text(text)
    return path


def test_scaleout_durations_reach_the_timers(tmp_path: Path) -> None:
    path = write(tmp_path, "scaleout: {leader_retry: 500ms, leader_heartbeat: 250ms, leader_timeout: 2s,\n"
                           "           run_lease: 3s, run_renew: 1s, run_poll: 1s, page_lease: 5s}\n")
    config = load_config(path, {}, tmp_path)
    assert config.scaleout == Scaleout(0.5, 0.25, 2.0, 3.0, 1.0, 1.0, 5.0)
    timers = Timers.of(config)
    assert (timers.leadership.retry, timers.leadership.heartbeat, timers.leadership.timeout) == (0.5, 0.25, 2.0)
    assert (timers.run_lease, timers.run_renew, timers.run_poll, timers.pages.lease) == (3.0, 1.0, 1.0, 5.0)


def test_defaults_without_the_section(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "listen: 127.0.0.1:9797\n"), {}, tmp_path)
    assert config.scaleout == Scaleout()
    assert Timers.of(config).run_lease == Timers().run_lease


@pytest.mark.parametrize("text", ["scaleout: {leader_retry: soon}\n", "scaleout: {leaders: 2}\n"])
def test_bad_scaleout_settings_are_problems(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), {}, tmp_path)
    assert any("scaleout" in p for p in e.value.problems)


def test_changing_scaleout_needs_a_restart(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "listen: 127.0.0.1:9797\n"), {}, tmp_path)
    changed = replace(config, scaleout=Scaleout(leader_retry=5.0))
    assert any("scaleout" in p for p in restart_needed(config, changed))


async def test_a_sqlite_daemon_leads_alone(tmp_path: Path) -> None:
    from tests import daemon as d
    dm = d.daemon(d.config(tmp_path))
    await dm.start_core()
    try:
        assert dm.leadership is None and dm.role == "leader"
        assert dm.metrics.leader._value.get() == 1  # type: ignore[attr-defined]
    finally:
        await dm.stop()
