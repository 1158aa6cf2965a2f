"""The native Avro decoder against fastavro, field for field, for every schema version we have.

Real alerts only: the shared ZTF night, ZTF 2.0 to 4.02, Rubin lsst v3 to
v11 (synthetic), real LSSTCam v9 and v10 and Rubin's Confluent-framed
messages. Whole records are compared, cutouts included.
"""

from __future__ import annotations

import io
import threading
from collections import defaultdict
from pathlib import Path

import fastavro
import pytest

from alertbench.alerts.files import SAMPLE_DIR, find_alert_files
from alertbench.alerts.schema import Schema
from alertbench.broker.batch.avro import ArrowDecoder, split_names
from compare import same


def _by_schema(files: list[Path]) -> dict[Schema, list[dict]]:
    """The records of alert files, grouped by writer schema."""
    groups: dict[Schema, list[dict]] = defaultdict(list)
    for path in files:
        with path.open("rb") as fh:
            reader = fastavro.reader(fh)
            schema = Schema(reader.writer_schema)
            groups[schema] += list(reader)
    return groups


def _roundtrip(schema: Schema, records: list[dict]) -> None:
    decoder = ArrowDecoder(schema)
    try:
        bodies = [schema.encode(r) for r in records]
        # fastavro's reading of the same bodies is the reference.
        expected = [schema.decode(b) for b in bodies]
        out = decoder.decode(bodies)
        assert out.failed == {}
        assert out.rows == list(range(len(records)))
        assert same(out.table.to_pylist(), expected), schema
        assert out.table.schema == decoder.arrow_schema()
    finally:
        decoder.close()


def test_same_is_strict_about_types_and_values() -> None:
    assert same({"a": [1.0, float("nan")]}, {"a": [1.0, float("nan")]})
    assert not same({"stampData": b"x"}, {"stampData": "x"})  # bytes returned as text
    assert not same([1, 2], [1, 2, 3])
    assert not same(1, 1.0)


def test_split_names_keeps_the_full_names() -> None:
    cutout = {
        "type": "record",
        "name": "ztf.alert.cutout",
        "fields": [{"name": "stampData", "type": "bytes"}],
    }
    schema = {
        "type": "record",
        "name": "alert",
        "namespace": "ztf",
        "fields": [
            {"name": "cutoutScience", "type": ["null", cutout]},
            {"name": "cutoutTemplate", "type": ["null", "ztf.alert.cutout"]},
        ],
    }
    fixed = split_names(schema)
    first = fixed["fields"][0]["type"][1]
    assert (first["namespace"], first["name"]) == ("ztf.alert", "cutout")
    assert fixed["fields"][1]["type"] == ["null", "ztf.alert.cutout"]
    # The same schema to fastavro: equal canonical forms.
    assert Schema(fixed) == Schema(schema)


@pytest.mark.parametrize("survey", ["ztf", "lsst"])
def test_the_shipped_sample_decodes_exactly(survey: str) -> None:
    for schema, records in _by_schema(find_alert_files([SAMPLE_DIR / survey])).items():
        _roundtrip(schema, records)


@pytest.mark.parametrize(
    "folder",
    [
        "ztf/fixtures-by-version",
        "lsst/fake-by-version",
        "lsst/lsstcam-20250906-v9.0",
        "lsst/lsstcam-20260306-v10.0",
        "lsst/simulated-v9.0",
    ],
)
def test_every_fixture_version_decodes_exactly(shared_data: Path, folder: str) -> None:
    groups = _by_schema(find_alert_files([shared_data / folder]))
    assert groups
    for schema, records in groups.items():
        _roundtrip(schema, records)


def test_rubin_confluent_payloads_decode_exactly(
    shared_data: Path, shared_schemas: Path, tmp_path: Path
) -> None:
    import shutil

    from alertbench.alerts.wire import ConfluentFormat, SchemaDirectory

    # Rubin's schema ids: 701, 703, 704, 900 = lsst.v7_1, v7_3, v7_4, v9_0.
    for schema_id, version in ((701, "7.1"), (703, "7.3"), (704, "7.4"), (900, "9.0")):
        major, minor = version.split(".")
        avsc = shared_schemas / "lsst" / f"v{version}" / f"lsst.v{major}_{minor}.alert.full.avsc"
        shutil.copy(avsc, tmp_path / f"{schema_id}.avsc")
    fmt = ConfluentFormat(SchemaDirectory(tmp_path))
    by_schema: dict[Schema, list[bytes]] = defaultdict(list)
    for path in sorted((shared_data / "lsst" / "confluent-wire-messages").glob("*.avro")):
        message = path.read_bytes()
        _record, schema = fmt.decode(message)
        by_schema[schema].append(message[5:])
    assert len(by_schema) == 4
    for schema, bodies in by_schema.items():
        decoder = ArrowDecoder(schema)
        try:
            out = decoder.decode(bodies)
            assert out.failed == {}
            assert same(out.table.to_pylist(), [schema.decode(b) for b in bodies])
        finally:
            decoder.close()


