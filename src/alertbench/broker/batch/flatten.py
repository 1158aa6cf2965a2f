"""The raw columns of decoded alerts, in the style of Fink's raw data.

The detection record (ZTF ``candidate``, Rubin ``diaSource``) becomes
top-level columns; the alert's other fields (ids, history, cutouts) stay as
they are. Kafka's topic, partition, offset and timestamp, the simulator's
send time and the broker's ingest time are added, and a ``night`` (UTC date
of the observation, ``yyyyMMdd``) to partition by.
:func:`alertbench.broker.batch.raw.raw_table` builds them.
"""

from __future__ import annotations

from alertbench.alerts.schema import Schema

DETECTION_FIELD = {"ztf": "candidate", "lsst": "diaSource"}
#: The column that identifies one alert, by survey schema (first present wins).
ALERT_ID_COLUMNS = ("candid", "alertId", "diaSourceId")
KAFKA_COLUMNS = ["topic", "partition", "offset", "kafka_time", "sent_time", "ingest_time"]


def detection_fields(schema: Schema) -> list[str]:
    """The field names of the survey's detection record (flattened into raw columns), in order."""
    detection = DETECTION_FIELD.get(schema.survey.survey)
    for f in schema.definition["fields"]:
        if f["name"] == detection:
            record = f["type"]
            if isinstance(record, list):  # a nullable record
                record = next(t for t in record if isinstance(t, dict))
            return [g["name"] for g in record["fields"]]
    return []


def alert_columns(schema: Schema) -> list[tuple[str, str]]:
    """``(output column, expression path)`` of every raw alert column, in order.

    Parameters
    ----------
    schema : Schema
        The alerts' writer schema.
    """
    detection = DETECTION_FIELD.get(schema.survey.survey)
    top = schema.field_names
    out = [(name, f"alert.`{name}`") for name in top if name != detection]
    taken = {name for name, _ in out}
    for name in detection_fields(schema):
        # candidate.candid repeats the top-level candid: keep one.
        if name not in taken:
            out.append((name, f"alert.`{detection}`.`{name}`"))
    return out


def alert_id_column(columns: list[str]) -> str | None:
    """The raw column that identifies an alert, or None if the schema has none we know."""
    return next((c for c in ALERT_ID_COLUMNS if c in columns), None)


def observation_jd_source(schema: Schema) -> tuple[str, float] | None:
    """``(column, offset)``: an alert's observation Julian Date is ``column + offset``.

    ZTF gives ``jd``; Rubin a Modified Julian Date. None when the schema has neither.
    """
    names = {name for name, _ in alert_columns(schema)}
    if "jd" in names:
        return "jd", 0.0
    for f in ("midpointMjdTai", "midPointTai"):
        if f in names:
            return f, 2400000.5
    return None
