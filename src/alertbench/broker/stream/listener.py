"""Per-batch progress of every streaming query, live and as JSON lines."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener


def batch_record(progress: dict[str, Any]) -> dict[str, Any]:
    """The fields of a query progress that a benchmark reads."""
    return {
        "query": progress.get("name"),
        "batch": progress.get("batchId"),
        "timestamp": progress.get("timestamp"),
        "rows": progress.get("numInputRows", 0),
        "input_rows_per_s": progress.get("inputRowsPerSecond"),
        "rows_per_s": progress.get("processedRowsPerSecond"),
        "batch_ms": progress.get("batchDuration"),
        "duration_ms": progress.get("durationMs", {}),
        "sources": [
            {
                "description": s.get("description"),
                "end": s.get("endOffset"),
                "metrics": s.get("metrics", {}),
            }
            for s in progress.get("sources", [])
        ],
    }


class ProgressListener(StreamingQueryListener):
    """Writes every batch to ``path`` as a JSON line and passes it to ``echo``.

    Parameters
    ----------
    path : Path
        The JSON lines file (appended to).
    echo : callable, optional
        Called with each batch record (for live display).
    """

    def __init__(self, path: Path, echo: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = path
        self.echo = echo
        self.lock = threading.Lock()
        self.last_rows_at: dict[str, float] = {}
        self.last_batch_at: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        self.batches: dict[str, int] = {}
        path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, record: dict[str, Any]) -> None:
        with self.lock, self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802, D102 - Spark's names
        self._write({"event": "started", "query": event.name, "at": time.time()})

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802, D102
        progress = json.loads(event.progress.json)
        record = batch_record(progress)
        name = record["query"]
        now = time.time()
        with self.lock:
            self.last_batch_at[name] = now
            self.batches[name] = self.batches.get(name, 0) + 1
            self.rows[name] = self.rows.get(name, 0) + int(record["rows"] or 0)
            if record["rows"]:
                self.last_rows_at[name] = now
        self._write({"event": "progress", **record})
        if self.echo is not None:
            self.echo(record)

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802, D102
        pass

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802, D102
        self._write(
            {
                "event": "terminated",
                "id": str(event.id),
                "exception": event.exception,
                "at": time.time(),
            }
        )

    def idle_for(self, names: list[str]) -> float:
        """Seconds since any of ``names`` last read a row (inf if they never did)."""
        with self.lock:
            times = [self.last_rows_at[n] for n in names if n in self.last_rows_at]
        return time.time() - max(times) if times else float("inf")
