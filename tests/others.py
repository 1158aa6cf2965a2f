"""Other brokers for the bench's tests: the README's pass-through, and finding what they left."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]


def passthrough(output: str, group: str) -> str:
    """The README's pass-through command (with this interpreter for `.venv/bin/python`)."""
    return (
        f"{sys.executable} examples/passthrough.py --servers {{servers}} "
        f"--input {{input_topic}} --output {output} --group {group}"
    )


def running(marker: str) -> list[psutil.Process]:
    """Processes whose command line names ``marker`` (a unique topic or argument)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def run_scenario(
    cli: Callable[..., Any],
    scenario: Path,
    alerts_dir: Path,
    tmp_path: Path,
    *options: str,
    passes: bool = True,
) -> tuple[dict, str, Path]:
    """``bench run SCENARIO`` as a user types it: its results.json, its output and its folder.

    ``passes``: whether the run must exit 0 (else it must exit 1, having failed).
    """
    out = tmp_path / "results"
    done = cli(
        "bench", "run", str(scenario), "--alerts", str(alerts_dir), "--out", str(out),
        *options, run_dir=tmp_path / "state", cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == (0 if passes else 1), done.stdout + done.stderr
    (run,) = out.iterdir()
    return json.loads((run / "results.json").read_text()), done.stdout, run
