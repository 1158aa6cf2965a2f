"""raw2science: raw Parquet as a stream -> quality cuts -> science modules -> science Parquet.

Each micro-batch of new raw files is written exactly once through a
:class:`~alertbench.broker.sink.BatchSink`, like stream2raw.
"""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.science import ScienceModule, output_schema, run_modules, usable
from alertbench.broker.sink import BatchSink

# Fink's ZTF cuts: a real-bogus score of at least 0.55 and no bad pixels nearby.
DEFAULT_CUTS = {
    "ztf": "rb >= 0.55 AND nbad = 0",
    "lsst": "reliability >= 0.5 AND NOT pixelFlags_bad",
}


def default_cuts(survey: str) -> str:
    """The quality cuts applied when none are configured."""
    return DEFAULT_CUTS.get(survey, "true")


#: Identifies a row within a batch: where its alert was in Kafka.
ROW_KEY = ["topic", "partition", "offset"]


def science_columns(raw, cuts: str, modules: list[ScienceModule]):
    """What the modules add to the rows of a static frame that pass the cuts; (frame, notes).

    The frame holds :data:`ROW_KEY` and the added columns, one row per alert
    that passes. Only the columns the modules read go through Python:
    sending whole 75 KB alerts (cutouts, history) through Arrow to Python
    and back cost more than the modules themselves.
    """
    from pyspark.sql import functions as F

    kept = raw.filter(F.expr(cuts))
    chosen, notes = usable(modules, kept.columns)
    reads = [c for c in dict.fromkeys(c for m in chosen for c in m.reads) if c in kept.columns]
    narrow = kept.select(*ROW_KEY, *reads)
    schema = output_schema(narrow.schema, chosen)
    added = narrow.mapInArrow(lambda batches: run_modules(chosen, batches), schema).drop(*reads)
    return added, notes


def with_science(raw, added):
    """The rows of ``raw`` that ``added`` has (those that passed the cuts), with its columns.

    Raw columns come in their order, then the added ones, and the partition
    column last, where Spark's file source puts it on read.
    """
    from pyspark.sql import functions as F

    science = raw.join(F.broadcast(added), ROW_KEY)
    extra = [c for c in added.columns if c not in ROW_KEY]
    ordered = [c for c in raw.columns if c != "night"] + extra
    return science.select(*ordered, *(["night"] if "night" in raw.columns else []))


def science_frame(raw, cuts: str, modules: list[ScienceModule]):
    """Cut and enrich a static raw frame; returns (frame, notes).

    The modules' results are joined back (broadcast) onto the full rows.
    """
    added, notes = science_columns(raw, cuts, modules)
    return with_science(raw, added), notes


def science_work(staging: Path, *, cuts: str, modules: list[ScienceModule], compression: str):
    """The work of a raw2science task: its share of raw files -> cuts and modules -> science.

    Each raw file is one Arrow batch of a stream2raw task; its science rows
    go into the micro-batch's staging folder under the same name, by night.
    """

    def work(share) -> int:
        from alertbench.broker.raw import read_partitioned, write_partitioned
        from alertbench.broker.route import science_table

        rows = 0
        for f in share.files:
            raw = read_partitioned(f)
            rows += raw.num_rows
            science, _ = science_table(raw, cuts, modules)
            if science is not None:
                write_partitioned(
                    science, staging / share.staging / "science", Path(f).name, compression
                )
        return rows

    return work


def start(spark, *, cuts: str, modules: list[ScienceModule], out: Path, trigger: str):
    """Start the raw2science query over the raw files stream2raw committed in ``out/raw``.

    One Spark job per micro-batch: each task cuts and enriches its share of
    the new raw files with pyarrow and DataFusion (:func:`science_work`),
    and the driver commits the staged science files exactly once.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    from alertbench.broker.raw import parquet_codec
    from alertbench.broker.source import start_files_query

    sink = BatchSink(out, "raw2science")
    work = science_work(sink.staging, cuts=cuts, modules=modules, compression=parquet_codec(spark))
    return start_files_query(
        spark,
        "raw2science",
        work,
        sink=sink,
        upstream="stream2raw",
        output="raw",
        outputs=["science"],
        trigger=trigger,
    )
