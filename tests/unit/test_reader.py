"""Reading alert files into alerts, and reporting the files that cannot be read."""

from __future__ import annotations

import gzip
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest

from alertbench.alerts.reader import AlertReader, AlertReadError, read_alerts
from alertbench.alerts.schema import Schema


@pytest.fixture(scope="session")
def rubin_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "lsst" / "lsstcam-20250906-v9.0").glob("*.avro"))
    assert len(files) == 100
    return files


def _read(path: Path) -> tuple[Schema, list[dict[str, Any]]]:
    with path.open("rb") as fo:
        reader = fastavro.reader(fo)
        records = list(reader)
    return Schema(reader.writer_schema), records


@pytest.fixture(scope="session")
def ztf_alert(alert_files: list[Path]) -> tuple[Path, Schema, dict[str, Any]]:
    path = alert_files[0]
    schema, (record,) = _read(path)
    return path, schema, record


def test_reads_real_ztf_files(alert_files: list[Path]) -> None:
    files = alert_files[:50]
    reader = AlertReader()
    alerts = reader.read(files)
    report = reader.report
    assert len(alerts) == report.alerts == 50
    assert report.files == 50
    assert report.versions == {"ztf 4.02": 50}
    assert report.problems == []
    assert report.bytes == sum(len(a.body) for a in alerts)
    assert report.bytes_per_alert > 10_000
    assert report.bytes_per_alert == report.bytes / 50
    for path, alert in zip(files, alerts, strict=True):
        _, (record,) = _read(path)
        assert alert.source == path
        assert alert.index == 0
        assert alert.record == record
        assert alert.record["candid"] == int(path.name.removesuffix(".avro"))
        assert alert.body == alert.schema.encode(record)
        assert alert.key == record["objectId"]
        assert alert.key.startswith("ZTF")
        assert alert.observed == record["candidate"]["jd"]
        assert 2460235.5 < alert.observed < 2460236.5  # the night of 2023-10-18
    # One Schema object for all files with the same writer schema.
    assert len({id(a.schema) for a in alerts}) == 1


def test_reads_a_multi_record_container(
    alert_files: list[Path], ztf_alert: tuple[Path, Schema, dict[str, Any]], tmp_path: Path
) -> None:
    _, schema, _ = ztf_alert
    records = [_read(path)[1][0] for path in alert_files[:3]]
    path = tmp_path / "three.avro"
    with path.open("wb") as fo:
        fastavro.writer(fo, schema.parsed, records)
    reader = AlertReader()
    alerts = reader.read([path])
    assert [a.index for a in alerts] == [0, 1, 2]
    assert [a.source for a in alerts] == [path, path, path]
    assert [a.record for a in alerts] == records
    assert [a.key for a in alerts] == [r["objectId"] for r in records]
    assert reader.report.files == 1
    assert reader.report.alerts == 3
    assert reader.report.versions == {"ztf 4.02": 3}


def test_reads_a_gzipped_file(
    ztf_alert: tuple[Path, Schema, dict[str, Any]], tmp_path: Path
) -> None:
    source, _, record = ztf_alert
    path = tmp_path / (source.name + ".gz")
    path.write_bytes(gzip.compress(source.read_bytes()))
    (alert,) = AlertReader().read([path])
    assert alert.record == record
    assert alert.source == path
    assert alert.key == record["objectId"]


def test_reads_real_rubin_files(rubin_files: list[Path]) -> None:
    reader = AlertReader()
    alerts = reader.read(rubin_files)
    assert len(alerts) == 100
    assert reader.report.files == 100
    assert reader.report.versions == {"lsst 9.0": 100}
    assert reader.report.problems == []
    with_object = 0
    for path, alert in zip(rubin_files, alerts, strict=True):
        record = alert.record
        assert record["diaSourceId"] == int(path.name.removesuffix(".avro"))
        source = record["diaSource"]
        if record["diaObject"] is not None:
            with_object += 1
            assert alert.key == str(record["diaObject"]["diaObjectId"])
        else:
            # A solar-system source: no diaObject (diaObjectId 0), keyed by its ssObject.
            assert source["diaObjectId"] == 0
            assert alert.key == str(source["ssObjectId"])
        assert alert.observed == source["midpointMjdTai"] + 2400000.5
    assert with_object == 96


