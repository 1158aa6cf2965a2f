"""Fixtures shared by every test tier: where the real alerts are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alertbench.alerts.files import find_alert_files


@pytest.fixture(scope="session")
def alerts_dir() -> Path:
    """The real ZTF alerts named by ALERTBENCH_ALERTS (CI points it at a night of 1,084)."""
    value = os.environ.get("ALERTBENCH_ALERTS")
    if not value:
        pytest.skip("needs real alerts: set ALERTBENCH_ALERTS to a folder of .avro alert files")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"ALERTBENCH_ALERTS={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def alert_files(alerts_dir: Path) -> list[Path]:
    """Every alert file of ``alerts_dir``, sorted."""
    return find_alert_files([alerts_dir])
