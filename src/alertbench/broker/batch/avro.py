"""Alert bodies to Arrow tables, in native code: the one module that chooses the Avro decoder.

The decoder is arrow-rs's ``arrow-avro``, through DataFusion's ``read_avro``.
Measured on this project's 2-core machine (``../shared/notes``): about 25,000
ZTF alerts/s per core, cutouts and history included, where fastavro with
``pyarrow.Table.from_pylist`` does about 1,900. It reads object container files,
so the bare bodies of a batch are framed as one container, each body a block of
its own (so a corrupt body spoils only its own block), behind a header built
once per writer schema.

Two things every caller relies on:

* **The name fix.** ZTF's schema declares the record ``ztf.alert.cutout`` once
  and refers to it by that dotted name twice; arrow-avro files a dotted
  declaration under one key and looks references up under another ("Failed to
  resolve ztf.alert.cutout"). The container's schema declares every named type
  as ``"name"`` plus ``"namespace"``, the same schema under the Avro
  specification; the data bytes are untouched.
* **Exactness.** Every decoder is checked field for field against fastavro
  (``tests/unit/test_avro_arrow.py``): one library measured here returned two
  of ZTF's three cutouts as JSON text without a word.

A body with bytes left after its record is refused before decoding, because
arrow-avro spins for ever on a block with bytes left over
(:meth:`ArrowDecoder._framing_error`). A body that does not decode is
found by bisection, so it costs a few extra decodes of the batch, and is
reported with the decoder's reason; every other alert of the batch is decoded.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from alertbench.alerts.schema import OCF_MAGIC, Schema, zigzag

NAMED = ("record", "enum", "fixed")
# At most this many buffers per writev (Linux's IOV_MAX).
_IOV_MAX = 1024


def split_names(definition: Any) -> Any:
    """The schema with every dotted named-type declaration written as name plus namespace.

    ``{"type": "record", "name": "ztf.alert.cutout", ...}`` becomes
    ``{"type": "record", "name": "cutout", "namespace": "ztf.alert", ...}``:
    the same full name under the Avro specification, which arrow-avro's
    resolver finds when the type is referenced by ``"ztf.alert.cutout"``.
    """
    if isinstance(definition, list):
        return [split_names(d) for d in definition]
    if not isinstance(definition, dict):
        return definition
    out = {k: split_names(v) for k, v in definition.items()}
    name = out.get("name")
    if out.get("type") in NAMED and isinstance(name, str) and "." in name:
        out["namespace"], _, out["name"] = name.rpartition(".")
    if isinstance(definition.get("fields"), list):
        out["fields"] = [
            {**f, "type": split_names(f.get("type"))} if isinstance(f, dict) else f
            for f in definition["fields"]
        ]
    return out


@dataclass
class Decoded:
    """A batch of bodies decoded.

    Attributes
    ----------
    table : pyarrow.Table
        One row per decoded body, in the order given; the writer schema's fields.
    rows : list of int
        The index, among the bodies given, of each row of ``table``.
    failed : dict of int to str
        Index of each body that did not decode, and the decoder's reason.
    """

    table: pa.Table
    rows: list[int]
    failed: dict[int, str] = field(default_factory=dict)


class ArrowDecoder:
    """Decode bare Avro bodies written with one schema into Arrow.

    Parameters
    ----------
    schema : Schema
        The writer schema of every body.
    scratch : Path, optional
        Folder for the transient container file (DataFusion reads files);
        default: ``/dev/shm`` where it exists, else the system's temporary folder.
    """

    def __init__(self, schema: Schema, scratch: Path | None = None) -> None:
        import json

        from datafusion import SessionConfig, SessionContext

        self.schema = schema
        self.definition = split_names(schema.definition)
        meta = {"avro.schema": json.dumps(self.definition).encode(), "avro.codec": b"null"}
        self.sync = os.urandom(16)
        self.header = OCF_MAGIC + _metadata(meta) + self.sync
        # One thread: Spark runs one task per core already.
        self._ctx = SessionContext(SessionConfig().with_target_partitions(1))
        if scratch is None:
            shm = Path("/dev/shm")
            scratch = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        # One file per decoder, unlinked at once and read through its descriptor:
        # a worker that Spark kills leaves nothing behind. It is written over
        # in place: in a VM, fresh pages for every batch cost more system time
        # than the decoding (75 ms against 21 ms per 75 MB here).
        folder = Path(scratch or tempfile.gettempdir())
        name = folder / f"alertbench-avro-{os.getpid()}-{id(self):x}.avro"
        self._fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._path = str(name)
        self._named = not Path("/proc/self/fd").is_dir()  # no /proc: keep the name until close
        if not self._named:
            os.unlink(name)
            self._path = f"/proc/self/fd/{self._fd}"
        self._empty: pa.Schema | None = None

    def _parts(self, bodies: list[bytes]) -> list[bytes]:
        parts = [self.header]
        for body in bodies:
            parts += (zigzag(1), zigzag(len(body)), body, self.sync)
        return parts

    def container(self, bodies: list[bytes]) -> bytes:
        """An object container file of ``bodies``, one block each."""
        return b"".join(self._parts(bodies))

    def _read(self, bodies: list[bytes]) -> pa.Table:
        parts = self._parts(bodies)
        os.lseek(self._fd, 0, os.SEEK_SET)
        size = 0
        for k in range(0, len(parts), _IOV_MAX):  # no joined copy of the whole batch
            chunk = parts[k : k + _IOV_MAX]
            written = os.writev(self._fd, chunk)
            want = sum(len(p) for p in chunk)
            if written < want:  # a short write: the rest, plainly
                os.write(self._fd, b"".join(chunk)[written:])
            size += want
        os.ftruncate(self._fd, size)
        return self._ctx.read_avro(self._path, file_extension="").to_arrow_table()

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of decoded rows (read from one empty container, once)."""
        if self._empty is None:
            self._empty = self._read([]).schema
        return self._empty

    def decode(self, bodies: list[bytes]) -> Decoded:
        """Decode ``bodies``; those that fail are named with the reason, the rest decoded.

        Returns
        -------
        Decoded
            The table of the bodies that decoded, their indices and the failures.
        """
        tables: list[pa.Table] = []
        rows: list[int] = []
        failed: dict[int, str] = {}

        def run(indices: list[int]) -> None:
            if not indices:
                return
            try:
                table = self._read([bodies[i] for i in indices])
                if table.num_rows != len(indices):
                    raise ValueError(f"{table.num_rows} rows from {len(indices)} blocks")
            except Exception as exc:  # the decoder's errors are plain Exceptions
                if len(indices) == 1:
                    failed[indices[0]] = f"Avro body does not decode: {exc}"
                    return
                half = len(indices) // 2
                run(indices[:half])
                run(indices[half:])
                return
            tables.append(table)
            rows.extend(indices)

        whole = []
        for i, body in enumerate(bodies):
            reason = self._framing_error(body)
            if reason is None:
                whole.append(i)
            else:
                failed[i] = reason
        run(whole)
        if not tables:
            table = self.arrow_schema().empty_table()
        else:
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        return Decoded(table, rows, failed)

    def _framing_error(self, body: bytes | memoryview) -> str | None:
        """Why ``body`` is not exactly one record, or None when it is.

        arrow-avro 59.3 (DataFusion 55) never returns from a block whose count
        of records it has decoded while bytes are left in it: it spins, and the
        task with it. Every body is measured first (``Schema.datum_length``)
        and only exact ones reach it.
        """
        try:
            n = self.schema.datum_length(body)
        except Exception as exc:  # fastavro's errors are plain Exceptions
            return f"Avro body does not decode: {type(exc).__name__}: {exc}"
        if n < len(body):
            return (
                f"Avro body is longer than its record: {len(body) - n} bytes after byte {n} "
                f"of {len(body)} (padding, or a second record)"
            )
        return None

    def close(self) -> None:
        """Close the scratch file (it has no name: closing frees it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if self._named:
                Path(self._path).unlink(missing_ok=True)


def _metadata(meta: dict[str, bytes]) -> bytes:
    """A container header's metadata: an Avro ``map<bytes>`` (fastavro encodes it)."""
    import io

    import fastavro

    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, {"type": "map", "values": "bytes"}, meta)
    return buf.getvalue()
