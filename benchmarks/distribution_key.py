"""What Fink's message keys cost: the alert's id against the whole Avro schema in every key.

With ``distribution_key = "schema"`` each distributed message carries the
topic's schema as JSON text in its key, as Fink's are, so that Fink's client
needs no schema of its own. On an embedded Kafka node and ``local[2]``, the
fused broker sends visits of real ZTF alerts (every alert to one topic, the
most sending) with each key, alternating, several times. It records each
visit's batch time from Spark's query progress, the key and value sizes,
and the topic's bytes on Kafka's disk. It writes JSON and never asserts.

Usage::

    ALERTBENCH_ALERTS=/path/to/ztf/alerts python benchmarks/distribution_key.py [--visit 10000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from alertbench.broker.stream.run import run_broker
from alertbench.config import load_settings
from alertbench.kafka import local
from alertbench.kafka.admin import create_topic
from alertbench.kafka.client import consume
from fused_batch import batches, feeding
from output import machine, real_alerts, write_result


def topic_bytes(data_dirs: list[Path], topic: str) -> int:
    """Bytes of ``topic``'s log segments on the node's disk."""
    return sum(
        f.stat().st_size for d in data_dirs for f in d.glob(f"{topic}-*/*.log") if f.is_file()
    )


def measure(servers, work: Path, alerts, key: str, visit: int, round_: int, data_dirs) -> dict:
    """One fused query: a warm-up visit, then a measured one; every alert sent on."""
    topic = f"key-{key}-{round_}"
    create_topic(servers, topic, partitions=2)
    out_topic = f"{topic}-all"
    settings = load_settings(
        run_dir=work / topic,
        broker={
            "master": "local[2]",
            "topics": [topic],
            "trigger": "1 second",
            "min_offsets_per_trigger": visit,
            "max_trigger_delay_s": 30,
            "filters": {out_topic: "true"},
            "distribution_key": key,
        },
    )
    progress = work / topic / "broker" / "progress.jsonl"
    with feeding(servers, topic, alerts, visit, 2, progress, first_clone=round_ * 1_000_000):
        result = run_broker(settings, servers=servers, fused=True, until_idle=45, timeout=900)
    found = batches(result.out / "progress.jsonl")
    sample = consume(servers, out_topic, count=50)
    return {
        "batches_ms": [b["batch_ms"] for b in found],
        "measured_batch_ms": found[-1]["batch_ms"] if len(found) > 1 else None,
        "key_bytes": statistics.mean(len(m[2] or b"") for m in sample),
        "value_bytes": statistics.mean(len(m[3]) for m in sample),
        "topic_bytes_on_disk": topic_bytes(data_dirs, out_topic),
        "messages": 2 * visit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visit", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    alerts = real_alerts()
    work = Path(tempfile.mkdtemp(prefix="alertbench-key-bench-"))
    settings = load_settings(run_dir=work, kafka={"base_port": 0, "heap": "1g"})
    state = local.up(settings).state
    servers = state.bootstrap_servers
    data_dirs = [n.home / "data" for n in state.nodes]
    result: dict = {
        "benchmark": "distribution-key",
        "master": "local[2]",
        "visit": args.visit,
        "machine": machine(),
        "rounds": [],
    }
    try:
        for r in range(args.rounds):
            for key in ("id", "schema") if r % 2 == 0 else ("schema", "id"):
                got = measure(servers, work, alerts, key, args.visit, r, data_dirs)
                print(r, key, got)
                result["rounds"].append({"round": r, "key": key, **got})
    finally:
        local.down(settings, purge=True)
        shutil.rmtree(work, ignore_errors=True)
    write_result(args.out, "distribution-key", result)


if __name__ == "__main__":
    main()
