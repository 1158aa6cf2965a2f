"""Cut, enrich and route a batch of alerts to the distribution topics, in the task holding it.

The quality cuts and every SQL filter are evaluated with DataFusion
(:mod:`alertbench.broker.batch.sql`), each filter once over the batch; Python
filters get the alerts' flat columns as pandas. Each alert goes out once
per topic whose filter it passes, as its original body followed by the
broker's columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from alertbench.broker.batch.filters import Filter, key_column
from alertbench.broker.batch.science import ScienceModule, ScienceStats
from alertbench.kafka.security import Connection

# Fink's ZTF cuts: a real-bogus score of at least 0.55 and no bad pixels nearby.
DEFAULT_CUTS = {
    "ztf": "rb >= 0.55 AND nbad = 0",
    "lsst": "reliability >= 0.5 AND NOT pixelFlags_bad",
}


def default_cuts(survey: str) -> str:
    """The quality cuts applied when none are configured."""
    return DEFAULT_CUTS.get(survey, "true")


@dataclass
class Routing:
    """What a native fused task needs to distribute: the filters and the published tail schema.

    Attributes
    ----------
    filters : list of Filter
        SQL or Python filters, one topic each.
    tail : dict
        The Avro record schema of the broker's columns, as published.
    servers : str or Connection
        The Kafka cluster of the distribution topics.
    schema_key : bytes or None
        The published schema as JSON, put in every message's key as Fink does
        (its client decodes the value with it); ``None``: the alert's id.
    """

    filters: list[Filter]
    tail: dict
    servers: str | Connection
    schema_key: bytes | None = None


_PREDICATES: list = []


def predicates():
    """One DataFusion predicate engine per Python worker (Spark reuses its workers)."""
    from alertbench.broker.batch.sql import Predicates

    if not _PREDICATES:
        _PREDICATES.append(Predicates())
    return _PREDICATES[0]


def science_schema(raw, modules: list[ScienceModule]):
    """The Arrow schema of :func:`science_table`'s rows, given the raw rows' schema."""
    import pyarrow as pa

    from alertbench.broker.batch.science import output_schema

    night = raw.field("night")
    enriched = output_schema(raw.remove(raw.get_field_index("night")), modules)
    return pa.schema([*enriched, night])


def science_table(raw, cuts: str, modules: list[ScienceModule], stats: ScienceStats | None = None):
    """The raw rows that pass ``cuts``, with every module's columns; and which rows they are.

    Columns: the raw ones but ``night``, the modules', their times and
    errors, then ``night`` (the order of the JVM path's science Parquet).
    ``stats``, when given, receives each module's cost.
    """
    import numpy as np
    import pyarrow as pa

    from alertbench.broker.batch.science import run_modules

    (mask,) = predicates().masks(raw, [cuts])
    kept_rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    kept = raw.take(pa.array(kept_rows, pa.int64()))
    if not kept.num_rows:
        return None, kept_rows
    night = kept["night"]
    enriched = pa.Table.from_batches(
        list(run_modules(modules, iter(kept.drop_columns(["night"]).to_batches()), stats))
    )
    return enriched.append_column("night", night), kept_rows


def route(science, bodies, routing: Routing, encoder) -> list[tuple]:
    """``(topic, key, value, headers)`` of every alert each filter selects.

    ``bodies(rows)`` gives the Avro bodies of the science rows at positions
    ``rows`` (those some filter selects), in order.
    """
    import pyarrow as pa

    from alertbench.broker.batch.flatten import alert_id_column
    from alertbench.broker.batch.send import headers
    from alertbench.broker.batch.sql import flat_columns

    sql = [f for f in routing.filters if f.function is None]
    masks = dict(
        zip((f.topic for f in sql), predicates().masks(science, [f.sql for f in sql]), strict=True)
    )
    py = [f for f in routing.filters if f.function is not None]
    if py:
        frame = science.select(flat_columns(science.schema)).to_pandas()
        for f in py:
            try:
                masks[f.topic] = pa.array(f.function(frame), pa.bool_(), from_pandas=True)
            except Exception:  # a failing Python filter selects nothing; the stream goes on
                masks[f.topic] = pa.nulls(science.num_rows, pa.bool_())
    passes = {t: m.fill_null(False).to_numpy(zero_copy_only=False) for t, m in masks.items()}
    chosen = [i for i in range(science.num_rows) if any(p[i] for p in passes.values())]
    if not chosen:
        return []
    rows = science.take(pa.array(chosen, pa.int64()))
    chosen_bodies = bodies(chosen)
    tails = encoder.encode(rows.select(encoder.fields).to_pylist())
    if routing.schema_key is not None:
        keys = [routing.schema_key] * len(chosen)
    else:
        keys = [
            None if k is None else str(k).encode()
            for k in rows[key_column(rows.column_names)].to_pylist()
        ]
    id_col = alert_id_column(rows.column_names)
    ids = rows[id_col].to_pylist() if id_col else [None] * len(chosen)
    sent = (
        rows["sent_time"].cast(pa.int64()).to_pylist()
        if "sent_time" in rows.column_names
        else [None] * len(chosen)
    )
    messages = []
    for j, i in enumerate(chosen):
        value = b"".join((chosen_bodies[j], tails[j]))  # a body may be a view of the Arrow batch
        hdrs = headers(sent[j], ids[j])
        messages += [(t, keys[j], value, hdrs) for t, p in passes.items() if p[i]]
    return messages
