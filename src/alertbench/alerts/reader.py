"""Read alert files into alerts, reporting (not raising on) the files that cannot be read.

A file is an Avro object container file with one or many records and its
writer schema embedded (``.avro``, or gzipped ``.avro.gz``), or, when a schema
is given, a bare Avro body. Files that are corrupt, truncated or carry a
schema that is not an alert schema (or not the one given) are reported with
the reason and skipped; ``strict`` makes the first one fatal.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro

from alertbench.alerts.files import find_alert_files, read_packet
from alertbench.alerts.schema import OCF_MAGIC, Schema, SchemaError


class AlertReadError(ValueError):
    """An alert file cannot be used; the message names it and says why."""


@dataclass
class Alert:
    """One alert read from a file.

    Attributes
    ----------
    source : Path
        The file it came from.
    index : int
        Its position in that file.
    schema : Schema
        Its writer schema.
    record : dict
        The decoded alert.
    body : bytes
        Its bare Avro encoding with ``schema``.
    """

    source: Path
    index: int
    schema: Schema
    record: dict[str, Any]
    body: bytes

    @property
    def key(self) -> str:
        """The object the alert is about: ZTF ``objectId``, Rubin ``diaObjectId``."""
        return alert_key(self.record)

    @property
    def observed(self) -> float | None:
        """Observation time as a Julian Date (ZTF ``jd``, Rubin ``midpointMjdTai`` + 2400000.5)."""
        return observation_jd(self.record)


def alert_key(record: dict[str, Any]) -> str:
    """The object id of an alert, the natural Kafka key: all alerts of an object stay in order."""
    if record.get("objectId"):
        return str(record["objectId"])
    obj = record.get("diaObject") or {}
    source = record.get("diaSource") or {}
    for value in (obj.get("diaObjectId"), source.get("diaObjectId"), source.get("ssObjectId")):
        if value:
            return str(value)
    return str(record.get("diaSourceId") or record.get("alertId") or record.get("candid"))


def observation_jd(record: dict[str, Any]) -> float | None:
    """When the alert's detection was observed, as a Julian Date."""
    candidate = record.get("candidate")
    if candidate and candidate.get("jd") is not None:
        return float(candidate["jd"])
    source = record.get("diaSource") or {}
    for f in ("midpointMjdTai", "midPointTai"):
        if source.get(f) is not None:
            return float(source[f]) + 2400000.5
    return None


@dataclass
class ReadReport:
    """What a pass over the sources found.

    Attributes
    ----------
    alerts : int
        Alerts read.
    files : int
        Files read successfully.
    bytes : int
        Their encoded bodies' total size.
    versions : Counter
        Alerts per survey and schema version, e.g. ``{"ztf 4.02": 1084}``.
    problems : list of (Path, str)
        Files skipped and why.
    """

    alerts: int = 0
    files: int = 0
    bytes: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def bytes_per_alert(self) -> float:
        """Mean encoded body size."""
        return self.bytes / self.alerts if self.alerts else 0.0


class AlertReader:
    """Reads alert files, keeping one :class:`Schema` per distinct writer schema.

    Parameters
    ----------
    schema : Schema, optional
        The expected schema: bare bodies are decoded with it, and container
        files written with another schema are skipped as wrong-schema.
    strict : bool
        Raise on the first unusable file instead of reporting and skipping it.
    """

    def __init__(self, schema: Schema | None = None, *, strict: bool = False) -> None:
        self.schema = schema
        self.strict = strict
        self.report = ReadReport()
        self._schemas: dict[str, Schema] = {}

    def _schema_of(self, definition: dict[str, Any]) -> Schema:
        key = repr(sorted(definition.items()) if isinstance(definition, dict) else definition)
        found = self._schemas.get(key)
        if found is None:
            found = self._schemas[key] = Schema(definition)
        return found

    def read_file(self, path: Path) -> list[Alert]:
        """Every alert of one file.

        Raises
        ------
        AlertReadError
            If the file cannot be used (always; see :meth:`read` for skipping).
        """
        try:
            data = read_packet(path)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise AlertReadError(f"{path}: corrupt gzip: {exc}") from exc
        except OSError as exc:
            raise AlertReadError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except Exception as exc:  # gzip / zlib errors on a corrupt .avro.gz
            raise AlertReadError(f"{path}: corrupt gzip: {exc}") from exc
        if data.startswith(OCF_MAGIC):
            return self._read_container(path, data)
        if self.schema is None:
            raise AlertReadError(
                f"{path}: not an Avro container file. If it is a bare Avro body, give its "
                "schema (--schema FILE.avsc)."
            )
        try:
            record = self.schema.decode(data)
        except Exception as exc:
            raise AlertReadError(f"{path}: not a {self.schema.name} body: {exc}") from exc
        return [Alert(path, 0, self.schema, record, data)]

    def _read_container(self, path: Path, data: bytes) -> list[Alert]:
        try:
            reader = fastavro.reader(io.BytesIO(data))
            schema = self._schema_of(reader.writer_schema)
        except SchemaError as exc:
            raise AlertReadError(f"{path}: {exc}") from exc
        except Exception as exc:
            raise AlertReadError(f"{path}: corrupt Avro container header: {exc}") from exc
        if schema.survey.survey == "unknown":
            raise AlertReadError(
                f"{path}: schema {schema.name!r} is not a ZTF or Rubin alert schema "
                "(expected ztf.alert or lsst.vM_m.alert)."
            )
        if self.schema is not None and schema != self.schema:
            raise AlertReadError(
                f"{path}: written with {schema.name} ({schema.survey}), not the expected "
                f"{self.schema.name} ({self.schema.survey})."
            )
        alerts = []
        try:
            for i, record in enumerate(reader):
                alerts.append(Alert(path, i, schema, record, schema.encode(record)))
        except Exception as exc:
            raise AlertReadError(
                f"{path}: truncated or corrupt after {len(alerts)} record(s): {exc}"
            ) from exc
        if not alerts:
            raise AlertReadError(f"{path}: Avro container file with no alert in it.")
        return alerts

    def read(self, files: Iterable[Path]) -> list[Alert]:
        """Read many files; unusable ones are recorded in :attr:`report` and skipped.

        Raises
        ------
        AlertReadError
            On the first unusable file, when ``strict``.
        """
        out: list[Alert] = []
        for path in files:
            try:
                alerts = self.read_file(path)
            except AlertReadError as exc:
                if self.strict:
                    raise
                self.report.problems.append((path, str(exc).removeprefix(f"{path}: ")))
                continue
            self.report.files += 1
            for alert in alerts:
                self.report.alerts += 1
                self.report.bytes += len(alert.body)
                self.report.versions[str(alert.schema.survey)] += 1
            out.extend(alerts)
        return out


def read_alerts(
    sources: Iterable[str | Path], *, schema: Schema | None = None, strict: bool = False
) -> tuple[list[Alert], ReadReport]:
    """Find and read every alert of ``sources`` (files, folders, globs).

    Returns
    -------
    tuple of (list of Alert, ReadReport)
    """
    reader = AlertReader(schema, strict=strict)
    alerts = reader.read(find_alert_files(sources))
    return alerts, reader.report
