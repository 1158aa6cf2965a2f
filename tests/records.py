"""Real alert files read back as records, with the writer schema they carry."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import fastavro

from alertbench.alerts.schema import Schema


def read_records(files: Iterable[Path]) -> tuple[Schema, list[dict]]:
    """Every record of ``files`` (Avro object containers), and the last file's writer schema."""
    records, schema = [], None
    for path in files:
        with Path(path).open("rb") as fh:
            reader = fastavro.reader(fh)
            records += list(reader)
            schema = Schema(reader.writer_schema)
    if schema is None:
        raise ValueError("no alert files given")
    return schema, records
