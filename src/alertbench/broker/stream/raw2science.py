"""raw2science: raw Parquet as a stream -> quality cuts -> science modules -> science Parquet.

Each micro-batch takes the raw files of the stream2raw batches committed
since the last one; each Spark task cuts and enriches its share with
DataFusion and pyarrow (:func:`alertbench.broker.batch.route.science_table`), and
the driver commits the science files exactly once through a
:class:`~alertbench.broker.stream.sink.BatchSink`, like stream2raw.
"""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.batch.science import ScienceModule
from alertbench.broker.stream.sink import BatchSink


def start(spark, *, cuts: str, modules: list[ScienceModule], out: Path, trigger: str):
    """Start the raw2science query over the raw files stream2raw committed in ``out/raw``.

    One Spark job per micro-batch: each task cuts and enriches its share of
    the new raw files with pyarrow and DataFusion
    (:func:`~alertbench.broker.batch.tasks.science_work`),
    and the driver commits the staged science files exactly once.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    from alertbench.broker.batch.tasks import STATS_OUTPUT, science_work
    from alertbench.broker.stream.sink import parquet_codec
    from alertbench.broker.stream.source import start_files_query

    sink = BatchSink(out, "raw2science")
    work = science_work(sink.staging, cuts=cuts, modules=modules, compression=parquet_codec(spark))
    return start_files_query(
        spark,
        "raw2science",
        work,
        sink=sink,
        upstream="stream2raw",
        output="raw",
        outputs=["science", STATS_OUTPUT],
        trigger=trigger,
    )
