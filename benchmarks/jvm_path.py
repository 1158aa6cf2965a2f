"""The broker's former stream2raw: Spark's ``from_avro`` and row engine (a contender only).

Kept for ``benchmarks/broker.py``, beside the per-row UDF and Fink's ingest:
the product decodes in native code (:mod:`alertbench.broker.batch.raw`). Every
wire format becomes a ``from_avro`` over a slice of the message, so decoding
runs in Spark's JVM; the decoded struct is flattened into the same raw
columns with one ``selectExpr`` and written with Spark's Parquet writer,
exactly once through the product's :class:`~alertbench.broker.stream.sink.BatchSink`.
"""

from __future__ import annotations

import json
import struct

from alertbench.alerts.schema import Schema
from alertbench.alerts.wire import SENT_HEADER
from alertbench.broker.batch.decode import DecodePlan, framing_reason
from alertbench.broker.batch.flatten import alert_columns, observation_jd_source
from alertbench.broker.stream.sink import BatchSink

#: The columns of Spark's Kafka source.
KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
    "timestampType int, headers array<struct<key:string,value:binary>>"
)


def _framing(plan: DecodePlan):
    """Spark columns ``(body, fits)``: each message's Avro body, and whether its framing fits."""
    from pyspark.sql import functions as F

    v = F.col("value")
    if plan.format == "ztf":
        h = plan.header_len
        length = F.length(v)

        def varint_len(x):
            return (
                F.when(x < 1 << 7, 1)
                .when(x < 1 << 14, 2)
                .when(x < 1 << 21, 3)
                .when(x < 1 << 28, 4)
                .otherwise(5)
            )

        # After the header: a count of 1, the body size as a varint of s bytes,
        # the body, the 16-byte sync. Only one s is consistent.
        size_len = F.coalesce(
            *[F.when(varint_len(2 * (length - h - 17 - s)) == s, F.lit(s)) for s in range(1, 6)]
        )
        body = v.substr(F.lit(h + 2) + size_len, length - h - 17 - size_len)
        sync_ok = F.substring(v, h - 15, 16) == v.substr(length - 15, F.lit(16))
        header_ok = F.substring(v, 1, h - 16) == F.lit(plan.header_prefix)
        return body, header_ok & (length > h + 17) & sync_ok
    if plan.format == "confluent":
        prefix = F.lit(b"\x00" + struct.pack(">I", plan.schema_id))
        return v.substr(F.lit(6), F.length(v) - 5), F.substring(v, 1, 5) == prefix
    return v, F.lit(True)


def decoded(df, plan: DecodePlan):
    """Kafka rows plus the decoded ``alert`` struct (null where the message does not decode)."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    body, fits = _framing(plan)
    alert = F.when(
        fits, from_avro(body, json.dumps(plan.schema.definition), {"mode": "PERMISSIVE"})
    )
    return df.withColumn("alert", alert)


def flatten(df, schema: Schema):
    """Raw alert rows from Kafka columns plus a decoded ``alert`` struct, in one ``selectExpr``."""
    sent = (
        f"timestamp_micros(CAST(CAST(filter(headers, h -> h.key = '{SENT_HEADER}')[0].value "
        "AS STRING) AS BIGINT)) AS sent_time"
    )
    source = observation_jd_source(schema)
    jd = "CAST(NULL AS DOUBLE)" if source is None else f"{source[0]} + {source[1]}"
    night = (
        f"coalesce(date_format(timestamp_seconds(({jd} - 2440587.5) * 86400.0), 'yyyyMMdd'), "
        "'unknown') AS night"
    )
    return df.selectExpr(
        *(f"{path} AS `{name}`" for name, path in alert_columns(schema)),
        "topic",
        "partition",
        "offset",
        "timestamp AS kafka_time",
        sent,
        "current_timestamp() AS ingest_time",
    ).selectExpr("*", night)


def write_raw_batch(sink: BatchSink, df, batch_id: int, plan: DecodePlan) -> None:
    """Decode one micro-batch with ``from_avro`` and write its raw alerts, exactly once.

    Messages that do not decode are counted by an observation and, if any,
    written to the quarantine with the framing's reason.
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    if sink.done(batch_id):
        return
    sink.begin(batch_id)
    # One task per core: every task sets up Parquet writers for ~600 nested columns.
    df = df.coalesce(df.sparkSession.sparkContext.defaultParallelism)
    ok = F.col("alert").isNotNull()
    seen = Observation(f"decode-{batch_id}")
    counted = decoded(df, plan).observe(seen, F.count_if(~ok).alias("bad"))
    sink.stage(batch_id, "raw", flatten(counted.filter(ok), plan.schema), ["night"])
    if seen.get.get("bad", 0):
        reason = framing_reason(plan) or "Avro body does not decode"
        bad = (
            decoded(df, plan)
            .filter(~ok)
            .select("value", F.lit(reason).alias("error"), "topic", "partition", "offset")
        )
        sink.stage(batch_id, "quarantine", bad, [])
    sink.commit(batch_id, ["raw", "quarantine"])
