"""Alert schemas: survey detection, encoding, framing, equality, validation, tail encoding."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import fastavro
import pytest

from alertbench.alerts.schema import OCF_MAGIC, Schema, SchemaError, SurveyVersion, detect_survey

ZTF_CUTOUTS = ["cutoutScience", "cutoutTemplate", "cutoutDifference"]
RUBIN_CUTOUTS = ["cutoutDifference", "cutoutScience", "cutoutTemplate"]


def _read(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], bytes]:
    """Writer schema, records and raw bytes of an alert container file."""
    data = path.read_bytes()
    reader = fastavro.reader(io.BytesIO(data))
    records = list(reader)
    return reader.writer_schema, records, data


@pytest.fixture(scope="session")
def ztf_file(shared_data: Path) -> Path:
    """One real ZTF 4.02 alert of the 2023-10-18 night (written by fastavro)."""
    return shared_data / "ztf" / "night-20231018-v4.02" / "2481114531315015022.avro"


@pytest.fixture(scope="session")
def ztf(ztf_file: Path) -> tuple[Schema, dict[str, Any], bytes]:
    definition, (record,), data = _read(ztf_file)
    return Schema(definition), record, data


@pytest.fixture(scope="session")
def rubin(shared_data: Path) -> tuple[Schema, dict[str, Any], bytes]:
    path = shared_data / "lsst" / "lsstcam-20250906-v9.0" / "169298432598474793.avro"
    definition, (record,), data = _read(path)
    return Schema(definition), record, data


# --- detect_survey -------------------------------------------------------------------------


def test_detect_survey_of_every_ztf_fixture(shared_data: Path) -> None:
    files = sorted((shared_data / "ztf" / "fixtures-by-version").glob("*.avro"))
    assert len(files) == 25
    seen = set()
    for path in files:
        definition, (record,), _ = _read(path)
        version = path.name.split("_")[1].removeprefix("v")
        found = detect_survey(definition)
        assert found == SurveyVersion("ztf", version), path.name
        assert found.version == record["schemavsn"], path.name
        assert str(found) == f"ztf {version}"
        seen.add(version)
    assert seen == {"2.0", "3.0", "3.1", "3.2", "3.3", "3.5", "4.01", "4.02"}


def test_detect_survey_of_every_rubin_version(shared_data: Path) -> None:
    files = sorted((shared_data / "lsst" / "fake-by-version").glob("*.avro"))
    assert len(files) == 15
    seen = set()
    for path in files:
        definition, _, _ = _read(path)
        version = re.fullmatch(r"lsst_v(\d+\.\d+)_fakeAlert\.avro", path.name)[1]
        assert definition["name"] == f"lsst.v{version.replace('.', '_')}.alert"
        assert detect_survey(definition) == SurveyVersion("lsst", version), path.name
        seen.add(version)
    assert seen == {
        "3.0", "4.0", "5.0", "6.0", "6.1", "7.0", "7.1", "7.2",
        "7.3", "7.4", "8.0", "9.0", "10.0", "11.0", "11.1",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (
            {"type": "record", "name": "alert", "namespace": "ztf", "version": "4.02"},
            ("ztf", "4.02"),
        ),
        ({"type": "record", "name": "alert", "namespace": "lsst.v7_4"}, ("lsst", "7.4")),
        ({"type": "record", "name": "lsst.v10_0.alert"}, ("lsst", "10.0")),
        # A dotted name is already full: the namespace does not apply.
        ({"type": "record", "name": "lsst.v9_0.alert", "namespace": "ztf"}, ("lsst", "9.0")),
    ],
)
def test_detect_survey_of_namespaced_names(
    definition: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert detect_survey(definition) == SurveyVersion(*expected)


@pytest.mark.parametrize(
    "definition",
    [
        {"type": "record", "name": "my.thing", "fields": [{"name": "x", "type": "int"}]},
        {"type": "record", "name": "lsst.v9_0.diaSource", "fields": []},
        {"type": "record", "name": "ztf.alert.candidate", "fields": []},
        {"type": "record", "name": "lsst.v9.alert", "fields": []},
        {"type": "record", "name": "alert", "fields": []},
        {"type": "string"},
    ],
)
def test_detect_survey_of_unrelated_schema_is_unknown(definition: dict[str, Any]) -> None:
    found = detect_survey(definition)
    assert found == SurveyVersion("unknown", "")
    assert str(found) == "unknown"


def test_unrelated_schema_object_is_unknown() -> None:
    schema = Schema(
        {"type": "record", "name": "my.thing", "fields": [{"name": "x", "type": "int"}]}
    )
    assert schema.survey == SurveyVersion("unknown", "")
    assert schema.field_names == ["x"]
    assert schema.decode(schema.encode({"x": -3})) == {"x": -3}


# --- encode / decode / container -----------------------------------------------------------


def test_ztf_field_names(ztf: tuple[Schema, dict[str, Any], bytes]) -> None:
    schema, _, _ = ztf
    assert schema.name == "ztf.alert"
    assert schema.survey == SurveyVersion("ztf", "4.02")
    assert schema.field_names == [
        "schemavsn", "publisher", "objectId", "candid", "candidate",
        "prv_candidates", "fp_hists", *ZTF_CUTOUTS,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "relative",
    [
        "ztf/night-20231018-v4.02/2481114531315015022.avro",
        "ztf/night-20231018-v4.02/2481114531715015012.avro",
        "ztf/fixtures-by-version/ztf_v2.0_472263571115090000.avro",
        "ztf/fixtures-by-version/ztf_v3.5_1661382530015060001.avro",
        "ztf/fixtures-by-version/ztf_v4.01_2475433850015010009.avro",
        "lsst/lsstcam-20250906-v9.0/169298432598474793.avro",
        "lsst/lsstcam-20250906-v9.0/169298432645136561.avro",
        "lsst/simulated-v9.0/396841556377608.avro",
        "lsst/lsstcam-20260306-v10.0/170094456248729605.avro",
        "lsst/fake-by-version/lsst_v3.0_fakeAlert.avro",
    ],
)
def test_encode_decode_round_trip_of_real_alerts(shared_data: Path, relative: str) -> None:
    definition, (record,), data = _read(shared_data / relative)
    schema = Schema(definition)
    body = schema.encode(record)
    assert schema.decode(body) == record
    # Every file is uncompressed ("null" codec) with one block: the body sits just
    # before the final 16-byte sync marker, byte for byte.
    assert data[-16 - len(body) : -16] == body


def _header_length(container: bytes) -> int:
    stream = io.BytesIO(container)
    fastavro.reader(stream)
    return stream.tell()


def test_container_of_a_real_ztf_file_is_the_file(
    ztf: tuple[Schema, dict[str, Any], bytes],
) -> None:
    schema, record, data = ztf
    body = schema.encode(record)
    framed = schema.container(body)
    assert framed.startswith(OCF_MAGIC)
    assert len(framed) == len(data) == 75_821
    header = _header_length(framed)
    assert header == _header_length(data) == 27_216
    # After the header: block count 1 (zig-zag 0x02), the body's length, the body, then
    # the 16-byte sync marker, which is random per Schema object.
    assert framed[header:-16] == data[header:-16]
    assert framed[header : header + 1] == b"\x02"
    assert framed[header - 16 : header] == framed[-16:]
    # The headers carry the same schema, but not always the same bytes: fastavro
    # (which wrote the night's files too) serialises the *parsed* schema, and the order
    # of a field's "doc" and "default" keys comes from iterating a set of strings, so it
    # depends on PYTHONHASHSEED. Same length, same JSON data, byte order may differ.
    written = fastavro.reader(io.BytesIO(framed))
    original = fastavro.reader(io.BytesIO(data))
    assert json.loads(written.metadata["avro.schema"]) == json.loads(
        original.metadata["avro.schema"]
    )
    assert list(written) == [record]
    assert written.writer_schema == schema.definition
    # The header (and sync marker) is built once and reused: an empty body is framed as
    # the same header, a block of 1 record (0x02) of 0 bytes (0x00), the same sync.
    assert schema.container(b"") == framed[:header] + b"\x02\x00" + framed[-16:]
    assert schema.container(body) == framed


def test_container_of_a_rubin_record_reads_back(
    rubin: tuple[Schema, dict[str, Any], bytes],
) -> None:
    schema, record, data = rubin
    framed = schema.container(schema.encode(record))
    assert len(framed) == len(data) == 143_196
    reader = fastavro.reader(io.BytesIO(framed))
    assert list(reader) == [record]
    assert detect_survey(reader.writer_schema) == SurveyVersion("lsst", "9.0")


# --- equality ------------------------------------------------------------------------------


def test_file_header_and_full_avsc_are_equal_schemas(
    ztf: tuple[Schema, dict[str, Any], bytes], shared_schemas: Path
) -> None:
    from_file, _, _ = ztf
    avsc = shared_schemas / "ztf" / "v4.02" / "ztf.alert.full.avsc"
    from_avsc = Schema.from_avsc(avsc)
    # Equal: the writer schema embedded in ZTF's files is exactly the JSON of
    # ztf.alert.full.avsc (same fields, types, docs, "version"), so the Parsing Canonical
    # Forms, hence the fingerprints, are identical. They are also separate objects.
    assert from_file.definition == json.loads(avsc.read_text())
    assert from_file is not from_avsc
    assert from_file == from_avsc
    assert hash(from_file) == hash(from_avsc)
    assert from_file.fingerprint == from_avsc.fingerprint
    assert len(from_file.fingerprint) == 64
    assert {from_file, from_avsc} == {from_file}
    assert from_avsc.survey == SurveyVersion("ztf", "4.02")


def test_rubin_file_header_and_full_avsc_are_equal_schemas(
    rubin: tuple[Schema, dict[str, Any], bytes], shared_schemas: Path
) -> None:
    from_file, _, _ = rubin
    v90 = Schema.from_avsc(shared_schemas / "lsst" / "v9.0" / "lsst.v9_0.alert.full.avsc")
    v74 = Schema.from_avsc(shared_schemas / "lsst" / "v7.4" / "lsst.v7_4.alert.full.avsc")
    assert from_file == v90
    assert hash(from_file) == hash(v90)
    assert from_file != v74
    assert v74.survey == SurveyVersion("lsst", "7.4")


def test_equality_ignores_docs_and_version_attribute(shared_data: Path) -> None:
    fixtures = shared_data / "ztf" / "fixtures-by-version"
    by_version = {}
    for name in (
        "ztf_v3.5_1661382530015060001.avro",
        "ztf_v4.01_2475433850015010009.avro",
        "ztf_v4.02_2695378462115010012.avro",
    ):
        definition, _, _ = _read(fixtures / name)
        by_version[name.split("_")[1]] = Schema(definition)
    # ZTF 4.01 and 4.02 differ only in the "version" attribute (and docs), which the
    # Parsing Canonical Form drops: they are equal schemas (the same bytes on the wire)
    # although they are detected as different survey versions.
    assert by_version["v4.01"] == by_version["v4.02"]
    assert hash(by_version["v4.01"]) == hash(by_version["v4.02"])
    assert str(by_version["v4.01"].survey) == "ztf 4.01"
    assert str(by_version["v4.02"].survey) == "ztf 4.02"
    # 3.5 has different fields.
    assert by_version["v3.5"] != by_version["v4.02"]
    assert by_version["v4.02"] != "ztf.alert"


def test_equality_is_by_fingerprint_not_identity() -> None:
    base = {"type": "record", "name": "my.thing", "fields": [{"name": "x", "type": "int"}]}
    documented = {**base, "doc": "same fields, with a doc"}
    other = {**base, "fields": [{"name": "x", "type": "long"}]}
    assert Schema(base) == Schema(documented)
    assert Schema(base) != Schema(other)
    assert len({Schema(base), Schema(documented), Schema(other)}) == 2


# --- validate ------------------------------------------------------------------------------


def test_validate_passes_real_records(
    ztf: tuple[Schema, dict[str, Any], bytes], rubin: tuple[Schema, dict[str, Any], bytes]
) -> None:
    for schema, record, _ in (ztf, rubin):
        assert schema.validate(record) is None


def test_validate_names_a_wrongly_typed_field(ztf: tuple[Schema, dict[str, Any], bytes]) -> None:
    schema, record, _ = ztf
    bad = copy.deepcopy(record)
    bad["candidate"]["ra"] = "12.5"
    with pytest.raises(SchemaError) as caught:
        schema.validate(bad)
    message = str(caught.value)
    assert message.startswith("record does not fit ztf.alert:")
    assert "ztf.alert.candidate.ra is <12.5> of type <class 'str'> expected double" in message
    # The original is untouched and still fits.
    schema.validate(record)


def test_validate_names_a_wrongly_typed_rubin_field(
    rubin: tuple[Schema, dict[str, Any], bytes],
) -> None:
    schema, record, _ = rubin
    bad = copy.deepcopy(record)
    bad["diaSourceId"] = "169298432598474793"
    with pytest.raises(
        SchemaError, match=r"lsst\.v9_0\.alert\.diaSourceId is <169298432598474793>"
    ):
        schema.validate(bad)


# --- from_avsc -----------------------------------------------------------------------------


def test_from_avsc_of_a_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "alert.avsc"
    with pytest.raises(SchemaError, match=f"cannot read schema {re.escape(str(missing))}: "):
        Schema.from_avsc(missing)


def test_from_avsc_of_invalid_json_names_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.avsc"
    broken.write_text('{"type": "record", "name": ')
    with pytest.raises(SchemaError, match=f"cannot read schema {re.escape(str(broken))}: "):
        Schema.from_avsc(broken)


def test_from_avsc_of_json_that_is_no_schema_names_it(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.avsc"
    wrong.write_text('{"type": "record", "name": "x", "fields": [{"name": "a", "type": "nope"}]}')
    with pytest.raises(SchemaError) as caught:
        Schema.from_avsc(wrong)
    assert str(caught.value).startswith(f"cannot read schema {wrong}: not a valid Avro schema")


def test_schema_of_an_invalid_definition() -> None:
    with pytest.raises(SchemaError, match="not a valid Avro schema"):
        Schema({"type": "record", "name": "x", "fields": [{"name": "a"}]})


def test_from_avsc_of_every_official_full_schema(shared_schemas: Path) -> None:
    found = {}
    for path in sorted(shared_schemas.glob("*/*/*.alert.full.avsc")):
        found[path.parent.parent.name + " " + path.parent.name] = Schema.from_avsc(path).survey
    assert found["ztf v4.02"] == SurveyVersion("ztf", "4.02")
    assert found["lsst v9.0"] == SurveyVersion("lsst", "9.0")
    assert found["lsst v7.4"] == SurveyVersion("lsst", "7.4")
    assert len(found) == 29
    for key, survey in found.items():
        kind, version = key.split(" ")
        assert survey.survey == kind, key
        assert survey.version == version.removeprefix("v").split("-")[0], key  # v3.5-nullsfirst


def test_name_is_the_full_name_also_for_namespaced_schemas() -> None:
    """``Schema.name`` promises the full name (e.g. ``ztf.alert``).

    A schema written as name "alert" + namespace "lsst.v9_0" is detected as lsst 9.0,
    but its ``name`` (used in every error message) is only "alert".
    """
    schema = Schema(
        {
            "type": "record",
            "name": "alert",
            "namespace": "lsst.v9_0",
            "fields": [{"name": "diaSourceId", "type": "long"}],
        }
    )
    assert schema.survey == SurveyVersion("lsst", "9.0")
    assert schema.name == "lsst.v9_0.alert"


# --- TailEncoder ---------------------------------------------------------------------------


def test_tail_encoder_reuses_the_cutout_bytes(
    ztf: tuple[Schema, dict[str, Any], bytes], rubin: tuple[Schema, dict[str, Any], bytes]
) -> None:
    for (schema, record, _), tail_fields in ((ztf, ZTF_CUTOUTS), (rubin, RUBIN_CUTOUTS)):
        encoder = schema.tail_encoder(tail_fields)
        assert encoder.split == len(schema.field_names) - 3
        tail = encoder.encode_tail(record)
        full = schema.encode(record)
        assert encoder.encode(record, tail) == full
        assert full.endswith(tail)
        assert len(tail) > 10_000  # the cutouts are most of an alert


def test_tail_encoder_with_another_records_head(
    ztf: tuple[Schema, dict[str, Any], bytes],
) -> None:
    """A clone with new leading fields and the template's cutouts encodes like the full record."""
    schema, record, _ = ztf
    encoder = schema.tail_encoder(ZTF_CUTOUTS)
    tail = encoder.encode_tail(record)
    clone = copy.deepcopy(record)
    clone["objectId"] = "ZTF26aaaaaaa"
    clone["candid"] = 3_000_000_000_000_000_001
    clone["candidate"]["ra"] += 0.25
    body = encoder.encode(clone, tail)
    assert body == schema.encode(clone)
    assert schema.decode(body) == clone


@pytest.mark.parametrize(
    "fields",
    [
        ["cutoutDifference", "cutoutTemplate", "cutoutScience"],
        ["cutoutScience", "cutoutTemplate"],
        ["candidate"],
        ["nope"],
        [],
    ],
)
def test_tail_fields_must_be_the_last_ones(
    ztf: tuple[Schema, dict[str, Any], bytes], fields: list[str]
) -> None:
    schema, _, _ = ztf
    with pytest.raises(SchemaError, match=r"are not the last fields of ztf\.alert"):
        schema.tail_encoder(fields)


def test_rubin_tail_fields_in_ztf_order_are_refused(
    rubin: tuple[Schema, dict[str, Any], bytes],
) -> None:
    schema, _, _ = rubin
    with pytest.raises(SchemaError) as caught:
        schema.tail_encoder(ZTF_CUTOUTS)
    assert str(caught.value) == (
        f"{ZTF_CUTOUTS} are not the last fields of lsst.v9_0.alert ({RUBIN_CUTOUTS})"
    )
