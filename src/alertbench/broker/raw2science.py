"""raw2science: raw Parquet as a stream -> quality cuts -> science modules -> science Parquet.

Each micro-batch takes the raw files of the stream2raw batches committed
since the last one; each Spark task cuts and enriches its share with
DataFusion and pyarrow (:func:`alertbench.broker.route.science_table`), and
the driver commits the science files exactly once through a
:class:`~alertbench.broker.sink.BatchSink`, like stream2raw.
"""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.science import ScienceModule
from alertbench.broker.sink import BatchSink

# Fink's ZTF cuts: a real-bogus score of at least 0.55 and no bad pixels nearby.
DEFAULT_CUTS = {
    "ztf": "rb >= 0.55 AND nbad = 0",
    "lsst": "reliability >= 0.5 AND NOT pixelFlags_bad",
}


def default_cuts(survey: str) -> str:
    """The quality cuts applied when none are configured."""
    return DEFAULT_CUTS.get(survey, "true")


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
