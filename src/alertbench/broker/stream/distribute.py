"""distribute: science alerts -> filters -> one Kafka topic per filter, in one pass.

Each micro-batch takes the science files of the raw2science batches
committed since the last one; each Spark task evaluates every filter on its
share in one pass and sends what they select with confluent-kafka
(:mod:`alertbench.broker.batch.route`, :mod:`alertbench.broker.batch.send`). Each alert
goes out once per topic as the survey's own record followed by the columns
the broker added, with a schema published as an ``.avsc`` beside the outputs
for consumers (see :func:`distribution_schema`); any reader of the survey's
schema reads it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from alertbench.alerts.schema import Schema
from alertbench.broker.batch.filters import Filter, added_columns
from alertbench.kafka.security import Connection


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


def distribution_schema(spark, science, schema: Schema) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Avro schema of distributed alerts, and the schema of the broker's part of it.

    A distributed alert is the survey's own record followed by the columns
    the broker added (Kafka and processing times, the science modules'
    outputs). Avro encodes a record as its fields one after the other, so
    its bytes are the alert's original body followed by the encoding of the
    added columns, and any reader of the survey's schema decodes it through
    schema resolution. The added fields are all nullable. Spark's Avro
    schema converter spells the Avro types (timestamps as ``timestamp-micros``).

    Parameters
    ----------
    science : pyarrow.Schema
        The science rows' schema (:func:`alertbench.broker.batch.route.science_schema`).
    schema : Schema
        The survey's alert schema.

    Returns
    -------
    tuple of dict
        (the published schema, the record schema of the added columns).
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    added = pa.schema([science.field(c) for c in added_columns(science.names, schema)])
    struct = _nullable(from_arrow_schema(added))
    tail = json.loads(_avro_schema_text(spark, struct.json()))
    fields = [*schema.definition["fields"], *tail["fields"]]
    return {**schema.definition, "fields": fields}, tail


@functools.lru_cache(maxsize=16)
def _avro_schema_text(spark, struct_json: str) -> str:
    # Every query of a run has the same columns: convert once.
    jtype = spark._jsparkSession.parseDataType(struct_json)
    avro = spark._jvm.org.apache.spark.sql.avro.SchemaConverters.toAvroType(
        jtype, False, "added", "alertbench.distribution"
    )
    return avro.toString()


def create_topics(
    servers: str | Connection, filters: list[Filter], *, partitions: int, retention_ms: int
):
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


def start(spark, *, routing, schema: Schema, out: Path, trigger: str):
    """Start the distribute query over the science files raw2science committed in ``out/science``.

    One Spark job per micro-batch: each task evaluates the filters on its
    share of the new science files and sends what they select with
    confluent-kafka (:func:`~alertbench.broker.batch.tasks.distribute_work`).
    Delivery is at least once: a batch that fails before its commit is sent
    again.

    Parameters
    ----------
    routing : Routing
        The filters, the published tail schema and the Kafka cluster.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    from alertbench.broker.batch.tasks import distribute_work
    from alertbench.broker.stream.sink import BatchSink
    from alertbench.broker.stream.source import start_files_query

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
