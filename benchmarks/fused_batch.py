"""How long one fused micro-batch takes, small and visit-sized, for each Kafka reader.

On an embedded Kafka node and ``local[2]``, the fused broker (every stage in
one query) reads topics of real ZTF alerts: several batches of 10 alerts (the
fixed cost of a batch) and batches of a whole visit (10,000 by default), once
with every alert distributed again and once with the default ZTF filters.
Each micro-batch's duration comes from Spark's query progress. The first
batch of a query, which pays for the Spark job's set-up, is reported apart.
Both Kafka readers (Spark's source feeding the tasks, or the tasks reading
their offset ranges) are measured in one run, side by side. It writes JSON
and never asserts.

Usage::

    ALERTBENCH_ALERTS=/path/to/ztf/alerts python benchmarks/fused_batch.py [--visit 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from alertbench.broker.stream.run import run_broker
from alertbench.config import load_settings
from alertbench.kafka import local
from alertbench.kafka.admin import create_topic
from output import fill_topic, machine, real_alerts, write_result


def send(servers: str, topic: str, alerts, count: int, first_clone: int) -> None:
    """Send ``count`` unique clones of the real alerts to ``topic``, flat out."""
    fill_topic(
        servers, topic, alerts, count, 2, loop=False, synthesize=True, first_clone=first_clone
    )


@contextlib.contextmanager
def feeding(
    servers, topic: str, alerts, size: int, repeats: int, progress: Path, first_clone: int = 0
) -> Iterator[None]:
    """Send ``repeats`` loads of ``size`` alerts in the background while the broker runs.

    One batch at a time: the next load is sent once the broker has read the last.
    """

    def sender() -> None:
        for k in range(repeats):
            send(servers, topic, alerts, size, first_clone=first_clone + (k + 1) * 100_000)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                done = progress.exists() and sum(b["rows"] for b in batches(progress))
                if done and done >= (k + 1) * size:
                    break
                time.sleep(0.2)
            time.sleep(2)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def batches(progress: Path) -> list[dict]:
    """``{rows, batch_ms, duration_ms}`` of every micro-batch that read rows."""
    out = []
    for line in progress.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        if record.get("query") == "fused" and record.get("rows"):
            out.append(
                {
                    "rows": record["rows"],
                    "batch_ms": record["batch_ms"],
                    "ms": record["duration_ms"],
                }
            )
    return out


def measure(servers: str, work: Path, alerts, variant: str, small: int, visit: int) -> dict:
    """Run the fused broker on two topics' worth of batches; the batch durations.

    ``variant``: ``spark`` (Spark's Kafka source feeds the tasks) or ``tasks``
    (each task reads its offset range).
    """
    out: dict = {}
    # "visit": every alert goes out again (a filter that passes all, the most
    # sending); "visit_default": the broker's default ZTF filters.
    for name, size, repeats in (
        ("small", small, 6),
        ("visit", visit, 3),
        ("visit_default", visit, 3),
    ):
        topic = f"fused-{variant}-{name}"
        create_topic(servers, topic, partitions=2)
        filters = {} if name == "visit_default" else {"filters": {f"{topic}-all": "true"}}
        settings = load_settings(
            run_dir=work / variant / name,
            broker={
                "master": "local[2]",
                "topics": [topic],
                "trigger": "1 second",
                "kafka_reader": variant,
                "min_offsets_per_trigger": size,
                "max_trigger_delay_s": 30,
                **filters,
            },
        )
        progress = work / variant / name / "broker" / "progress.jsonl"
        with feeding(servers, topic, alerts, size, repeats, progress):
            # Idle for longer than a batch may wait for its minimum (max_trigger_delay_s).
            result = run_broker(settings, servers=servers, fused=True, until_idle=45, timeout=900)
        found = batches(result.out / "progress.jsonl")
        out[name] = {
            "first": found[0] if found else None,
            "later": found[1:],
            "later_batch_ms": sorted(b["batch_ms"] for b in found[1:]),
        }
        print(variant, name, [b["rows"] for b in found], [b["batch_ms"] for b in found])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--visit", type=int, default=10_000)
    parser.add_argument("--variants", default="spark,tasks")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    alerts = real_alerts()
    work = Path(tempfile.mkdtemp(prefix="alertbench-fused-bench-"))
    settings = load_settings(run_dir=work, kafka={"base_port": 0, "heap": "1g"})
    servers = local.up(settings).state.bootstrap_servers
    result: dict = {
        "benchmark": "fused-micro-batch",
        "master": "local[2]",
        "machine": machine(),
    }
    try:
        for variant in args.variants.split(","):
            result[variant] = measure(servers, work, alerts, variant, args.small, args.visit)
    finally:
        local.down(settings, purge=True)
        shutil.rmtree(work, ignore_errors=True)  # gigabytes of Parquet and checkpoints
    write_result(args.out, "fused-batch", result)


if __name__ == "__main__":
    main()
