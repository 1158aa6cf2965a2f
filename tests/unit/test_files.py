"""Finding and reading alert packet files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from alertbench.alerts.files import AlertSourceError, find_alert_files, is_alert_file, read_packet


@pytest.fixture
def alerts(tmp_path: Path) -> Path:
    (tmp_path / "a.avro").write_bytes(b"A")
    (tmp_path / "b.avro.gz").write_bytes(gzip.compress(b"B"))
    (tmp_path / "c.txt").write_text("not an alert")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.avro").write_bytes(b"D")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.avro", True),
        ("b.avro.gz", True),
        ("c.txt", False),
        ("d.avro.bak", False),
        ("e.gz", False),
        ("avro", False),
    ],
)
def test_is_alert_file(name: str, expected: bool) -> None:
    assert is_alert_file(Path(name)) is expected


def test_folder_is_searched_recursively_and_sorted(alerts: Path) -> None:
    assert find_alert_files([alerts]) == [
        alerts / "a.avro",
        alerts / "b.avro.gz",
        alerts / "sub" / "d.avro",
    ]


def test_folder_given_as_string(alerts: Path) -> None:
    assert find_alert_files([str(alerts)]) == [
        alerts / "a.avro",
        alerts / "b.avro.gz",
        alerts / "sub" / "d.avro",
    ]


def test_glob(alerts: Path) -> None:
    assert find_alert_files([str(alerts / "*.avro")]) == [alerts / "a.avro"]
    assert find_alert_files([str(alerts / "*.avro*")]) == [alerts / "a.avro", alerts / "b.avro.gz"]
    assert find_alert_files([str(alerts / "**" / "*.avro")]) == [
        alerts / "a.avro",
        alerts / "sub" / "d.avro",
    ]


def test_explicit_file(alerts: Path) -> None:
    assert find_alert_files([alerts / "sub" / "d.avro"]) == [alerts / "sub" / "d.avro"]


def test_duplicates_removed_in_source_order(alerts: Path) -> None:
    found = find_alert_files(
        [alerts / "sub" / "d.avro", alerts, str(alerts / "*.avro"), alerts / "a.avro"]
    )
    assert found == [alerts / "sub" / "d.avro", alerts / "a.avro", alerts / "b.avro.gz"]


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "x.avro"
    with pytest.raises(AlertSourceError) as info:
        find_alert_files([missing])
    assert str(info.value).startswith(f"alert source {str(missing)!r} does not exist")


def test_error_names_the_bad_source_among_good_ones(alerts: Path) -> None:
    with pytest.raises(AlertSourceError, match="nope"):
        find_alert_files([alerts, alerts / "nope"])


def test_folder_without_alerts(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(AlertSourceError) as info:
        find_alert_files([tmp_path])
    assert str(info.value) == f"alert source {str(tmp_path)!r} holds no .avro / .avro.gz files."


def test_glob_matching_nothing(alerts: Path) -> None:
    pattern = str(alerts / "*.parquet")
    with pytest.raises(AlertSourceError, match="holds no"):
        find_alert_files([pattern])


def test_no_sources_gives_no_files() -> None:
    assert find_alert_files([]) == []


def test_read_packet(alerts: Path) -> None:
    payload = bytes(range(256)) * 10
    (alerts / "big.avro.gz").write_bytes(gzip.compress(payload))
    assert read_packet(alerts / "big.avro.gz") == payload
    assert read_packet(alerts / "b.avro.gz") == b"B"
    assert read_packet(alerts / "a.avro") == b"A"
