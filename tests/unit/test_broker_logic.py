"""Broker logic that needs no Spark session: filters, schemas, ztf framing arithmetic, config.

The ``ztf`` wire format is decoded in Spark by slicing each message with plain
arithmetic on its length; here the same arithmetic is checked against real
alert files, with an Avro container header parser written from the Avro
specification, and the sliced body is decoded with fastavro.
"""

from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path
from typing import Any

import fastavro
import pytest
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from alertbench.alerts.schema import Schema
from alertbench.broker.batch.decode import ztf_plan
from alertbench.broker.batch.filters import Filter, added_columns, parse_filters
from alertbench.broker.batch.flatten import alert_columns, observation_jd_source
from alertbench.broker.batch.route import default_cuts
from alertbench.broker.batch.science.builtin import MODULES as RULES_MODULES
from alertbench.broker.batch.science.builtin import sso
from alertbench.broker.batch.science.fink import fink_modules
from alertbench.broker.stream.distribute import _nullable
from alertbench.broker.stream.run import DEFAULT_FILTERS, FINK_FILTERS, broker_output
from alertbench.config import load_settings
from alertbench.errors import ConfigError

SYNC_LEN = 16


@pytest.fixture(scope="module")
def rubin_file(shared_data: Path) -> Path:
    files = sorted((shared_data / "lsst" / "lsstcam-20250906-v9.0").glob("*.avro"))
    assert files
    return files[0]


def _schema_of(path: Path) -> Schema:
    with path.open("rb") as fo:
        return Schema(fastavro.reader(fo).writer_schema)


@pytest.fixture(scope="module")
def ztf_schema(alert_files: list[Path]) -> Schema:
    return _schema_of(alert_files[0])


@pytest.fixture(scope="module")
def rubin_schema(rubin_file: Path) -> Schema:
    return _schema_of(rubin_file)


# --- parse_filters ----------------------------------------------------------------------------


def test_parse_filters_sql_stays_sql() -> None:
    spec = {
        "early-sn": "early_sn_score >= 0.7",
        "sso": "sso_candidate",
        "night": "night = '2023:10'",
        "late": "kafka_time > timestamp'2023-10-18 12:00:00'",
    }
    filters = parse_filters(spec)
    assert filters == [Filter(topic, sql=rule) for topic, rule in spec.items()]
    assert all(f.function is None for f in filters)


def test_parse_filters_imports_python_references() -> None:
    filters = parse_filters(
        {
            "finite": "math:isfinite",
            "spaced": "  math:isnan ",
            "module": "alertbench.broker.batch.science.builtin:sso",
            "bright": "magpsf < 18",
        }
    )
    assert [f.topic for f in filters] == ["finite", "spaced", "module", "bright"]
    assert filters[0].function is math.isfinite
    assert filters[0].sql is None
    assert filters[1].function is math.isnan
    assert filters[2].function is sso
    assert (filters[3].sql, filters[3].function) == ("magpsf < 18", None)


def test_parse_filters_unimportable_names_the_topic() -> None:
    with pytest.raises(ConfigError, match="my-topic") as info:
        parse_filters({"ok": "rb > 0.5", "my-topic": "nosuch.module:f"})
    assert "nosuch.module:f" in str(info.value)
    with pytest.raises(ConfigError, match="other-topic"):
        parse_filters({"other-topic": "math:no_such_function"})


def test_default_filters_parse_and_use_produced_columns(
    ztf_schema: Schema, rubin_schema: Schema
) -> None:
    assert set(DEFAULT_FILTERS["ztf"]) == {"early-sn", "sso", "bright"}
    module_columns = {c for m in RULES_MODULES for c in m.adds}
    sql_words = {"AND", "OR", "NOT", "coalesce", "false", "true", "Unknown"}
    fink = {c for survey in ("ztf", "lsst") for m in fink_modules(survey).values() for c in m.adds}
    for survey, schema, extra, chosen in (
        ("ztf", ztf_schema, module_columns, DEFAULT_FILTERS),
        ("lsst", rubin_schema, set(), DEFAULT_FILTERS),
        ("ztf", ztf_schema, fink, FINK_FILTERS),
        ("lsst", rubin_schema, fink, FINK_FILTERS),
    ):
        filters = parse_filters(chosen[survey])
        assert filters
        assert all(f.sql is not None and f.function is None for f in filters)
        columns = {name for name, _ in alert_columns(schema)} | extra
        for f in filters:
            words = set(re.findall(r"[A-Za-z_]\w*", f.sql)) - sql_words
            assert words <= columns, (survey, f.topic, words - columns)


# --- _nullable --------------------------------------------------------------------------------


