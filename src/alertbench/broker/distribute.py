"""distribute: science alerts -> filters -> one Kafka topic per filter, in one pass.

Every filter is evaluated on every alert in the same query; the names of the
filters an alert passes become rows of a ``topic`` column, which Spark's
Kafka sink routes. Each alert goes out once per topic as the survey's own
record followed by the columns the broker added, with a schema published
as an ``.avsc`` beside the outputs for consumers (see
:func:`distribution_schema`); any reader of the survey's schema reads it.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alertbench.alerts.schema import Schema
from alertbench.alerts.wire import ALERT_ID_HEADER, SENT_HEADER
from alertbench.broker.flatten import (
    DETECTION_FIELD,
    alert_columns,
    alert_id_column,
    detection_fields,
)
from alertbench.broker.raw2science import ROW_KEY
from alertbench.errors import ConfigError

# Kafka's own coordinates of the raw alert would clash with the sink's columns.
NOT_DISTRIBUTED = {"topic", "partition", "offset"}
#: The column of an alert's original Avro body, where a frame carries it.
BODY = "_alert_body"
_PYTHON_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass
class Filter:
    """A distribution filter: its topic and an SQL predicate or a Python function.

    A Python filter takes a pandas DataFrame of science columns and returns a
    boolean array.
    """

    topic: str
    sql: str | None = None
    function: Any = None


def parse_filters(spec: dict[str, str]) -> list[Filter]:
    """Filters from configuration: ``{topic: "SQL predicate" or "package.module:function"}``.

    Raises
    ------
    ConfigError
        If a Python filter cannot be imported.
    """
    out = []
    for topic, rule in spec.items():
        if _PYTHON_REF.match(rule.strip()):
            module, _, name = rule.strip().partition(":")
            try:
                fn = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"filter {topic}: cannot load {rule}: {exc}") from exc
            out.append(Filter(topic, function=fn))
        else:
            out.append(Filter(topic, sql=rule))
    return out


def _nullable(dtype):
    """``dtype`` with every field and element nullable, whatever the source frame said."""
    from pyspark.sql.types import ArrayType, MapType, StructField, StructType

    if isinstance(dtype, StructType):
        return StructType([StructField(f.name, _nullable(f.dataType), True) for f in dtype.fields])
    if isinstance(dtype, ArrayType):
        return ArrayType(_nullable(dtype.elementType), True)
    if isinstance(dtype, MapType):
        return MapType(dtype.keyType, _nullable(dtype.valueType), True)
    return dtype


def added_columns(columns: list[str], schema: Schema) -> list[str]:
    """The columns of a science frame that the broker added to the survey's alert, in order."""
    alert = {name for name, _ in alert_columns(schema)}
    skip = alert | NOT_DISTRIBUTED | {"night", BODY}
    return [c for c in columns if c not in skip]


def distribution_schema(spark, frame, schema: Schema) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Avro schema of distributed alerts, and the schema of the broker's part of it.

    A distributed alert is the survey's own record followed by the columns
    the broker added (Kafka and processing times, the science modules'
    outputs). Avro encodes a record as its fields one after the other, so
    its bytes are the alert's original body followed by the encoding of the
    added columns, and any reader of the survey's schema decodes it through
    schema resolution. The added fields are all nullable: a streaming file
    source reports all columns nullable, a static frame may not, and the
    published schema must not depend on which one the alerts came through.

    Returns
    -------
    tuple of dict
        (the published schema, the record schema of the added columns).
    """
    from pyspark.sql.types import StructType

    struct = _nullable(StructType([frame.schema[c] for c in added_columns(frame.columns, schema)]))
    tail = json.loads(_avro_schema_text(spark, struct.json()))
    fields = [*schema.definition["fields"], *tail["fields"]]
    return {**schema.definition, "fields": fields}, tail


@functools.lru_cache(maxsize=16)
def _avro_schema_text(spark, struct_json: str) -> str:
    # Every micro-batch has the same columns: convert once, not once per batch.
    jtype = spark._jsparkSession.parseDataType(struct_json)
    avro = spark._jvm.org.apache.spark.sql.avro.SchemaConverters.toAvroType(
        jtype, False, "added", "alertbench.distribution"
    )
    return avro.toString()


def alert_struct(schema: Schema):
    """The survey's alert record rebuilt from flattened columns (see :func:`~.flatten.flatten`)."""
    from pyspark.sql import functions as F

    detection = DETECTION_FIELD.get(schema.survey.survey)
    parts = []
    for name in schema.field_names:
        if name == detection:
            # The detection's fields that repeat a top-level one were kept once.
            sub = [F.col(f"`{g}`") for g in detection_fields(schema)]
            parts.append(F.struct(*sub).alias(name))
        else:
            parts.append(F.col(f"`{name}`"))
    return F.struct(*parts)


