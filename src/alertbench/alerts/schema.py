"""One ``Schema`` object per alert schema: it encodes, decodes, validates and frames.

Modelled on ``lsst/alert_packet``: the schema is data (an ``.avsc`` or the
writer schema embedded in an alert file), and one object does every Avro
operation with it, so callers never juggle parsed and unparsed forms.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import fastavro.validation

OCF_MAGIC = b"Obj\x01"
_LSST_NAME = re.compile(r"^lsst\.v(\d+)_(\d+)\.alert$")


class SchemaError(ValueError):
    """A schema cannot be read, or a record does not fit it."""


@dataclass(frozen=True)
class SurveyVersion:
    """Which survey an alert schema belongs to, and its version.

    Attributes
    ----------
    survey : str
        ``ztf``, ``lsst`` or ``unknown``.
    version : str
        E.g. ``4.02`` (ZTF) or ``9.0`` (Rubin); empty when unknown.
    """

    survey: str
    version: str

    def __str__(self) -> str:
        return f"{self.survey} {self.version}".strip()


def detect_survey(definition: dict[str, Any]) -> SurveyVersion:
    """Tell the survey and version from a schema's own name and metadata.

    ZTF schemas are named ``ztf.alert`` and carry ``"version": "4.02"``; Rubin
    schemas are named ``lsst.vM_m.alert``.
    """
    name = str(definition.get("name", ""))
    namespace = definition.get("namespace")
    full = f"{namespace}.{name}" if namespace and "." not in name else name
    match = _LSST_NAME.match(full)
    if match:
        return SurveyVersion("lsst", f"{match[1]}.{match[2]}")
    if full == "ztf.alert":
        return SurveyVersion("ztf", str(definition.get("version", "")))
    return SurveyVersion("unknown", "")


def zigzag(n: int) -> bytes:
    """Avro's variable-length zig-zag encoding of a long."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class Schema:
    """An Avro alert schema.

    Parameters
    ----------
    definition : dict
        The schema as JSON data (named types inline, as embedded in alert files).

    Attributes
    ----------
    definition : dict
        As given.
    parsed : dict
        fastavro's parsed form, reused for every encode and decode.
    survey : SurveyVersion
        Detected from the schema.
    fingerprint : str
        SHA-256 of the Parsing Canonical Form: equal for equal schemas.
    """

    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition = definition
        try:
            self.parsed = fastavro.parse_schema(definition)
        except Exception as exc:
            raise SchemaError(f"not a valid Avro schema: {exc}") from exc
        self.survey = detect_survey(definition)
        canonical = fastavro.schema.to_parsing_canonical_form(self.parsed)
        self.fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
        self._header: bytes | None = None
        self._skipper: dict[str, Any] | None = None
        self._sync = b""

    def __repr__(self) -> str:
        return f"Schema({self.definition.get('name')!r}, {self.survey})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    @property
    def name(self) -> str:
        """The schema's full name, e.g. ``ztf.alert`` (namespace included)."""
        name = str(self.definition.get("name"))
        namespace = self.definition.get("namespace")
        return f"{namespace}.{name}" if namespace and "." not in name else name

    @property
    def field_names(self) -> list[str]:
        """Top-level field names, in order."""
        return [f["name"] for f in self.definition.get("fields", [])]

    @classmethod
    def from_avsc(cls, path: Path) -> Schema:
        """Load a self-contained ``.avsc`` file (e.g. ``ztf.alert.full.avsc``).

        Raises
        ------
        SchemaError
            Naming the file.
        """
        try:
            return cls(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise SchemaError(f"cannot read schema {path}: {exc}") from exc

    def encode(self, record: dict[str, Any]) -> bytes:
        """The bare Avro body of ``record`` (no schema, no framing)."""
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.parsed, record)
        return buf.getvalue()

    def decode(self, body: bytes) -> dict[str, Any]:
        """Read a bare Avro body written with this schema."""
        return fastavro.schemaless_reader(io.BytesIO(body), self.parsed, return_record_name=False)

    def datum_length(self, body: bytes | memoryview) -> int:
        """Bytes the record at the start of ``body`` takes: its fields read and skipped.

        fastavro reads with a reader schema of no fields, so every field is
        skipped in its compiled code without building Python values (about half
        the cost of a decode). A body longer than this has bytes after its
        record. One that was cut raises, or, when it ends inside a bytes or
        string value (which fastavro skips by reading what is there), measures
        its own length: the decoder then refuses it.

        Raises
        ------
        Exception
            fastavro's error, when the body ends inside a value it reads or holds
            something the schema cannot (an unknown union branch, say).
        """
        if self._skipper is None:
            # The same full name: fastavro resolves a writer record only against its own name.
            name = self.name
            self._skipper = fastavro.parse_schema({"type": "record", "name": name, "fields": []})
        buf = io.BytesIO(body)
        fastavro.schemaless_reader(buf, self.parsed, self._skipper)
        return buf.tell()

    def validate(self, record: dict[str, Any]) -> None:
        """Check ``record`` against the schema.

        Raises
        ------
        SchemaError
            Naming the fields that do not fit.
        """
        try:
            fastavro.validation.validate(record, self.parsed, raise_errors=True)
        except fastavro.validation.ValidationError as exc:
            raise SchemaError(f"record does not fit {self.name}: {exc}") from exc

    def container(self, body: bytes) -> bytes:
        """Frame one encoded record as an Avro object container file.

        That is what ZTF publishes per Kafka message: the writer schema in the
        header, then one block. The header is built once by fastavro and
        reused, so framing costs a concatenation, not a schema serialisation.
        """
        if self._header is None:
            # Derived from the schema, not random: the same alert framed twice
            # (by a producer and by a test, say) gives the same bytes.
            self._sync = hashlib.sha256(b"alertbench-sync:" + self.fingerprint.encode()).digest()[
                :16
            ]
            buf = io.BytesIO()
            fastavro.writer(buf, self.parsed, [], sync_marker=self._sync)
            self._header = buf.getvalue()
        return b"".join((self._header, zigzag(1), zigzag(len(body)), body, self._sync))

    def tail_encoder(self, tail_fields: list[str]) -> TailEncoder:
        """An encoder that reuses the bytes of the record's last fields (see TailEncoder)."""
        return TailEncoder(self, tail_fields)


