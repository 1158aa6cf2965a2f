"""What every benchmark script records: the machine it ran on, and one JSON file of results."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from alertbench.alerts.files import find_alert_files
from alertbench.alerts.reader import Alert, AlertReader
from alertbench.bench.session import machine as bench_machine


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


def alert_files() -> list[Path]:
    """The alert files of ``ALERTBENCH_ALERTS``; exits with what to set if it is not."""
    sources = os.environ.get("ALERTBENCH_ALERTS")
    if not sources:
        raise SystemExit("set ALERTBENCH_ALERTS to a folder of real ZTF alerts")
    return find_alert_files([sources])


def real_alerts() -> list[Alert]:
    """The alerts of ``ALERTBENCH_ALERTS``, read."""
    return AlertReader().read(alert_files())


def fill_topic(
    servers: str, topic: str, alerts: list[Alert], count: int, partitions: int, **options: Any
) -> None:
    """Send ``count`` of ``alerts`` (looped) into ``topic`` as fast as Kafka takes them.

    ``options`` are more :class:`~alertbench.simulator.run.SimulationOptions`
    (``synthesize=True`` for unique clones).
    """
    from alertbench.simulator.run import SimulationOptions, simulate
    from alertbench.simulator.schedule import Schedule

    simulate(
        SimulationOptions(
            servers=servers,
            topic=topic,
            schedule=Schedule(mode="max"),
            count=count,
            partitions=partitions,
            **({"loop": True} | options),
        ),
        alerts=alerts,
        report=AlertReader().report,
    )