def test_nullable_nested_types() -> None:
    inner = StructType(
        [
            StructField("a", LongType(), False),
            StructField("b", ArrayType(DoubleType(), containsNull=False), False),
        ]
    )
    dtype = StructType(
        [
            StructField("id", LongType(), False),
            StructField("hist", ArrayType(inner, containsNull=False), False),
            StructField("meta", MapType(StringType(), inner, valueContainsNull=False), False),
            StructField("name", StringType(), True),
        ]
    )
    before = dtype.json()
    inner_ok = StructType(
        [
            StructField("a", LongType(), True),
            StructField("b", ArrayType(DoubleType(), containsNull=True), True),
        ]
    )
    expected = StructType(
        [
            StructField("id", LongType(), True),
            StructField("hist", ArrayType(inner_ok, containsNull=True), True),
            StructField("meta", MapType(StringType(), inner_ok, valueContainsNull=True), True),
            StructField("name", StringType(), True),
        ]
    )
    got = _nullable(dtype)
    assert got == expected
    assert got.fieldNames() == ["id", "hist", "meta", "name"]
    assert got["meta"].dataType.keyType == StringType()
    assert dtype.json() == before  # the input is not changed
    assert _nullable(LongType()) == LongType()
    assert _nullable(ArrayType(LongType(), False)) == ArrayType(LongType(), True)


# --- ztf_plan and the container arithmetic ----------------------------------------------------


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """An Avro zig-zag varint at ``pos``: (value, position after it)."""
    shift = acc = 0
    while True:
        byte = buf[pos]
        pos += 1
        acc |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (acc >> 1) ^ -(acc & 1), pos