class TailEncoder:
    """Encode records whose last fields repeat, reusing those fields' bytes.

    An Avro record is the concatenation of its fields' encodings, so a record
    whose trailing fields (the image cutouts: most of an alert's bytes) are
    shared with a template is the encoding of its leading fields followed by
    the template's trailing bytes.

    Parameters
    ----------
    schema : Schema
        The full schema.
    tail_fields : list of str
        Fields that must be the last ones of the schema, in order.
    """

    def __init__(self, schema: Schema, tail_fields: list[str]) -> None:
        names = schema.field_names
        k = len(tail_fields)
        if k == 0 or names[-k:] != tail_fields:
            raise SchemaError(
                f"{tail_fields} are not the last fields of {schema.name} ({names[-k:]})"
            )
        self.schema = schema
        self.split = len(names) - k
        fields = schema.definition["fields"]
        # Parse the head and the tail together with the full schema's named types.
        named: dict[str, Any] = {}
        full = fastavro.parse_schema(schema.definition, named_schemas=named)
        del full
        self._head = fastavro.parse_schema(
            {**schema.definition, "name": f"{schema.name}_head", "fields": fields[: self.split]},
            named_schemas=dict(named),
        )
        self._tail = fastavro.parse_schema(
            {**schema.definition, "name": f"{schema.name}_tail", "fields": fields[self.split :]},
            named_schemas=dict(named),
        )
        self.tail_names = tail_fields

    def encode_tail(self, record: dict[str, Any]) -> bytes:
        """The bytes of ``record``'s trailing fields, to reuse for its clones."""
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self._tail, {n: record[n] for n in self.tail_names})
        return buf.getvalue()

    def encode(self, record: dict[str, Any], tail: bytes) -> bytes:
        """The body of ``record`` whose trailing fields are encoded as ``tail``."""
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self._head, record)
        return buf.getvalue() + tail
