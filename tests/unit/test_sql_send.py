"""In-process SQL predicates and the encoding of the broker's columns, without Spark."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import fastavro
import pyarrow as pa
import pytest

from alertbench.broker.batch.send import TailEncoder, headers
from alertbench.broker.batch.sql import Predicates, check_predicates, flat_columns
from alertbench.errors import ConfigError

TABLE = pa.table(
    {
        "rb": [0.6, 0.4, None, 0.9],
        "nbad": [0, 0, 1, 0],
        "pixelFlags_bad": [True, False, None, False],
        "near_star": [None, True, False, False],
        "magpsf": [17.0, 18.0, 16.0, 17.4],
        "prv_candidates": pa.array([[], [{"jd": 1.0}], None, []]),
    }
)


def test_predicates_follow_sql_with_null_as_false() -> None:
    cuts, bright, flags = Predicates().masks(
        TABLE,
        [
            "rb >= 0.55 AND nbad = 0",
            "magpsf <= 17.5 AND NOT coalesce(near_star, false)",
            "NOT pixelFlags_bad",
        ],
    )
    assert cuts.to_pylist() == [True, False, False, True]
    assert bright.to_pylist() == [True, False, True, True]
    # Case-sensitive names, and null (row 2) counts as false.
    assert flags.to_pylist() == [False, True, False, True]
    assert Predicates().masks(TABLE, []) == []


def test_nested_columns_are_not_offered_to_sql() -> None:
    assert flat_columns(TABLE.schema) == ["rb", "nbad", "pixelFlags_bad", "near_star", "magpsf"]


def test_a_predicate_that_does_not_evaluate_is_refused_by_name() -> None:
    check_predicates(TABLE.schema, {"broker.cuts": "rb > 0.5"})
    with pytest.raises(ConfigError, match=r"filter red .*fid = 2.*fid"):
        check_predicates(TABLE.schema, {"filter red": "fid = 2"})
    with pytest.raises(ConfigError, match=r"broker\.cuts"):
        check_predicates(TABLE.schema, {"broker.cuts": "rb >>> 2"})


def test_the_tail_is_the_avro_encoding_of_the_added_columns() -> None:
    tail = {
        "type": "record",
        "name": "added",
        "namespace": "alertbench.distribution",
        "fields": [
            {
                "name": "sent_time",
                "type": [{"type": "long", "logicalType": "timestamp-micros"}, "null"],
            },
            {"name": "early_sn_score", "type": ["double", "null"]},
            {
                "name": "science_errors",
                "type": [{"type": "array", "items": ["string", "null"]}, "null"],
            },
        ],
    }
    when = datetime(2026, 11, 29, 3, 0, 0, 123456, tzinfo=UTC)
    rows = [
        {"sent_time": when, "early_sn_score": 0.75, "science_errors": []},
        {"sent_time": None, "early_sn_score": None, "science_errors": ["lightcurve"]},
    ]
    encoded = TailEncoder(tail).encode(rows)
    parsed = fastavro.parse_schema(tail)
    assert [fastavro.schemaless_reader(io.BytesIO(b), parsed) for b in encoded] == rows
    assert headers(1_700_000_000_000_000, 42) == [
        ("alertbench.sent_us", b"1700000000000000"),
        ("alertbench.alert_id", b"42"),
    ]
    assert headers(None, None) == [("alertbench.sent_us", b""), ("alertbench.alert_id", b"")]


def test_no_added_columns_encode_to_nothing() -> None:
    assert TailEncoder({"fields": []}).encode([{}, {}]) == [b"", b""]
