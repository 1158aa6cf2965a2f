"""stream2raw throughput: JVM decoding against a per-row Python UDF and a plain consumer.

On the same topic of real ZTF alerts it measures, each as a streaming query
run to the end of the topic (``availableNow``) into Parquet:

* alertbench's stream2raw (decoding with ``from_avro`` in the JVM);
* the common approach: a per-row ``fastavro`` UDF that returns the alert,
  then the same flattening and Parquet output;
* the ceiling: a plain confluent-kafka consumer that only reads the messages.

It writes both ratios to JSON (targets: at least 3x the UDF, at least half
the ceiling). It never asserts: it measures.

Usage::

    ALERTBENCH_ALERTS=/path/to/ztf/alerts python benchmarks/broker.py [--alerts 5000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

import fastavro
import psutil
from confluent_kafka import Consumer

from alertbench.alerts.files import find_alert_files
from alertbench.alerts.reader import AlertReader
from alertbench.broker.decode import make_plan
from alertbench.broker.flatten import flatten
from alertbench.broker.sink import BatchSink
from alertbench.broker.spark import build_session
from alertbench.broker.stream2raw import KAFKA_SCHEMA, decoded, kafka_source, write_raw_batch
from alertbench.config import load_settings
from alertbench.kafka import local
from alertbench.simulator.run import SimulationOptions, simulate
from alertbench.simulator.schedule import Schedule


def ceiling(servers: str, topic: str, count: int) -> float:
    """Alerts/s of a consumer that only reads."""
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"ceiling-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        }
    )
    consumer.subscribe([topic])
    seen, start = 0, None
    while seen < count:
        for m in consumer.consume(1000, timeout=1.0):
            if m.error() is None:
                start = start or time.perf_counter()
                seen += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return count / elapsed


def run_query(spark, servers, topic, out: Path, batch_fn, max_offsets: int) -> float:
    """Seconds for a streaming query to process the whole topic."""
    start = time.perf_counter()
    query = (
        kafka_source(spark, servers, [topic], max_offsets=max_offsets)
        .writeStream.foreachBatch(batch_fn)
        .option("checkpointLocation", str(out / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--max-offsets", type=int, default=10_000)  # a Rubin visit per batch
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    sources = os.environ.get("ALERTBENCH_ALERTS")
    if not sources:
        raise SystemExit("set ALERTBENCH_ALERTS to a folder of real ZTF alerts")
    alerts = AlertReader().read(find_alert_files([sources]))

    work = Path(tempfile.mkdtemp(prefix="alertbench-broker-bench-"))
    settings = load_settings(
        run_dir=work, kafka={"base_port": 0, "heap": "1g"}, broker={"master": "local[2]"}
    )
    servers = local.up(settings).state.bootstrap_servers
    topic = "bench-broker"
    result: dict = {
        "benchmark": "broker-stream2raw",
        "alerts": args.alerts,
        "partitions": args.partitions,
        "master": "local[2]",
        "machine": {
            "cores": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
        },
    }
    try:
        simulate(
            SimulationOptions(
                servers=servers,
                topic=topic,
                schedule=Schedule(mode="max"),
                count=args.alerts,
                loop=True,
                partitions=args.partitions,
            ),
            alerts=alerts,
            report=AlertReader().report,
        )
        result["ceiling_alerts_per_s"] = round(ceiling(servers, topic, args.alerts), 1)
        print(f"plain consumer (ceiling): {result['ceiling_alerts_per_s']:,.0f} alerts/s")

        spark = build_session(settings)
        plan = make_plan("ztf", servers=servers, topics=[topic])

        # Warm the JVM once so neither contender pays for it alone.
        warm = work / "warm"
        run_query(
            spark,
            servers,
            topic,
            warm,
            lambda df, i: write_raw_batch(BatchSink(warm, "w"), df, i, plan),
            args.max_offsets,
        )

        out = work / "alertbench"
        sink = BatchSink(out, "stream2raw")
        secs = run_query(
            spark,
            servers,
            topic,
            out,
            lambda df, i: write_raw_batch(sink, df, i, plan),
            args.max_offsets,
        )
        rows = spark.read.parquet(str(out / "raw")).count()
        result["alertbench"] = {
            "seconds": round(secs, 2),
            "rows": rows,
            "alerts_per_s": round(rows / secs, 1),
        }
        print(f"alertbench stream2raw (JVM decode): {rows / secs:,.0f} alerts/s")

        from pyspark.sql import functions as F

        alert_type = decoded(spark.createDataFrame([], KAFKA_SCHEMA), plan).schema["alert"].dataType

        @F.udf(returnType=alert_type)
        def decode_udf(value: bytes):
            return next(fastavro.reader(io.BytesIO(value)))

        udf_out = work / "udf"

        def udf_batch(df, batch_id):
            frame = df.withColumn("alert", decode_udf("value"))
            flatten(frame, plan.schema).write.mode("append").partitionBy("night").parquet(
                str(udf_out / "raw")
            )

        secs = run_query(spark, servers, topic, udf_out, udf_batch, args.max_offsets)
        rows = spark.read.parquet(str(udf_out / "raw")).count()
        result["per_row_udf"] = {
            "seconds": round(secs, 2),
            "rows": rows,
            "alerts_per_s": round(rows / secs, 1),
        }
        print(f"per-row fastavro UDF: {rows / secs:,.0f} alerts/s")
        result["ratio_vs_udf"] = round(
            result["alertbench"]["alerts_per_s"] / result["per_row_udf"]["alerts_per_s"], 2
        )
        result["ratio_vs_ceiling"] = round(
            result["alertbench"]["alerts_per_s"] / result["ceiling_alerts_per_s"], 3
        )
        print(
            f"alertbench / UDF: {result['ratio_vs_udf']} (target >= 3); "
            f"alertbench / ceiling: {result['ratio_vs_ceiling']} (target >= 0.5)"
        )
        spark.stop()
    finally:
        local.down(settings, purge=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"broker-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