def test_the_shared_ztf_night_decodes_exactly(alert_files: list[Path]) -> None:
    for schema, records in _by_schema(alert_files).items():
        _roundtrip(schema, records)


def test_bad_bodies_are_named_and_every_other_alert_decodes() -> None:
    (schema, records), *_ = _by_schema(find_alert_files([SAMPLE_DIR / "ztf"])).items()
    bodies = [schema.encode(r) for r in records]
    bad = dict(bodies=list(bodies))
    bad["bodies"][3] = bodies[3][: len(bodies[3]) // 2]  # truncated
    bad["bodies"][7] = bodies[7][:-5]  # its last cutout cut
    bad["bodies"][20] = b"\xff" * 40  # not Avro at all
    bad["bodies"][-1] = b""  # empty
    decoder = ArrowDecoder(schema)
    try:
        out = decoder.decode(bad["bodies"])
    finally:
        decoder.close()
    last = len(bodies) - 1
    assert sorted(out.failed) == [3, 7, 20, last]
    # Cut in its history, a body ends inside a value fastavro reads; cut in its last
    # cutout, which fastavro skips, it reaches the decoder, which refuses it.
    assert out.failed[3] == "Avro body does not decode: EOFError: "
    assert out.failed[7].startswith("Avro body does not decode: DataFusion error")
    assert "Unexpected EOF" in out.failed[7]
    assert out.failed[20].startswith("Avro body does not decode")
    assert out.failed[last].startswith("Avro body does not decode")
    good = [i for i in range(len(bodies)) if i not in (3, 7, 20, last)]
    assert out.rows == good
    assert same(out.table.to_pylist(), [records[i] for i in good])


@pytest.mark.parametrize("survey", ["ztf", "lsst"])
def test_bytes_after_a_record_are_named_and_do_not_hang_the_decoder(
    survey: str, shared_data: Path
) -> None:
    # arrow-avro 59.3 spins for ever on a block with bytes left after its record.
    folder = SAMPLE_DIR / "ztf" if survey == "ztf" else shared_data / "lsst/lsstcam-20250906-v9.0"
    (schema, records), *_ = _by_schema(find_alert_files([folder])).items()
    bodies = [schema.encode(r) for r in records[:12]]
    sent = list(bodies)
    sent[2] = bodies[2] + b"\x00"  # one zero byte is enough
    sent[5] = bodies[5] + bodies[5]  # a record twice
    sent[9] = bodies[9] + b"\x00" * 8
    decoder = ArrowDecoder(schema)
    done: list = []
    worker = threading.Thread(target=lambda: done.append(decoder.decode(sent)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the decoder did not return"
    decoder.close()
    (out,) = done
    assert out.failed == {
        i: f"Avro body is longer than its record: {extra} bytes after byte {len(bodies[i])} "
        f"of {len(sent[i])} (padding, or a second record)"
        for i, extra in ((2, 1), (5, len(bodies[5])), (9, 8))
    }
    good = [i for i in range(len(bodies)) if i not in (2, 5, 9)]
    assert out.rows == good
    assert same(out.table.to_pylist(), [records[i] for i in good])


def test_an_empty_batch_has_the_schema_and_no_rows() -> None:
    (schema, records), *_ = _by_schema(find_alert_files([SAMPLE_DIR / "ztf"])).items()
    decoder = ArrowDecoder(schema)
    try:
        out = decoder.decode([])
        assert out.table.num_rows == 0
        assert out.table.schema.names == [f["name"] for f in schema.definition["fields"]]
        assert fastavro.reader(io.BytesIO(decoder.container([schema.encode(records[0])])))
    finally:
        decoder.close()
