"""What each distribution topic must hold: the filters applied to the science Parquet.

Run as ``python -m alertbench.bench.expected`` after the broker stopped: a
short local Spark job in its own process (the bench process forks producers
and keeps no JVM). It writes one ``topic,alert_id`` row per selected alert.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def expected_routes(science: Path, filters: dict[str, str], out: Path, master: str) -> int:
    """Write the ``(topic, alert_id)`` pairs the filters select from ``science``; returns rows."""
    from alertbench.broker.distribute import parse_filters, selected
    from alertbench.broker.spark import build_session
    from alertbench.config import load_settings

    out.parent.mkdir(parents=True, exist_ok=True)
    files = list(science.rglob("*.parquet")) if science.exists() else []
    if not files:
        out.write_text("topic,alert_id\n")
        return 0
    spark = build_session(load_settings(broker={"master": master}), app_name="alertbench-expected")
    try:
        frame = spark.read.parquet(str(science))
        rows = selected(frame, parse_filters(filters)).toPandas()
    finally:
        spark.stop()
    rows.to_csv(out, index=False)
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--science DIR --filters JSON --out CSV [--master local[1]]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--science", type=Path, required=True)
    parser.add_argument("--filters", required=True, help="JSON: topic -> filter")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--master", default="local[1]")
    args = parser.parse_args(argv)
    expected_routes(args.science, json.loads(args.filters), args.out, args.master)


if __name__ == "__main__":
    main()
