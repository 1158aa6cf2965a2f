"""The cost of the task reader's CRC32C check: a visit read with ``check.crcs`` off and on.

A topic of real ZTF alerts (10,000 clones by default, a Rubin visit, 2
partitions) on an embedded single Kafka node is read whole, range by range,
by the task reader's own :func:`~alertbench.broker.batch.ranges.read_range`
with librdkafka's ``check.crcs`` off and on, alternating, ``--runs`` times
each after one warm read. It records the wall time and this process's CPU
time per alert for each, their medians and ranges, and the ratio. It never
asserts: it measures.

Usage::

    ALERTBENCH_ALERTS=/path/to/ztf/alerts python benchmarks/check_crcs.py [--alerts 10000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from alertbench.broker.batch import ranges
from alertbench.broker.batch.ranges import OffsetRange, read_range
from alertbench.config import load_settings
from alertbench.kafka import local
from alertbench.kafka.client import end_offsets
from output import fill_topic, machine, real_alerts, write_result


def close_consumers() -> None:
    """Close the task reader's cached consumers."""
    for consumer in ranges._CONSUMERS.values():
        consumer.close()
    ranges._CONSUMERS.clear()


def read_all(servers: str, topic: str, ends: dict[int, int], check: bool) -> dict[str, float]:
    """Read every partition of ``topic`` to ``ends`` with a fresh task-reader consumer."""
    # A fresh consumer per read: its prefetch starts empty for both settings.
    close_consumers()
    wall, cpu, n, size = time.perf_counter(), time.process_time(), 0, 0
    for partition, end in ends.items():
        r = OffsetRange(topic, partition, 0, end, "")
        for records in read_range(servers, r, check_crcs=check):
            n += len(records.values)
            size += sum(len(v) for v in records.values)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"alerts": n, "mb": size / 1e6, "seconds": wall, "cpu_seconds": cpu}


def summary(runs: list[dict[str, float]]) -> dict[str, object]:
    """Median and range of wall and CPU ms per alert over ``runs``."""
    out: dict[str, object] = {"runs": runs}
    for key in ("seconds", "cpu_seconds"):
        per = [r[key] * 1e3 / r["alerts"] for r in runs]
        name = "wall_ms_per_alert" if key == "seconds" else "cpu_ms_per_alert"
        out[name] = {
            "median": round(statistics.median(per), 4),
            "min": round(min(per), 4),
            "max": round(max(per), 4),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="reads per setting, alternating")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    alerts = real_alerts()
    work = Path(tempfile.mkdtemp(prefix="alertbench-crc-bench-"))
    settings = load_settings(run_dir=work, kafka={"base_port": 0, "heap": "1g"})
    servers = local.up(settings).state.bootstrap_servers
    topic = "bench-crc"
    try:
        fill_topic(servers, topic, alerts, args.alerts, args.partitions)
        ends = end_offsets(servers, topic, args.partitions)
        read_all(servers, topic, ends, False)  # warm: the log in the page cache
        found: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for i in range(args.runs):
            for check in (False, True) if i % 2 == 0 else (True, False):
                r = read_all(servers, topic, ends, check)
                found[check].append(r)
                print(
                    f"check.crcs={str(check).lower():5} {r['alerts']:,} alerts "
                    f"{r['seconds']:.2f} s wall, {r['cpu_seconds']:.2f} s CPU"
                )
        off, on = summary(found[False]), summary(found[True])
        result = {
            "benchmark": "check-crcs",
            "alerts": args.alerts,
            "partitions": args.partitions,
            "machine": machine(),
            "off": off,
            "on": on,
            "cpu_ratio_on_off": round(
                on["cpu_ms_per_alert"]["median"] / off["cpu_ms_per_alert"]["median"],
                3,  # type: ignore[index]
            ),
            "wall_ratio_on_off": round(
                on["wall_ms_per_alert"]["median"] / off["wall_ms_per_alert"]["median"],
                3,  # type: ignore[index]
            ),
        }
        print(
            f"CPU per alert: off {off['cpu_ms_per_alert']}, on {on['cpu_ms_per_alert']} "
            f"(x{result['cpu_ratio_on_off']}); wall x{result['wall_ratio_on_off']}"
        )
        write_result(args.out, "check_crcs", result)
    finally:
        close_consumers()
        local.down(settings, purge=True)


if __name__ == "__main__":
    main()
