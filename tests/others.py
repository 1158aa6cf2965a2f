"""Other brokers for the bench's tests: the README's pass-through, and finding what they left."""

from __future__ import annotations

import sys
from pathlib import Path

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
