"""Reading an alert's id out of any broker's output, checked against fastavro's records."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest

from alertbench.alerts.ids import ID_PATHS, IdReader, IdReadError, alert_id, project
from alertbench.alerts.reader import AlertReader
from alertbench.alerts.wire import ALERT_ID_HEADER
from alertbench.errors import ConfigError


@pytest.fixture(scope="module")
def ztf(alert_files: list[Path]):
    return AlertReader().read(alert_files[:20])


def _schemaless(record: dict, schema: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def test_alert_id_is_candid_for_ztf_and_dia_source_id_for_rubin(ztf, shared_data) -> None:
    for a in ztf:
        assert alert_id(a.record) == str(a.record["candid"])
        assert alert_id(a.record, "candidate.candid") == str(a.record["candidate"]["candid"])
        assert alert_id(a.record, "objectId") == a.record["objectId"]
    rubin = AlertReader().read(sorted((shared_data / "lsst").rglob("*.avro"))[:20])
    assert rubin
    for a in rubin:
        source = a.record.get("diaSource") or {}
        want = a.record.get("diaSourceId") or source.get("diaSourceId") or a.record["alertId"]
        assert alert_id(a.record) == str(want)
    assert alert_id({"x": 1}) is None
    assert alert_id({"a": {"b": 5}}, "a.b") == "5"
    assert alert_id({"a": {"b": 5}}, "a.c") is None


def test_every_output_format_gives_the_sent_id(ztf, tmp_path) -> None:
    schema = ztf[0].schema.definition
    (tmp_path / "7.avsc").write_text(json.dumps(schema))
    readers = {
        "container": IdReader("container"),
        "schema-key": IdReader("schema-key"),
        "confluent": IdReader("confluent", schemas=tmp_path),
        "json": IdReader("json"),
        "header": IdReader("header"),
        "dotted": IdReader("json", field="candidate.candid"),
    }
    for a in ztf:
        if a.schema.definition != schema:
            continue
        record = a.record
        body = _schemaless(record, schema)
        want = str(record["candid"])
        container = io.BytesIO()
        fastavro.writer(container, fastavro.parse_schema(schema), [record])
        candidate = {"candid": record["candidate"]["candid"]}
        lasair = json.dumps(
            {"objectId": record["objectId"], "candid": record["candid"], "candidate": candidate}
        ).encode()
        assert readers["container"].read(None, container.getvalue(), {}) == want
        assert readers["schema-key"].read(json.dumps(schema).encode(), body, {}) == want
        assert readers["confluent"].read(None, b"\x00" + (7).to_bytes(4, "big") + body, {}) == want
        assert readers["json"].read(None, lasair, {}) == want
        assert readers["dotted"].read(None, lasair, {}) == want
        assert readers["header"].read(None, b"", {ALERT_ID_HEADER: want.encode()}) == want
        # The whole record, not only the id, is what fastavro decodes.
        assert readers["schema-key"].record(json.dumps(schema).encode(), body) == record


def test_unreadable_messages_say_why(ztf, tmp_path) -> None:
    with pytest.raises(IdReadError, match="no key"):
        IdReader("schema-key").read(None, b"\x02", {})
    with pytest.raises(IdReadError, match="not an Avro schema"):
        IdReader("schema-key").read(b"ZTF23abc", b"\x02", {})
    with pytest.raises(IdReadError, match="not an Avro container file"):
        IdReader("container").read(None, b"garbage", {})
    two = io.BytesIO()
    schema = fastavro.parse_schema(ztf[0].schema.definition)
    fastavro.writer(two, schema, [ztf[0].record, ztf[0].record])
    with pytest.raises(IdReadError, match="other than one record"):
        IdReader("container").read(None, two.getvalue(), {})
    with pytest.raises(IdReadError, match="no Confluent framing"):
        IdReader("confluent", schemas=tmp_path).read(None, b"\x01abcd", {})
    with pytest.raises(IdReadError, match=r"schema id 9: no .*9\.avsc"):
        IdReader("confluent", schemas=tmp_path).read(None, b"\x00\x00\x00\x00\x09xx", {})
    with pytest.raises(IdReadError, match="no id field"):
        IdReader("json").read(None, b'{"objectId": "ZTF1"}', {})
    with pytest.raises(IdReadError, match="not an object"):
        IdReader("json").read(None, b"[1, 2]", {})
    with pytest.raises(IdReadError, match=r"no alertbench\.alert_id header"):
        IdReader("header").read(None, b"", {})
    with pytest.raises(ConfigError, match="unknown output format 'xml'"):
        IdReader("xml")
    with pytest.raises(ConfigError, match="needs a folder"):
        IdReader("confluent")


def test_send_times_are_looked_up_by_id_and_unknown_ids_stay_untimed() -> None:
    from alertbench.bench.timing import with_send_times

    rows = [("out", "11", "", 500, 0, 0), ("out", "99", "", 600, 0, 1), ("out", "", "", 700, 0, 2)]
    assert with_send_times(rows, {"11": 400, "12": 450}) == [
        ("out", "11", 400, 500, 0, 0),
        ("out", "99", "", 600, 0, 1),
        ("out", "", "", 700, 0, 2),
    ]


def test_only_the_id_fields_are_decoded(ztf, shared_data, tmp_path) -> None:
    ztf_schema = ztf[0].schema.definition
    assert [f["name"] for f in project(ztf_schema, list(ID_PATHS))["fields"]] == ["candid"]
    nested = project(ztf_schema, [("candidate", "candid")])
    (candidate,) = nested["fields"]
    assert [f["name"] for f in candidate["type"]["fields"]] == ["candid"]
    reader = IdReader("container", field="candidate.candid")
    for a in ztf:
        out = io.BytesIO()
        fastavro.writer(out, fastavro.parse_schema(a.schema.definition), [a.record])
        assert reader.record(None, out.getvalue(), whole=False) == {
            "candidate": {"candid": a.record["candidate"]["candid"]}
        }
        assert reader.read(None, out.getvalue(), {}) == str(a.record["candidate"]["candid"])
    # Rubin, every version here, in its own wire format: the id equals the record's.
    rubin = AlertReader().read(sorted((shared_data / "lsst").rglob("*.avro")))
    ids = {json.dumps(a.schema.definition) for a in rubin}
    for k, text in enumerate(sorted(ids)):
        (tmp_path / f"{k}.avsc").write_text(text)
    reader = IdReader("confluent", schemas=tmp_path)
    for a in rubin:
        k = sorted(ids).index(json.dumps(a.schema.definition))
        body = _schemaless(a.record, a.schema.definition)
        message = b"\x00" + k.to_bytes(4, "big") + body
        assert reader.read(None, message, {}) == alert_id(a.record)
