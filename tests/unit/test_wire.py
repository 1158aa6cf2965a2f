"""Kafka wire formats of alerts: ZTF containers, schemaless bodies, Confluent framing."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest

from alertbench.alerts.schema import OCF_MAGIC, Schema, SchemaError
from alertbench.alerts.wire import (
    ConfluentFormat,
    SchemaDirectory,
    SchemalessFormat,
    WireError,
    ZtfFormat,
    make_format,
    schema_source,
)

# The real Rubin Kafka payloads: file -> (schema id, alert id field, its value).
CONFLUENT_MESSAGES = {
    "7912941781254298.avro": (900, "diaSourceId", 7912941781254298),
    "alerce_v7.4_message_0.avro": (704, "alertId", 396895243468944),
    "alerce_v7.4_message_1.avro": (704, "alertId", 396895612567600),
    "alerce_v7.4_message_2.avro": (704, "alertId", 396950608281641),
    "alerce_v7.4_message_3.avro": (704, "alertId", 396950608281654),
    "alerce_v7.4_message_4.avro": (704, "alertId", 396841556377648),
}
OTHER_MESSAGES = {"25409136044802067.avro": 701, "3527242430321524769.avro": 703}
NAME_OF_ID = {900: "lsst.v9_0.alert", 704: "lsst.v7_4.alert"}


@pytest.fixture(scope="session")
def messages(shared_data: Path) -> Path:
    return shared_data / "lsst" / "confluent-wire-messages"


def _read(path: Path) -> tuple[Schema, dict[str, Any], bytes]:
    data = path.read_bytes()
    reader = fastavro.reader(io.BytesIO(data))
    (record,) = list(reader)
    return Schema(reader.writer_schema), record, data


@pytest.fixture(scope="session")
def ztf(shared_data: Path) -> tuple[Schema, dict[str, Any], bytes]:
    return _read(shared_data / "ztf" / "night-20231018-v4.02" / "2481114531315015022.avro")


@pytest.fixture(scope="session")
def rubin(shared_data: Path) -> tuple[Schema, dict[str, Any], bytes]:
    return _read(shared_data / "lsst" / "lsstcam-20250906-v9.0" / "169298432598474793.avro")


@pytest.fixture
def registry(tmp_path: Path, shared_schemas: Path) -> Path:
    """A folder of <id>.avsc files: 900 = lsst v9.0, 704 = lsst v7.4."""
    folder = tmp_path / "ids"
    folder.mkdir()
    shutil.copy(shared_schemas / "lsst" / "v9.0" / "lsst.v9_0.alert.full.avsc", folder / "900.avsc")
    shutil.copy(shared_schemas / "lsst" / "v7.4" / "lsst.v7_4.alert.full.avsc", folder / "704.avsc")
    # Not named by an id: ignored.
    shutil.copy(shared_schemas / "ztf" / "v4.02" / "ztf.alert.full.avsc", folder / "ztf.avsc")
    return folder


# --- ztf -----------------------------------------------------------------------------------


def test_ztf_frame_decode_round_trip(shared_data: Path) -> None:
    fmt = ZtfFormat()
    files = sorted((shared_data / "ztf" / "night-20231018-v4.02").glob("*.avro"))[:3]
    schemas = []
    for path in files:
        schema, record, _ = _read(path)
        message = fmt.frame(schema.encode(record), schema)
        assert message.startswith(OCF_MAGIC)
        decoded, decoded_schema = fmt.decode(message)
        assert decoded == record
        assert decoded["candid"] == int(path.name.removesuffix(".avro"))
        assert decoded_schema == schema
        assert str(decoded_schema.survey) == "ztf 4.02"
        schemas.append(decoded_schema)
    # One Schema object per distinct writer schema.
    assert schemas[0] is schemas[1] is schemas[2]


def test_ztf_decodes_real_files_as_published(shared_data: Path) -> None:
    fixtures = sorted((shared_data / "ztf" / "fixtures-by-version").glob("*.avro"))
    fmt = ZtfFormat()
    for path in fixtures:
        schema, record, data = _read(path)
        decoded, decoded_schema = fmt.decode(data)
        assert decoded == record
        assert decoded_schema.survey == schema.survey
    assert fmt.name == "ztf"


@pytest.mark.parametrize("message", [b"", b"hello", b"Obj", b"\x00\x00\x00\x03\x84" + b"\x00" * 20])
def test_ztf_decode_of_non_container_bytes(message: bytes) -> None:
    with pytest.raises(WireError, match="not an Avro container file"):
        ZtfFormat().decode(message)


def test_ztf_decode_of_a_bare_body(ztf: tuple[Schema, dict[str, Any], bytes]) -> None:
    schema, record, _ = ztf
    with pytest.raises(WireError, match="not an Avro container file"):
        ZtfFormat().decode(schema.encode(record))


@pytest.mark.parametrize(
    ("keep", "where"),
    [
        (4, "after the magic"),
        (2_000, "in the header"),
        (37_910, "in the block (half the file)"),
        (-100, "in the last cutout"),
        (-17, "last byte of the body"),
        (-16, "the final sync marker missing"),
        (-1, "last byte of the sync marker"),
    ],
)
def test_ztf_decode_of_a_truncated_container(
    ztf: tuple[Schema, dict[str, Any], bytes], keep: int, where: str
) -> None:
    _, _, data = ztf
    truncated = data[:keep]
    assert len(truncated) < len(data), where
    with pytest.raises(WireError, match="corrupt Avro container file"):
        ZtfFormat().decode(truncated)


def test_ztf_decode_of_a_container_without_record(
    ztf: tuple[Schema, dict[str, Any], bytes],
) -> None:
    schema, _, _ = ztf
    buf = io.BytesIO()
    fastavro.writer(buf, schema.parsed, [])
    with pytest.raises(WireError, match="Avro container file with no record"):
        ZtfFormat().decode(buf.getvalue())


# --- schemaless ----------------------------------------------------------------------------


def test_schemaless_round_trip(
    ztf: tuple[Schema, dict[str, Any], bytes], rubin: tuple[Schema, dict[str, Any], bytes]
) -> None:
    for schema, record, _ in (ztf, rubin):
        fmt = SchemalessFormat(schema)
        body = schema.encode(record)
        assert fmt.frame(body, schema) == body
        decoded, decoded_schema = fmt.decode(body)
        assert decoded == record
        assert decoded_schema is schema


def test_schemaless_frame_with_another_schema(
    ztf: tuple[Schema, dict[str, Any], bytes], rubin: tuple[Schema, dict[str, Any], bytes]
) -> None:
    ztf_schema, _, _ = ztf
    rubin_schema, record, _ = rubin
    fmt = SchemalessFormat(ztf_schema)
    with pytest.raises(WireError) as caught:
        fmt.frame(rubin_schema.encode(record), rubin_schema)
    assert str(caught.value) == (
        "schemaless messages all share one schema (ztf.alert); "
        "this alert has lsst.v9_0.alert (lsst 9.0)"
    )


def test_schemaless_frame_accepts_an_equal_schema_object(
    rubin: tuple[Schema, dict[str, Any], bytes], shared_schemas: Path
) -> None:
    from_file, record, _ = rubin
    from_avsc = Schema.from_avsc(shared_schemas / "lsst" / "v9.0" / "lsst.v9_0.alert.full.avsc")
    body = from_file.encode(record)
    assert SchemalessFormat(from_avsc).frame(body, from_file) == body


def test_schemaless_decode_of_garbage(ztf: tuple[Schema, dict[str, Any], bytes]) -> None:
    schema, _, _ = ztf
    with pytest.raises(WireError, match=r"^not a ztf\.alert body: "):
        SchemalessFormat(schema).decode(b"")


# --- confluent -----------------------------------------------------------------------------


def test_confluent_decodes_real_rubin_messages(registry: Path, messages: Path) -> None:
    fmt = ConfluentFormat(SchemaDirectory(registry))
    for name, (schema_id, id_field, alert_id) in CONFLUENT_MESSAGES.items():
        message = (messages / name).read_bytes()
        assert message[:5] == b"\x00" + schema_id.to_bytes(4, "big"), name
        record, schema = fmt.decode(message)
        assert isinstance(record[id_field], int), name
        assert record[id_field] == alert_id, name
        assert schema.name == NAME_OF_ID[schema_id], name
        assert schema is fmt.source.schema(schema_id)
        # Records are compared through their encoding: Rubin alerts hold NaNs (NaN != NaN).
        assert schema.encode(record) == message[5:]


def test_confluent_reframing_a_real_message_gives_its_exact_bytes(
    registry: Path, messages: Path
) -> None:
    """Decode, re-encode, re-frame: byte for byte the message Rubin sent.

    True because Avro's binary encoding is canonical for a given schema (no padding,
    minimal varints, fields in order) and the id prefix depends on the schema alone.
    """
    fmt = ConfluentFormat(SchemaDirectory(registry))
    for name in CONFLUENT_MESSAGES:
        message = (messages / name).read_bytes()
        record, schema = fmt.decode(message)
        assert fmt.frame(schema.encode(record), schema) == message, name
    message = (messages / "7912941781254298.avro").read_bytes()
    assert len(message) == 139_056


def test_confluent_frame_of_a_rubin_file_record(
    registry: Path, rubin: tuple[Schema, dict[str, Any], bytes]
) -> None:
    schema, record, _ = rubin  # the writer schema of a file, equal to 900.avsc
    fmt = ConfluentFormat(SchemaDirectory(registry))
    body = schema.encode(record)
    message = fmt.frame(body, schema)
    assert message == b"\x00" + (900).to_bytes(4, "big") + body
    assert fmt.prefix(schema) == b"\x00\x00\x00\x03\x84"
    decoded, decoded_schema = fmt.decode(message)
    assert decoded == record
    assert decoded_schema == schema
    assert decoded_schema.name == "lsst.v9_0.alert"


def test_confluent_decode_of_an_unknown_id(registry: Path, messages: Path) -> None:
    fmt = ConfluentFormat(SchemaDirectory(registry))
    for name, schema_id in OTHER_MESSAGES.items():
        with pytest.raises(WireError) as caught:
            fmt.decode((messages / name).read_bytes())
        assert str(caught.value) == (
            f"schema id {schema_id} is not in {registry} (ids there: 704, 900)"
        )


def test_confluent_frame_of_a_schema_without_id(
    registry: Path, ztf: tuple[Schema, dict[str, Any], bytes]
) -> None:
    schema, record, _ = ztf
    fmt = ConfluentFormat(SchemaDirectory(registry))
    with pytest.raises(WireError, match=r"ztf\.alert \(ztf 4\.02\) is in none of the <id>\.avsc"):
        fmt.frame(schema.encode(record), schema)


@pytest.mark.parametrize("message", [b"", b"\x00\x00\x00", b"\x01\x00\x00\x03\x84abc"])
def test_confluent_decode_of_unframed_bytes(registry: Path, message: bytes) -> None:
    fmt = ConfluentFormat(SchemaDirectory(registry))
    with pytest.raises(WireError, match="not Confluent-framed"):
        fmt.decode(message)


def test_confluent_decode_of_a_truncated_body(registry: Path, messages: Path) -> None:
    message = (messages / "7912941781254298.avro").read_bytes()
    with pytest.raises(WireError, match=r"body does not decode with schema lsst\.v9_0\.alert"):
        ConfluentFormat(SchemaDirectory(registry)).decode(message[:1000])


def test_schema_directory_of_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no schemas here")
    with pytest.raises(SchemaError, match=r"no <id>\.avsc files in .*e\.g\. 900\.avsc"):
        SchemaDirectory(tmp_path)


def test_schema_directory_of_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SchemaError) as caught:
        SchemaDirectory(tmp_path / "missing")
    assert str(caught.value) == f"schema folder {tmp_path / 'missing'} does not exist"


def test_schema_directory_with_a_broken_schema_names_it(tmp_path: Path) -> None:
    (tmp_path / "900.avsc").write_text("{not json")
    with pytest.raises(SchemaError, match=f"cannot read schema {tmp_path / '900.avsc'}"):
        SchemaDirectory(tmp_path)


# --- make_format ---------------------------------------------------------------------------


def test_make_format_builds_each_format(
    registry: Path, ztf: tuple[Schema, dict[str, Any], bytes]
) -> None:
    schema, _, _ = ztf
    assert isinstance(make_format("ztf"), ZtfFormat)
    schemaless = make_format("schemaless", schema=schema)
    assert isinstance(schemaless, SchemalessFormat)
    assert schemaless.schema is schema
    confluent = make_format("confluent", registry=registry, subject="ztf-value")
    assert isinstance(confluent, ConfluentFormat)
    assert isinstance(confluent.source, SchemaDirectory)
    assert confluent.source.folder == registry
    assert confluent.subject == "ztf-value"
    assert isinstance(schema_source(str(registry)), SchemaDirectory)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("avro", {}, "unknown wire format 'avro'; choose one of ztf, schemaless, confluent"),
        ("", {}, "unknown wire format ''; choose one of ztf, schemaless, confluent"),
        ("schemaless", {}, "the schemaless format needs the schema: give --schema FILE.avsc"),
        (
            "confluent",
            {},
            "the confluent format needs schema ids: give --schema-registry "
            "(a folder of <id>.avsc files or a registry URL)",
        ),
    ],
)
def test_make_format_refuses_incomplete_configuration(
    name: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(WireError) as caught:
        make_format(name, **kwargs)
    assert str(caught.value) == message


def test_make_format_confluent_with_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not exist"):
        make_format("confluent", registry=tmp_path / "nowhere")