def _python_flags(frame, filters: list[Filter]):
    """Add a boolean column per Python filter (evaluated on Arrow batches)."""
    import pyarrow as pa
    from pyspark.sql.types import BooleanType, StructField, StructType

    py = [f for f in filters if f.function is not None]
    if not py:
        return frame
    schema = StructType(
        [*frame.schema.fields, *[StructField(f"_f{i}", BooleanType()) for i in range(len(py))]]
    )

    def flags(batches):
        for batch in batches:
            table = pa.Table.from_batches([batch])
            pdf = table.to_pandas()
            for i, f in enumerate(py):
                try:
                    values = pa.array(f.function(pdf), type=pa.bool_(), from_pandas=True)
                except Exception:
                    values = pa.nulls(table.num_rows, pa.bool_())
                table = table.append_column(f"_f{i}", values)
            yield from table.to_batches()

    return frame.mapInArrow(flags, schema)


def _chosen(frame, filters: list[Filter]):
    """``frame`` with ``_topics``, the topics whose filter each row passes (rows with none dropped).

    Every filter is evaluated in the same pass over the data.
    """
    from pyspark.sql import functions as F

    flagged = _python_flags(frame, filters)
    conds, i = [], 0
    for f in filters:
        if f.function is not None:
            cond, i = F.col(f"_f{i}"), i + 1
        else:
            cond = F.expr(f.sql)
        conds.append(F.when(F.coalesce(cond, F.lit(False)), F.lit(f.topic)))
    return flagged.withColumn("_topics", F.array_compact(F.array(*conds))).filter(
        F.size("_topics") > 0
    )


def selected(frame, filters: list[Filter]):
    """``(topic, alert_id)`` of every alert each filter selects: what the topics must hold."""
    from pyspark.sql import functions as F

    id_col = alert_id_column(frame.columns)
    if id_col is None:
        raise ConfigError(f"no alert id column (one of candid, alertId, diaSourceId) in {frame}")
    return _chosen(frame, filters).select(
        F.explode("_topics").alias("topic"), F.col(id_col).cast("string").alias("alert_id")
    )


def routed(spark, frame, filters: list[Filter], schema: Schema, bodies=None):
    """(Kafka rows with key, value, topic, headers; the distribution schema).

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        Science rows: flattened alert columns and the added ones.
    schema : Schema
        The survey's alert schema (the stream's writer schema).
    bodies : pyspark.sql.DataFrame, optional
        :data:`~.raw2science.ROW_KEY` and :data:`BODY`, the alerts' original
        Avro bodies (in fused mode, straight from the Kafka batch). Without
        it, each alert's body is encoded again from its flattened columns.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import to_avro

    published, tail = distribution_schema(spark, frame, schema)
    added = added_columns(frame.columns, schema)
    chosen = _chosen(frame, filters)
    key = F.col(key_column(frame.columns)).cast("string").cast("binary").alias("key")
    # The send time travels on as a header, so a timing consumer of the
    # distribution topics measures send -> distribution latency.
    sent_us = (
        F.unix_micros("sent_time").cast("string") if "sent_time" in frame.columns else F.lit("")
    )
    # The alert id travels too, so the consumer can check every alert arrived once.
    id_col = alert_id_column(frame.columns)
    alert_id = F.col(id_col).cast("string") if id_col else F.lit("")
    headers = F.array(
        F.struct(
            F.lit(SENT_HEADER).alias("key"),
            F.coalesce(sent_us, F.lit("")).cast("binary").alias("value"),
        ),
        F.struct(
            F.lit(ALERT_ID_HEADER).alias("key"),
            F.coalesce(alert_id, F.lit("")).cast("binary").alias("value"),
        ),
    )
    tail_bytes = (
        to_avro(F.struct(*[F.col(f"`{c}`") for c in added]), json.dumps(tail))
        if added
        else F.lit(b"")
    )
    if bodies is None:
        body = to_avro(alert_struct(schema), json.dumps(schema.definition))
        rows = chosen.select(
            key,
            F.concat(body, tail_bytes).alias("value"),
            headers.alias("headers"),
            F.col("_topics"),
        )
    else:
        # Only the narrow columns meet the 75 KB bodies, in a broadcast join.
        narrow = chosen.select(
            *ROW_KEY,
            key,
            tail_bytes.alias("_tail"),
            headers.alias("headers"),
            F.col("_topics"),
        )
        rows = bodies.join(F.broadcast(narrow), ROW_KEY).select(
            "key", F.concat(BODY, "_tail").alias("value"), "headers", "_topics"
        )
    return rows.withColumn("topic", F.explode("_topics")).drop("_topics"), published


def key_column(columns: list[str]) -> str:
    """The column whose value keys a distributed alert's message: ``objectId``, else the first."""
    return "objectId" if "objectId" in columns else columns[0]


