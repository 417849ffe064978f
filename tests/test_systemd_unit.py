"""The shipped systemd unit passes `systemd-analyze verify` and scores <= 2.5 in `systemd-analyze security`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "itsmd.service"
pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at the installed itsmd (verify checks that the binary exists)."""
    itsmd = shutil.which("itsmd")
    assert itsmd, "the package must be installed (pip install -e .)"
    path = tmp_path / "itsmd.service"
    path.write_text(UNIT.read_text().replace("/usr/bin/itsmd", itsmd))
    return path


def test_verify(unit: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "itsmd.service" not in result.stderr, result.stderr  # no warning about our unit


def test_security_exposure_at_most_2_5(unit: Path) -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for itsmd.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.5


def test_unit_has_the_operational_contract() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes",
                 "StateDirectory=itsmd", "ProtectSystem=strict", "LimitNOFILE="):
        assert line in text