def test_reads_older_rubin_versions(shared_data: Path) -> None:
    folder = shared_data / "lsst" / "fake-by-version"
    alerts, report = read_alerts([folder])
    assert report.alerts == report.files == 15
    assert report.versions == Counter({
        f"lsst {v}": 1
        for v in (
            "3.0", "4.0", "5.0", "6.0", "6.1", "7.0", "7.1", "7.2",
            "7.3", "7.4", "8.0", "9.0", "10.0", "11.0", "11.1",
        )
    })  # fmt: skip
    for alert in alerts:
        source = alert.record["diaSource"]
        mjd = source.get("midpointMjdTai", source.get("midPointTai"))
        assert alert.observed == mjd + 2400000.5, alert.source.name


def _problem_files(folder: Path, good: Path) -> dict[str, Path]:
    """Unusable files, each with the reason the reader must give."""
    corrupt = folder / "x.avro"
    corrupt.write_bytes(random.Random(7).randbytes(5_000))
    assert not corrupt.read_bytes().startswith(b"Obj\x01")
    data = good.read_bytes()
    truncated = folder / "half.avro"
    truncated.write_bytes(data[: len(data) // 2])
    empty = folder / "empty.avro"
    empty.write_bytes(b"")
    thing = folder / "thing.avro"
    with thing.open("wb") as fo:
        fastavro.writer(
            fo,
            {"type": "record", "name": "my.thing", "fields": [{"name": "n", "type": "int"}]},
            [{"n": 1}, {"n": 2}],
        )
    header_only = folder / "header.avro"
    header_only.write_bytes(data[:2_000])
    return {
        "not an Avro container file. If it is a bare Avro body, give its schema "
        "(--schema FILE.avsc).": corrupt,
        "truncated or corrupt after 0 record(s): ": truncated,
        # An empty file is reported like any other non-container file.
        "not an Avro container file. If it is a bare Avro body, give its schema ": empty,
        "schema 'my.thing' is not a ZTF or Rubin alert schema "
        "(expected ztf.alert or lsst.vM_m.alert).": thing,
        "corrupt Avro container header: ": header_only,
        "cannot read: No such file or directory": folder / "missing.avro",
    }


def test_unusable_files_are_reported_and_skipped(alert_files: list[Path], tmp_path: Path) -> None:
    good = alert_files[:2]
    problems = _problem_files(tmp_path, good[0])
    files = [good[0], *problems.values(), good[1]]
    reader = AlertReader()
    alerts = reader.read(files)
    assert [a.source for a in alerts] == good
    report = reader.report
    assert report.files == 2
    assert report.alerts == 2
    assert report.versions == {"ztf 4.02": 2}
    assert [path for path, _ in report.problems] == list(problems.values())
    for (path, reason), expected in zip(report.problems, problems, strict=True):
        assert reason.startswith(expected), (path.name, reason)
        assert str(path) not in reason  # the path is reported beside the reason


def test_strict_raises_on_the_first_problem(alert_files: list[Path], tmp_path: Path) -> None:
    problems = _problem_files(tmp_path, alert_files[0])
    truncated = problems["truncated or corrupt after 0 record(s): "]
    reader = AlertReader(strict=True)
    with pytest.raises(AlertReadError) as caught:
        reader.read([alert_files[0], truncated, problems["corrupt Avro container header: "]])
    assert str(caught.value).startswith(f"{truncated}: truncated or corrupt after 0 record(s)")
    assert reader.report.files == 1
    assert reader.report.problems == []


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        pytest.param(lambda gz: gz[: len(gz) // 2], "truncated stream", id="truncated"),
        pytest.param(lambda gz: gz[:3] + b"\xff" + gz[4:], "bad header flags", id="flags"),
        pytest.param(lambda gz: b"\x1f\x8b" + b"not gzip", "bad method", id="method"),
    ],
)
def test_corrupt_gzip_is_reported_as_such(
    ztf_alert: tuple[Path, Schema, dict[str, Any]],
    tmp_path: Path,
    damage: Callable[[bytes], bytes],
    what: str,
) -> None:
    source, _, _ = ztf_alert
    path = tmp_path / "bad.avro.gz"
    path.write_bytes(damage(gzip.compress(source.read_bytes())))
    reader = AlertReader()
    assert reader.read([path]) == []
    ((reported, reason),) = reader.report.problems
    assert reported == path
    assert reason.startswith("corrupt gzip: "), (what, reason)


def test_container_without_alerts(
    ztf_alert: tuple[Path, Schema, dict[str, Any]], tmp_path: Path
) -> None:
    _, schema, _ = ztf_alert
    path = tmp_path / "none.avro"
    with path.open("wb") as fo:
        fastavro.writer(fo, schema.parsed, [])
    reader = AlertReader()
    assert reader.read([path]) == []
    assert reader.report.problems == [(path, "Avro container file with no alert in it.")]


def test_expected_schema_skips_other_schemas(
    ztf_alert: tuple[Path, Schema, dict[str, Any]], rubin_files: list[Path]
) -> None:
    ztf_path, ztf_schema, record = ztf_alert
    reader = AlertReader(ztf_schema)
    alerts = reader.read([rubin_files[0], ztf_path])
    assert [a.record for a in alerts] == [record]
    assert reader.report.problems == [
        (
            rubin_files[0],
            "written with lsst.v9_0.alert (lsst 9.0), not the expected ztf.alert (ztf 4.02).",
        )
    ]


def test_bare_body_reads_with_its_schema(
    ztf_alert: tuple[Path, Schema, dict[str, Any]], tmp_path: Path
) -> None:
    _, schema, record = ztf_alert
    path = tmp_path / "body.avro"
    body = schema.encode(record)
    path.write_bytes(body)
    reader = AlertReader(schema)
    (alert,) = reader.read([path])
    assert alert.record == record
    assert alert.body == body
    assert alert.index == 0
    assert alert.schema is schema
    assert reader.report.versions == {"ztf 4.02": 1}
    assert reader.report.bytes == len(body)

    without = AlertReader()
    assert without.read([path]) == []
    ((reported, reason),) = without.report.problems
    assert reported == path
    assert "--schema" in reason
    assert reason.startswith("not an Avro container file")


def test_bare_body_with_a_schema_that_does_not_fit(
    ztf_alert: tuple[Path, Schema, dict[str, Any]], tmp_path: Path
) -> None:
    _, schema, _ = ztf_alert
    path = tmp_path / "body.avro"
    path.write_bytes(b"\x08")  # a string of 4 bytes... then nothing
    with pytest.raises(AlertReadError, match=rf"^{path}: not a ztf\.alert body: "):
        AlertReader(schema, strict=True).read([path])


def test_read_alerts_of_a_folder(shared_data: Path) -> None:
    folder = shared_data / "ztf" / "fixtures-by-version"
    alerts, report = read_alerts([folder])
    assert len(alerts) == report.alerts == report.files == 25
    assert report.problems == []
    assert report.versions == {
        "ztf 2.0": 1,
        "ztf 3.0": 1,
        "ztf 3.1": 1,
        "ztf 3.2": 1,
        "ztf 3.3": 1,
        "ztf 3.5": 1,
        "ztf 4.01": 6,
        "ztf 4.02": 13,
    }
    for alert in alerts:
        version, candid = alert.source.name.removesuffix(".avro").split("_")[1:]
        assert alert.record["schemavsn"] == version.removeprefix("v")
        assert alert.record["candid"] == int(candid)
        assert alert.key == alert.record["objectId"]
        assert alert.observed == alert.record["candidate"]["jd"]


def test_read_alerts_strict_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.avro").write_bytes(b"nothing")
    with pytest.raises(AlertReadError, match=f"^{tmp_path / 'a.avro'}: not an Avro container"):
        read_alerts([tmp_path], strict=True)


def test_read_alerts_with_schema_reads_bodies(
    ztf_alert: tuple[Path, Schema, dict[str, Any]], tmp_path: Path
) -> None:
    source, schema, record = ztf_alert
    (tmp_path / "body.avro").write_bytes(schema.encode(record))
    (tmp_path / "file.avro").write_bytes(source.read_bytes())
    alerts, report = read_alerts([tmp_path], schema=schema)
    assert [a.source.name for a in alerts] == ["body.avro", "file.avro"]
    assert [a.record for a in alerts] == [record, record]
    assert report.files == 2
    assert report.problems == []


def test_empty_report() -> None:
    reader = AlertReader()
    assert reader.read([]) == []
    assert reader.report.bytes_per_alert == 0.0
    assert reader.report.versions == {}


def test_header_is_read_once_per_schema(alert_files: list[Path]) -> None:
    reader = AlertReader()
    first = reader.read(alert_files[:2])
    second = reader.read(alert_files[2:4])
    assert first[0].schema is second[1].schema
    assert reader.report.files == 4