def send_batch(spark, science, filters: list[Filter], servers: str, schema: Schema, bodies=None):
    """Route a static frame of science alerts to the filters' topics (batch Kafka writer)."""
    rows, _ = routed(spark, science, filters, schema, bodies)
    (
        rows.write.format("kafka")
        .option("kafka.bootstrap.servers", servers)
        .option("kafka.max.request.size", str(10 * 1024 * 1024))
        # The default 16 KB batch holds not even one 75 KB alert: every alert
        # would be a batch of its own, and the Kafka broker would pay per batch.
        .option("kafka.batch.size", str(1024 * 1024))
        .option("kafka.buffer.memory", str(256 * 1024 * 1024))
        .option("kafka.send.buffer.bytes", str(4 * 1024 * 1024))
        .option("kafka.linger.ms", "10")
        .save()
    )


def create_topics(servers: str, filters: list[Filter], *, partitions: int, retention_ms: int):
    """Create every filter's topic up front, with explicit partitions and retention."""
    from alertbench.kafka.admin import create_topic

    for f in filters:
        create_topic(
            servers,
            f.topic,
            partitions=partitions,
            config={"retention.ms": str(retention_ms)},
            exist_ok=True,
        )


def distribute_work(routing, schema: Schema):
    """The work of a distribute task: its share of science files -> filters -> topics.

    The selected alerts' bodies are encoded again from their columns
    (:func:`~alertbench.broker.send.alert_bodies`): a science file does not
    keep the Kafka message it came from.
    """

    def work(share) -> int:
        import pyarrow.parquet as pq

        from alertbench.broker.route import route
        from alertbench.broker.send import TailEncoder, alert_bodies, send

        encoder = TailEncoder(routing.tail)
        rows = 0
        for f in share.files:
            science = pq.read_table(f)
            rows += science.num_rows

            def bodies(chosen, science=science):
                return alert_bodies(science.take(chosen), schema)

            send(routing.servers, route(science, bodies, routing, encoder))
        return rows

    return work


def start(spark, *, routing, schema: Schema, out: Path, trigger: str):
    """Start the distribute query over the science files raw2science committed in ``out/science``.

    One Spark job per micro-batch: each task evaluates the filters on its
    share of the new science files and sends what they select with
    confluent-kafka (:func:`distribute_work`). Delivery is at least once: a
    batch that fails before its commit is sent again.

    Parameters
    ----------
    routing : Routing
        The filters, the published tail schema and the Kafka cluster.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    from alertbench.broker.sink import BatchSink
    from alertbench.broker.source import start_files_query

    sink = BatchSink(out, "distribute")
    return start_files_query(
        spark,
        "distribute",
        distribute_work(routing, schema),
        sink=sink,
        upstream="raw2science",
        output="science",
        outputs=[],
        trigger=trigger,
    )


def publish_schema(out: Path, schema: dict[str, Any], filters: list[Filter]) -> Path:
    """Write the distribution schema where consumers find it: ``schemas/distribution.avsc``."""
    folder = out / "schemas"
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(schema, indent=1) + "\n"
    (folder / "distribution.avsc").write_text(text)
    for f in filters:
        (folder / f"{f.topic}.avsc").write_text(text)
    return folder / "distribution.avsc"
