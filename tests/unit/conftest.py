"""Fixtures of the unit tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ALERTBENCH_* variable from the developer's shell or CI, no stray alertbench.toml."""
    for name in list(os.environ):
        if name.upper().startswith("ALERTBENCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
