"""What one segment of a run recorded, and reading its files back.

A segment's folder holds its broker's output (``broker/``: raw Parquet, commit
markers, progress lines) and what the timing consumer recorded (``arrivals.csv``).
These read them back as they are; :mod:`alertbench.bench.metrics` judges them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from alertbench.broker.batch.flatten import ALERT_ID_COLUMNS


@dataclass
class SegmentOutcome:
    """What one segment of a run recorded (see :mod:`alertbench.bench.runner`)."""

    tag: str
    params: dict[str, Any]
    topic: str
    partitions: int
    distribution: dict[str, str | None]  # output topic -> its filter (None: not known)
    dir: Path
    warmup: dict[str, Any] = field(default_factory=dict)
    settle: dict[str, Any] = field(default_factory=dict)  # max-throughput's, before step 1
    loads: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    measured_from: float = 0.0
    load_finished: float = 0.0
    drained: bool = False
    resources: list[tuple] = field(default_factory=list)
    lag: list[tuple] = field(default_factory=list)
    sampler_errors: list[str] = field(default_factory=list)
    expected: Path | None = None
    broker_kind: str = "alertbench"  # "external": measured from outside; "null": the ceiling
    group: str | None = None  # the broker's consumer group, or the name its progress is under
    faults: list[dict[str, Any]] = field(default_factory=list)  # the injector's records

    @property
    def broker_out(self) -> Path:
        """The segment broker's output folder."""
        return self.dir / "broker"


def raw_alerts(broker_out: Path) -> pd.DataFrame:
    """Every raw row: ``alert_id``, ``sent_us`` and ``committed`` (epoch s of its batch commit)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = broker_out / "raw"
    commits = {
        int(p.name): p.stat().st_mtime
        for d in (broker_out / "_commits").glob("*")
        for p in d.iterdir()
        if p.name.isdigit()
    }
    frames = []
    for f in sorted(raw.rglob("*.parquet")) if raw.exists() else []:
        names = pq.read_schema(f).names
        id_col = next((c for c in ALERT_ID_COLUMNS if c in names), None)
        if id_col is None:
            continue
        table = pq.read_table(f, columns=[id_col, "sent_time"])
        sent = table.column("sent_time")
        # Spark writes INT96 timestamps, read back in ns: normalise to microseconds.
        sent = sent.cast(pa.timestamp("us", tz=sent.type.tz)).cast(pa.int64())
        batch = int(f.name[1:10])  # files are committed as b<batch:09d>-...
        frame = pd.DataFrame(
            {
                "alert_id": table.column(id_col).to_pandas().astype(str),
                "sent_us": sent.to_pandas(),
                "committed": commits.get(batch, float("nan")),
            }
        )
        frames.append(frame)
    if not frames:
        return pd.DataFrame({"alert_id": [], "sent_us": [], "committed": []})
    return pd.concat(frames, ignore_index=True)


def parquet_rows(folder: Path) -> int:
    """Rows in every Parquet file under ``folder``."""
    import pyarrow.parquet as pq

    if not folder.exists():
        return 0
    return sum(pq.read_metadata(f).num_rows for f in folder.rglob("*.parquet"))


def batches(progress: Path, t0: float) -> list[dict[str, Any]]:
    """The broker's micro-batches from its progress JSON lines."""
    rows = []
    if not progress.exists():
        return rows
    for line in progress.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "batch" not in r or r.get("timestamp") is None:
            continue
        stamp = pd.Timestamp(r["timestamp"]).timestamp()
        rows.append(
            {
                "t_s": round(stamp - t0, 3),
                "query": r.get("query"),
                "batch": r.get("batch"),
                "rows": r.get("rows") or 0,
                "rows_per_s": r.get("rows_per_s") or 0.0,
                "batch_ms": r.get("batch_ms") or 0,
            }
        )
    return rows


def recorded_arrivals(outcome: SegmentOutcome) -> pd.DataFrame:
    """What the timing consumer recorded (COLUMNS of :mod:`alertbench.bench.timing`)."""
    path = outcome.dir / "arrivals.csv"
    if not path.exists():
        return pd.DataFrame(columns=["topic", "alert_id", "sent_us", "arrival_us"])
    return pd.read_csv(path, dtype={"alert_id": str, "topic": str})


#: A science-stats file's columns (alertbench.broker.batch.science.ScienceStats.table).
STATS_COLUMNS = ["module", "rows", "processed", "seconds", "failed", "setup_seconds"]


def science_costs(broker_out: Path) -> dict[str, Any] | None:
    """The science the broker ran and what each module cost, from its committed outputs.

    ``broker_out/science.json`` names the profile and the modules; each
    committed ``science-stats`` file holds one task's costs on one batch.
    Returns ``{"profile", "modules": {name: {...}}, "ms_per_alert"}``, or
    None when the broker recorded no science.
    """
    described = broker_out / "science.json"
    if not described.is_file():
        return None
    info = json.loads(described.read_text())
    files = sorted((broker_out / "science-stats").rglob("*.parquet"))
    frame = (
        pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        if files
        else pd.DataFrame(
            columns=["module", "rows", "processed", "seconds", "failed", "setup_seconds"]
        )
    )
    modules: dict[str, Any] = {}
    for name in info["modules"]:
        rows = frame[frame["module"] == name]
        n, processed = int(rows["rows"].sum()), int(rows["processed"].sum())
        seconds = float(rows["seconds"].sum())
        modules[name] = {
            "rows": n,
            "processed": processed,
            "seconds": round(seconds, 6),
            "ms_per_alert": round(seconds * 1e3 / n, 6) if n else None,
            "ms_per_processed": round(seconds * 1e3 / processed, 6) if processed else None,
            "failed_batches": int(rows["failed"].sum()),
            "setup_seconds": round(float(rows["setup_seconds"].sum()), 3),
        }
    costs = [m["ms_per_alert"] for m in modules.values() if m["ms_per_alert"] is not None]
    return {
        "profile": info["profile"],
        "modules": modules,
        "notes": info.get("notes", []),
        "ms_per_alert": round(sum(costs), 6) if costs else None,
    }
