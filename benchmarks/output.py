"""What every benchmark script records: the machine it ran on, and one JSON file of results."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from alertbench.bench.runner import machine as bench_machine


def machine(**extra: Any) -> dict[str, Any]:
    """Cores, memory, platform and Python of this machine, plus ``extra`` facts."""
    return {**bench_machine(), "python": platform.python_version(), **extra}


def write_result(out: Path, name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` to ``out/NAME-TIMESTAMP.json`` and say where."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path
