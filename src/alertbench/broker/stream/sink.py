"""Exactly-once Parquet output from ``foreachBatch``.

Spark replays a micro-batch whose commit it did not record (a crash between
writing and committing). Each batch is therefore written to a staging folder,
its files are moved into place under names that carry the batch id (a replay
first removes what an interrupted attempt moved), and a commit marker makes
a completed batch a no-op when replayed. Readers, including Spark's file
stream source, only ever see whole files in the final folders.

The output folder must be one filesystem seen by the driver and the
executors (local disk with ``local[*]``, a shared mount on a cluster).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq


class BatchSink:
    """Writes each micro-batch's frames once, whatever Spark replays.

    Parameters
    ----------
    root : Path
        The output root; outputs go to ``root/<name>/``.
    name : str
        Which stage writes (marks and staging are per stage).
    """

    def __init__(self, root: Path, name: str) -> None:
        self.root = root.resolve()
        self.name = name
        self.commits = self.root / "_commits" / name
        self.staging = self.root / "_staging" / name
        self.commits.mkdir(parents=True, exist_ok=True)

    def committed_files(self, out: str, first: int, last: int) -> list[Path]:
        """The files of output ``out`` that batches ``first`` to ``last`` committed, in order.

        Raises
        ------
        FileNotFoundError
            If one of those batches is not committed.
        """
        files: list[Path] = []
        for k in range(first, last + 1):
            text = (self.commits / str(k)).read_text()
            if not text:  # a mark from before marks named their files: find them by name
                files += sorted((self.root / out).rglob(f"b{k:09d}-*.parquet"))
                continue
            files += [self.root / out / f for f in json.loads(text).get(out, [])]
        return files

    def done(self, batch_id: int) -> bool:
        """Whether ``batch_id`` was completely written before."""
        return (self.commits / str(batch_id)).exists()

    def write(self, batch_id: int, outputs: dict[str, tuple[object, list[str]]]) -> dict[str, int]:
        """Write frames ``{output name: (DataFrame, partition columns)}`` for ``batch_id``.

        Returns
        -------
        dict of str to int
            Files moved into each output.
        """
        self.begin(batch_id)
        for out, (frame, partitions) in outputs.items():
            self.stage(batch_id, out, frame, partitions)
        return self.commit(batch_id, list(outputs))

    def begin(self, batch_id: int) -> None:
        """Start staging ``batch_id`` afresh (whatever an earlier attempt left)."""
        shutil.rmtree(self.staging / str(batch_id), ignore_errors=True)

    def staged(self, batch_id: int, out: str) -> Path:
        """The staging folder of output ``out`` of ``batch_id`` (readable until commit)."""
        return self.staging / str(batch_id) / out

    def stage(self, batch_id: int, out: str, frame, partitions: list[str], append: bool = False):
        """Write ``frame`` into the staging folder of output ``out``."""
        writer = frame.write.mode("append" if append else "overwrite")
        if partitions:
            writer = writer.partitionBy(*partitions)
        writer.parquet(str(self.staged(batch_id, out)))

    def commit(
        self, batch_id: int, outputs: list[str], stage: Path | None = None
    ) -> dict[str, int]:
        """Move the staged files of ``outputs`` into place and mark ``batch_id`` done.

        ``stage`` is the staging folder, when the tasks named it themselves
        (by the batch's offsets) rather than by ``batch_id``.
        """
        stage = stage or self.staging / str(batch_id)
        moved = {}
        prefix = f"b{batch_id:09d}-"
        moving = self.commits / f"{batch_id}.moving"
        if moving.exists():
            # An earlier attempt died while moving files: remove what it moved.
            for out in outputs:
                for old in (self.root / out).rglob(f"{prefix}*"):
                    old.unlink()
        moving.touch()
        published: dict[str, list[str]] = {}
        for out in outputs:
            final = self.root / out
            published[out] = []
            for f in sorted((stage / out).rglob("*.parquet")):
                if pq.read_metadata(f).num_rows == 0:
                    continue  # an empty batch's schema-only file: nothing to publish
                dest = final / f.relative_to(stage / out).parent / f"{prefix}{f.name}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                f.replace(dest)
                published[out].append(str(dest.relative_to(final)))
            moved[out] = len(published[out])
        # The mark names the files, so a downstream stage finds a batch's files
        # without listing a folder that grows all night (written whole, then renamed).
        mark = self.commits / str(batch_id)
        written = mark.with_suffix(".tmp")
        written.write_text(json.dumps(published))
        written.replace(mark)
        moving.unlink()
        shutil.rmtree(stage, ignore_errors=True)
        return moved


def parquet_codec(spark) -> str:
    """The session's Parquet codec, in pyarrow's words (Spark says ``uncompressed``)."""
    codec = spark.conf.get("spark.sql.parquet.compression.codec", "none")
    return "none" if codec == "uncompressed" else codec