def encode_long(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def container_header_len(message: bytes) -> int:
    """Length of an Avro container header (magic, metadata map, sync) per the Avro spec."""
    assert message[:4] == b"Obj\x01"
    pos = 4
    while True:
        count, pos = read_long(message, pos)
        if count == 0:
            break
        if count < 0:  # a block with its byte size
            _, pos = read_long(message, pos)
            count = -count
        for _ in range(count):
            for _ in range(2):  # key (string) and value (bytes)
                n, pos = read_long(message, pos)
                pos += n
    return pos + SYNC_LEN


def test_ztf_plan_of_a_real_alert(alert_files: list[Path]) -> None:
    message = alert_files[0].read_bytes()
    plan = ztf_plan(message)
    header_len = container_header_len(message)
    assert plan.format == "ztf"
    assert plan.header_len == header_len
    assert plan.header_len == message.find(message[-SYNC_LEN:]) + SYNC_LEN
    assert plan.header_prefix == message[: header_len - SYNC_LEN]
    assert plan.schema.name == "ztf.alert"
    assert plan.schema.survey.survey == "ztf"
    assert plan.schema.survey.version == "4.02"
    with alert_files[0].open("rb") as fo:
        assert plan.schema == Schema(fastavro.reader(fo).writer_schema)


@pytest.mark.parametrize("data", [b"", b"not an avro container", b"Obj\x02" + b"\x00" * 40])
def test_ztf_plan_rejects_non_containers(data: bytes) -> None:
    with pytest.raises(ConfigError, match="not an Avro container"):
        ztf_plan(data)


def test_ztf_plan_rejects_confluent_messages(shared_data: Path) -> None:
    files = sorted((shared_data / "lsst" / "confluent-wire-messages").glob("*.avro"))
    framed = [f.read_bytes() for f in files]
    framed = [m for m in framed if m[:1] == b"\x00"]
    assert framed
    for message in framed:
        with pytest.raises(ConfigError):
            ztf_plan(message)


def _spark_size_lens(length: int, header_len: int) -> list[int]:
    """Every varint length s that the Spark expression's consistency test accepts."""
    return [
        s
        for s in range(1, 6)
        if length - header_len - 17 - s >= 0 and len(encode_long(length - header_len - 17 - s)) == s
    ]


def test_ztf_body_slice_decodes_like_fastavro(alert_files: list[Path]) -> None:
    plan = ztf_plan(alert_files[0].read_bytes())
    chosen = alert_files[:: max(1, len(alert_files) // 12)]
    assert len(chosen) >= 10
    for path in chosen:
        message = path.read_bytes()
        h, length = plan.header_len, len(message)
        # Every message of the stream has the same header but its own sync marker.
        assert container_header_len(message) == h, path.name
        assert message[: h - SYNC_LEN] == plan.header_prefix, path.name
        sync = message[h - SYNC_LEN : h]
        # One block: a count of 1 (zig-zag 0x02), the body size, the body, the sync again.
        assert message[h] == 0x02, path.name
        size, after_size = read_long(message, h + 1)
        s = after_size - (h + 1)
        assert size == length - h - 17 - s, path.name
        assert message[length - SYNC_LEN :] == sync, path.name
        assert _spark_size_lens(length, h) == [s], path.name
        body = message[h + 1 + s : length - SYNC_LEN]
        assert len(body) == size
        decoded = fastavro.schemaless_reader(io.BytesIO(body), plan.schema.parsed, None)
        with path.open("rb") as fo:
            (record,) = list(fastavro.reader(fo))
        assert decoded == record, path.name
        assert decoded["candid"] == int(path.stem)


def test_spark_size_length_is_unique_for_every_body_size() -> None:
    # body_of tries s = 1..5 and relies on exactly one s fitting.
    header_len = 1000
    for size in [0, 1, 63, 64, 65, 8191, 8192, 8193, 1 << 20, (1 << 20) - 1, (1 << 27) + 5]:
        s = len(encode_long(size))
        length = header_len + 1 + s + size + SYNC_LEN
        assert _spark_size_lens(length, header_len) == [s], size


# --- flatten ----------------------------------------------------------------------------------


def _record_fields(schema: Schema, field: str) -> list[str]:
    (entry,) = [f for f in schema.definition["fields"] if f["name"] == field]
    rtype = entry["type"]
    if isinstance(rtype, list):
        (rtype,) = [t for t in rtype if isinstance(t, dict)]
    return [f["name"] for f in rtype["fields"]]


def _check_flat(schema: Schema, detection: str, id_field: str) -> list[tuple[str, str]]:
    columns = alert_columns(schema)
    names = [name for name, _ in columns]
    top = [f["name"] for f in schema.definition["fields"]]
    inner = _record_fields(schema, detection)
    assert id_field in top
    assert id_field in inner
    expected = [(n, f"alert.`{n}`") for n in top if n != detection] + [
        (n, f"alert.`{detection}`.`{n}`") for n in inner if n != id_field
    ]
    assert columns == expected
    assert len(names) == len(set(names))
    assert names.count(id_field) == 1
    assert detection not in names
    assert dict(columns)[id_field] == f"alert.`{id_field}`"
    return columns


def test_alert_columns_ztf(ztf_schema: Schema) -> None:
    assert ztf_schema.survey.version == "4.02"
    columns = dict(_check_flat(ztf_schema, "candidate", "candid"))
    assert columns["jd"] == "alert.`candidate`.`jd`"
    assert columns["prv_candidates"] == "alert.`prv_candidates`"
    assert columns["objectId"] == "alert.`objectId`"
    # ZTF 4.02: 9 top-level fields besides candidate, and candidate's 103 less candid.
    assert len(_record_fields(ztf_schema, "candidate")) == 103
    assert len(columns) == 9 + 102


def test_alert_columns_rubin(rubin_schema: Schema) -> None:
    assert (rubin_schema.survey.survey, rubin_schema.survey.version) == ("lsst", "9.0")
    columns = dict(_check_flat(rubin_schema, "diaSource", "diaSourceId"))
    assert columns["midpointMjdTai"] == "alert.`diaSource`.`midpointMjdTai`"
    assert columns["ra"] == "alert.`diaSource`.`ra`"
    assert columns["diaObject"] == "alert.`diaObject`"


def test_added_columns_are_what_the_broker_adds_to_the_alert(ztf_schema: Schema) -> None:
    flat = [name for name, _ in alert_columns(ztf_schema)]
    kafka = ["topic", "partition", "offset", "kafka_time", "sent_time", "ingest_time"]
    science = ["sso_candidate", "early_sn_score", "science_start", "science_errors"]
    columns = [*flat, *kafka, *science, "night"]
    # In order, without the alert's own fields (candidate's among them), Kafka's
    # coordinates, the partition column or a carried body.
    assert added_columns(columns, ztf_schema) == [
        "kafka_time",
        "sent_time",
        "ingest_time",
        *science,
    ]
    assert added_columns(flat, ztf_schema) == []


def test_observation_jd_source(ztf_schema: Schema, rubin_schema: Schema) -> None:
    assert observation_jd_source(ztf_schema) == ("jd", 0.0)
    assert observation_jd_source(rubin_schema) == ("midpointMjdTai", 2400000.5)


def test_flatten_unknown_survey() -> None:
    schema = Schema(
        {
            "type": "record",
            "name": "other",
            "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}],
        }
    )
    assert alert_columns(schema) == [("a", "alert.`a`"), ("b", "alert.`b`")]
    assert observation_jd_source(schema) is None


# --- raw2science and run ----------------------------------------------------------------------


def test_default_cuts() -> None:
    assert default_cuts("ztf") == "rb >= 0.55 AND nbad = 0"
    assert default_cuts("unknown") == "true"
    assert default_cuts("") == "true"


@pytest.fixture
def clean_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No alertbench.toml or broker settings from the environment leak into the test."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name == "ALERTBENCH_CONFIG" or name.startswith("ALERTBENCH_BROKER"):
            monkeypatch.delenv(name)
    return tmp_path


def _settings(**flags: Any):
    return load_settings(**flags)


def test_broker_output_relative_goes_under_run_dir(clean_config: Path) -> None:
    run_dir = clean_config / "run"
    s = _settings(run_dir=run_dir, broker={"output": "out"})
    assert broker_output(s) == run_dir / "out"
    s = _settings(run_dir=run_dir, broker={"output": "nested/../b"})
    assert broker_output(s) == run_dir / "b"
    assert broker_output(_settings(run_dir=run_dir)) == run_dir / "broker"


def test_broker_output_relative_run_dir_is_resolved(clean_config: Path) -> None:
    s = _settings(run_dir="rel-run", broker={"output": "out"})
    got = broker_output(s)
    assert got.is_absolute()
    assert got == (clean_config / "rel-run" / "out").resolve()


def test_broker_output_absolute(clean_config: Path) -> None:
    elsewhere = clean_config / "elsewhere" / "broker"
    s = _settings(run_dir=clean_config / "run", broker={"output": str(elsewhere)})
    assert broker_output(s) == elsewhere
