"""Science modules on real ZTF alerts, checked against independent pure-Python rules.

The built-in modules run on a pyarrow table of ~100 real alerts spread over a
night; every output is compared with a per-alert computation written from the
modules' documented rules, not from their code. ``run_modules`` (the body of
Spark's ``mapInArrow``), ``usable``, ``resolve_modules``, the cone-search
cross-match and the Spark-to-Arrow type names are tested the same way, without
Spark.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from alertbench.broker.batch.science import (
    ScienceModule,
    resolve_modules,
    run_modules,
    science_module,
    usable,
)
from alertbench.broker.batch.science.arrow import arrow_type
from alertbench.broker.batch.science.builtin import context, early_sn, lightcurve, sso
from alertbench.broker.batch.science.crossmatch import crossmatch_module
from alertbench.errors import ConfigError

N_ALERTS = 100
CANDIDATE_FIELDS = [
    "jd",
    "fid",
    "magpsf",
    "jdstarthist",
    "ssdistnr",
    "ssmagnr",
    "ssnamenr",
    "distpsnr1",
    "sgscore1",
    "isdiffpos",
    "ra",
    "dec",
    "rb",
    "nbad",
    "candid",
]
BUILTINS = ["sso", "context", "lightcurve", "early_sn"]


# --- data -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def records(alert_files: list[Path]) -> list[dict[str, Any]]:
    """~100 real alerts spread evenly over the night (one record per file)."""
    step = max(1, len(alert_files) // N_ALERTS)
    out = []
    for path in alert_files[::step][:N_ALERTS]:
        with path.open("rb") as fo:
            (record,) = list(fastavro.reader(fo))
        out.append(record)
    assert len(out) == min(N_ALERTS, len(alert_files))
    return out


def alert_table(records: list[dict[str, Any]]) -> pa.Table:
    """Candidate fields at top level, plus the history as pyarrow infers it."""
    columns: dict[str, list[Any]] = {
        name: [r["candidate"][name] for r in records] for name in CANDIDATE_FIELDS
    }
    columns["prv_candidates"] = [r["prv_candidates"] for r in records]
    return pa.table(columns)


@pytest.fixture(scope="module")
def table(records: list[dict[str, Any]]) -> pa.Table:
    t = alert_table(records)
    assert pa.types.is_list(t.schema.field("prv_candidates").type)
    return t


# --- independent expectations -----------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _norm(value: Any) -> Any:
    """NaN and None are both "no value"; numpy scalars become Python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if _missing(value) else value


def as_list(values: Any) -> list[Any]:
    """A module output (numpy array, pyarrow array, pandas Series or list) as Python values."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_pylist()
    elif isinstance(values, np.ndarray | pd.Series):
        values = values.tolist()
    return [_norm(v) for v in values]


def expected_sso(c: dict[str, Any]) -> tuple[bool, str | None]:
    dist, mag, name = c["ssdistnr"], c["ssmagnr"], c["ssnamenr"]
    hit = (
        dist is not None
        and 0 <= dist < 5
        and mag is not None
        and mag > 0
        and name is not None
        and name != "null"
    )
    return hit, (name if hit else None)


def expected_context(c: dict[str, Any]) -> tuple[float | None, float | None, bool]:
    dist = c["distpsnr1"] if c["distpsnr1"] is not None and c["distpsnr1"] >= 0 else None
    score = c["sgscore1"] if c["sgscore1"] is not None and c["sgscore1"] >= 0 else None
    near = dist is not None and score is not None and dist < 1.5 and score > 0.7
    return dist, score, near


def expected_lightcurve(c: dict[str, Any], prv: list[dict[str, Any]] | None) -> dict[str, set]:
    """Allowed values of each lightcurve column (several only when history entries tie in jd)."""
    dets = [p for p in prv or [] if p["magpsf"] is not None]
    out: dict[str, set] = {}
    for band, f in (("g", 1), ("r", 2)):
        out[f"ndet_{band}"] = {sum(p["fid"] == f for p in dets) + (c["fid"] == f)}
    out["duration"] = {c["jd"] - c["jdstarthist"]}
    earlier = [p for p in dets if p["fid"] == c["fid"] and p["jd"] < c["jd"]]
    if earlier:
        last_jd = max(p["jd"] for p in earlier)
        slopes = {
            (c["magpsf"] - p["magpsf"]) / (c["jd"] - last_jd) for p in earlier if p["jd"] == last_jd
        }
        out["rise_rate"] = {max(0.0, -s) for s in slopes}
        out["fade_rate"] = {max(0.0, s) for s in slopes}
    else:
        out["rise_rate"] = out["fade_rate"] = {None}

    def latest(f: int) -> tuple[float | None, set[float]]:
        # Up to the alert's time: a feature at alert time never sees the future.
        points = [(p["jd"], p["magpsf"]) for p in dets if p["fid"] == f and p["jd"] <= c["jd"]]
        if c["fid"] == f:
            points.append((c["jd"], c["magpsf"]))
        if not points:
            return None, set()
        top = max(jd for jd, _ in points)
        return top, {m for jd, m in points if jd == top}

    (g_jd, g_mags), (r_jd, r_mags) = latest(1), latest(2)
    if g_jd is not None and r_jd is not None and abs(g_jd - r_jd) < 1.0:
        out["color_gr"] = {g - r for g in g_mags for r in r_mags}
    else:
        out["color_gr"] = {None}
    return out


def early_sn_score(
    isdiffpos: str,
    duration: float | None,
    rise_rate: float | None,
    ndet: int,
    near_star: bool | None,
    sso_candidate: bool | None,
) -> float:
    """The docstring's logistic; 0 for point sources and known asteroids."""
    if near_star or sso_candidate:
        return 0.0
    positive = isdiffpos in ("t", "1")
    young = duration is not None and duration < 20
    rising = rise_rate is not None and rise_rate > 0
    several = ndet >= 2
    logit = -3.0 + 1.5 * positive + 1.5 * young + 2.0 * rising + 1.0 * several
    return 1.0 / (1.0 + math.exp(-logit))


def expected_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every module column of every alert, as a set of allowed values."""
    rows = []
    for r in records:
        c = r["candidate"]
        hit, name = expected_sso(c)
        dist, score, near = expected_context(c)
        row: dict[str, Any] = {
            "sso_candidate": {hit},
            "sso_name": {name},
            "ps1_distance": {dist},
            "ps1_sgscore": {score},
            "near_star": {near},
        }
        row.update(expected_lightcurve(c, r["prv_candidates"]))
        (duration,) = row["duration"]
        (ndet_g,), (ndet_r,) = row["ndet_g"], row["ndet_r"]
        row["early_sn_score"] = {
            early_sn_score(c["isdiffpos"], duration, rise, ndet_g + ndet_r, near, hit)
            for rise in row["rise_rate"]
        }
        rows.append(row)
    return rows


def assert_column(name: str, got: list[Any], allowed: list[set], *, approx: bool = False) -> None:
    assert len(got) == len(allowed), name
    bad = []
    for i, (value, ok) in enumerate(zip(got, allowed, strict=True)):
        if approx and value is not None:
            fine = any(a is not None and value == pytest.approx(a, rel=1e-12) for a in ok)
        else:
            fine = value in ok
        if not fine:
            bad.append((i, value, sorted(ok, key=repr)[:4]))
    assert not bad, f"{name}: {len(bad)} alert(s) differ (index, got, some allowed): {bad[:5]}"


@pytest.fixture(scope="module")
def expected(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = expected_rows(records)
    # The sample must exercise every rule, or the comparisons prove little.
    assert sum(True in r["sso_candidate"] for r in rows) >= 5
    assert sum(True in r["near_star"] for r in rows) >= 5
    assert sum(None not in r["rise_rate"] for r in rows) >= 20
    assert sum(None in r["rise_rate"] for r in rows) >= 5
    assert sum(None not in r["color_gr"] for r in rows) >= 5
    assert sum(None in r["color_gr"] for r in rows) >= 5
    assert len({next(iter(r["early_sn_score"])) for r in rows}) >= 3
    return rows


# --- built-in modules, called directly --------------------------------------------------------


def test_sso_module(table: pa.Table, expected: list[dict[str, Any]]) -> None:
    result = sso.fn(table.select(sso.reads).to_pandas())
    assert set(result) == set(sso.adds) == {"sso_candidate", "sso_name"}
    for col in sso.adds:
        assert_column(col, as_list(result[col]), [r[col] for r in expected])
    assert sum(as_list(result["sso_candidate"])) == sum(
        True in r["sso_candidate"] for r in expected
    )


def test_context_module(table: pa.Table, expected: list[dict[str, Any]]) -> None:
    result = context.fn(table.select(context.reads).to_pandas())
    assert set(result) == set(context.adds)
    for col in context.adds:
        assert_column(col, as_list(result[col]), [r[col] for r in expected])


def test_context_sentinels_are_no_neighbour() -> None:
    # ZTF writes -999 for "no PS1 source": not a distance, so never a near star.
    batch = pd.DataFrame(
        {"distpsnr1": [-999.0, 0.5, 0.5, 1.5, 1.49], "sgscore1": [0.99, -999.0, 0.7, 0.9, 0.71]}
    )
    result = context.fn(batch)
    assert as_list(result["ps1_distance"]) == [None, 0.5, 0.5, 1.5, 1.49]
    assert as_list(result["ps1_sgscore"]) == [0.99, None, 0.7, 0.9, 0.71]
    assert as_list(result["near_star"]) == [False, False, False, False, True]


def test_lightcurve_module(table: pa.Table, expected: list[dict[str, Any]]) -> None:
    result = lightcurve.fn(table.select(lightcurve.reads))
    assert set(result) == set(lightcurve.adds)
    for col in lightcurve.adds:
        assert_column(col, as_list(result[col]), [r[col] for r in expected])


def test_lightcurve_without_any_history(records: list[dict[str, Any]]) -> None:
    # A batch where no alert has a history: the column is of Arrow's null type.
    t = alert_table(records[:7]).drop_columns(["prv_candidates"])
    t = t.append_column("prv_candidates", pa.nulls(t.num_rows))
    result = lightcurve.fn(t.select(lightcurve.reads))
    fids = [r["candidate"]["fid"] for r in records[:7]]
    assert as_list(result["ndet_g"]) == [int(f == 1) for f in fids]
    assert as_list(result["ndet_r"]) == [int(f == 2) for f in fids]
    assert as_list(result["rise_rate"]) == [None] * 7
    assert as_list(result["fade_rate"]) == [None] * 7
    assert as_list(result["color_gr"]) == [None] * 7
    assert as_list(result["duration"]) == [
        r["candidate"]["jd"] - r["candidate"]["jdstarthist"] for r in records[:7]
    ]


def _history_row(jd: float, fid: int, magpsf: float | None) -> dict[str, Any]:
    return {"jd": jd, "fid": fid, "magpsf": magpsf}


def test_lightcurve_on_plain_histories() -> None:
    rows = [
        # g now at 18.0; earlier g at 18.5 two days before, r 0.5 day before: rising, colour.
        (100.0, 1, 18.0, 90.0, [_history_row(98.0, 1, 18.5), _history_row(99.5, 2, 17.7)]),
        # r now at 17.0, fading from 16.0 one day before; a non-detection does not count.
        (200.0, 2, 17.0, 150.0, [_history_row(199.0, 2, 16.0), _history_row(199.5, 2, None)]),
        # r now; latest g 1.5 days before: too far apart for a colour.
        (300.0, 2, 19.0, 299.0, [_history_row(298.5, 1, 19.4)]),
        (400.0, 1, 20.0, 400.0, None),
    ]
    t = pa.table(
        {
            "jd": [r[0] for r in rows],
            "fid": [r[1] for r in rows],
            "magpsf": [r[2] for r in rows],
            "jdstarthist": [r[3] for r in rows],
            "prv_candidates": [r[4] for r in rows],
        }
    )
    result = lightcurve.fn(t)
    assert as_list(result["ndet_g"]) == [2, 0, 1, 1]
    assert as_list(result["ndet_r"]) == [1, 2, 1, 0]
    assert as_list(result["duration"]) == [10.0, 50.0, 1.0, 0.0]
    assert as_list(result["rise_rate"]) == [0.25, 0.0, None, None]
    assert as_list(result["fade_rate"]) == [0.0, 1.0, None, None]
    assert as_list(result["color_gr"]) == pytest.approx([18.0 - 17.7, None, None, None])


def test_lightcurve_colour_treats_both_bands_alike() -> None:
    # A history holding detections after the alert (as some real alerts of the night do,
    # see test_lightcurve_module): whichever reading of "latest detection" is meant -
    # the latest of all (g 18.9 - r 18.2) or the latest up to the alert (no r yet: null) -
    # both bands must be read the same way.
    t = pa.table(
        {
            "jd": [100.0],
            "fid": [1],
            "magpsf": [18.0],
            "jdstarthist": [99.0],
            "prv_candidates": [[_history_row(100.5, 2, 18.2), _history_row(100.6, 1, 18.9)]],
        }
    )
    (colour,) = as_list(lightcurve.fn(t)["color_gr"])
    # Up to the alert there is no r detection yet: no colour.
    assert colour is None


def _with_columns(t: pa.Table, module: ScienceModule, result: dict[str, Any]) -> pa.Table:
    for col, spark_type in module.adds.items():
        values = result[col]
        if not isinstance(values, pa.Array):
            values = pa.array(values, type=arrow_type(spark_type), from_pandas=True)
        t = t.append_column(col, values.cast(arrow_type(spark_type)))
    return t


def test_early_sn_module(table: pa.Table) -> None:
    t = table
    for m in (sso, context, lightcurve):
        inputs = t.select(m.reads)
        t = _with_columns(t, m, m.fn(inputs if m.arrow else inputs.to_pandas()))
    batch = t.select(early_sn.reads).to_pandas()
    result = early_sn.fn(batch)
    assert set(result) == {"early_sn_score"}
    rows = t.select(early_sn.reads).to_pylist()
    allowed = [
        {
            early_sn_score(
                row["isdiffpos"],
                row["duration"],
                row["rise_rate"],
                row["ndet_g"] + row["ndet_r"],
                row["near_star"],
                row["sso_candidate"],
            )
        }
        for row in rows
    ]
    scores = as_list(result["early_sn_score"])
    assert_column("early_sn_score", scores, allowed, approx=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    vetoed = [i for i, row in enumerate(rows) if row["near_star"] or row["sso_candidate"]]
    assert vetoed
    assert all(scores[i] == 0.0 for i in vetoed)


def test_early_sn_formula_on_plain_rows() -> None:
    batch = pd.DataFrame(
        {
            "isdiffpos": ["t", "f", "1", "t", "t"],
            "duration": [5.0, 50.0, 1.0, 2.0, 2.0],
            "rise_rate": [0.3, np.nan, 0.0, 0.5, 0.5],
            "ndet_g": np.array([1, 0, 1, 2, 2], dtype=np.int32),
            "ndet_r": np.array([1, 1, 0, 2, 2], dtype=np.int32),
            "near_star": [False, False, False, True, False],
            "sso_candidate": [False, False, False, False, True],
        }
    )
    scores = as_list(early_sn.fn(batch)["early_sn_score"])

    def logistic(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x))

    assert scores == pytest.approx(
        [logistic(-3 + 1.5 + 1.5 + 2 + 1), logistic(-3.0), logistic(-3 + 1.5 + 1.5), 0.0, 0.0],
        rel=1e-12,
    )


# --- run_modules ------------------------------------------------------------------------------


def run(modules: list[ScienceModule], t: pa.Table, chunk: int = 30) -> pa.Table:
    batches = list(run_modules(modules, iter(t.to_batches(max_chunksize=chunk))))
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    return pa.Table.from_batches(batches)


def test_run_modules_builtins(table: pa.Table, expected: list[dict[str, Any]]) -> None:
    modules = resolve_modules(BUILTINS)
    out = run(modules, table)
    assert out.num_rows == table.num_rows
    added = [c for m in modules for c in m.adds]
    assert out.column_names == [
        *table.column_names,
        *added,
        "science_start",
        "science_end",
        "science_errors",
    ]
    assert out.select(table.column_names).equals(table)
    for m in modules:
        for col, spark_type in m.adds.items():
            assert out.schema.field(col).type == arrow_type(spark_type), col
    assert out.schema.field("science_start").type == pa.timestamp("us", tz="UTC")
    assert out.schema.field("science_end").type == pa.timestamp("us", tz="UTC")
    assert out.schema.field("science_errors").type == pa.list_(pa.string())
    starts = out["science_start"].to_pylist()
    ends = out["science_end"].to_pylist()
    assert all(s is not None and s <= e for s, e in zip(starts, ends, strict=True))
    assert out["science_errors"].to_pylist() == [[]] * table.num_rows
    for col in added:
        assert_column(
            col,
            as_list(out[col]),
            [r[col] for r in expected],
            approx=col == "early_sn_score",
        )


def test_failing_module_leaves_nulls_and_later_modules_run(table: pa.Table) -> None:
    @science_module("boom", reads=["jd"], adds={"boom_value": "double", "boom_flag": "boolean"})
    def boom(batch: pd.DataFrame) -> dict[str, Any]:
        raise RuntimeError("this module always fails")

    @science_module("after", reads=["jd"], adds={"jd_plus_one": "double"})
    def after(batch: pd.DataFrame) -> dict[str, Any]:
        return {"jd_plus_one": batch["jd"] + 1.0}

    assert isinstance(boom, ScienceModule)
    assert (boom.name, boom.reads, boom.arrow) == ("boom", ["jd"], False)
    out = run([boom, after], table)
    n = table.num_rows
    assert out.schema.field("boom_value").type == pa.float64()
    assert out.schema.field("boom_flag").type == pa.bool_()
    assert out["boom_value"].null_count == n
    assert out["boom_flag"].null_count == n
    assert out["science_errors"].to_pylist() == [["boom"]] * n
    assert out["jd_plus_one"].to_pylist() == [jd + 1.0 for jd in table["jd"].to_pylist()]
    assert out.select(table.column_names).equals(table)


def test_module_with_wrong_row_count_fails(table: pa.Table) -> None:
    @science_module("short", reads=["jd"], adds={"short_jd": "double"})
    def short(batch: pd.DataFrame) -> dict[str, Any]:
        return {"short_jd": batch["jd"].to_numpy()[:-1]}

    @science_module("missing", reads=["jd"], adds={"a": "double", "b": "double"})
    def missing(batch: pd.DataFrame) -> dict[str, Any]:
        return {"a": batch["jd"].to_numpy()}  # no "b"

    out = run([short, missing, sso], table)
    n = table.num_rows
    assert out["short_jd"].null_count == n
    assert out["a"].null_count == n
    assert out["b"].null_count == n
    assert out["science_errors"].to_pylist() == [["short", "missing"]] * n
    assert out["sso_candidate"].null_count == 0


def test_failure_is_per_batch(table: pa.Table) -> None:
    # Fails only on batches holding a g-band alert: the other batches are untouched.
    @science_module("no_g", reads=["fid"], adds={"fid_copy": "bigint"})
    def no_g(batch: pd.DataFrame) -> dict[str, Any]:
        if (batch["fid"] == 1).any():
            raise ValueError("g band")
        return {"fid_copy": batch["fid"].to_numpy()}

    chunk = 10
    out = run([no_g], table, chunk=chunk)
    fids = table["fid"].to_pylist()
    errors = out["science_errors"].to_pylist()
    copies = out["fid_copy"].to_pylist()
    for start in range(0, len(fids), chunk):
        part = fids[start : start + chunk]
        bad = 1 in part
        assert errors[start : start + chunk] == [["no_g"] if bad else []] * len(part)
        assert copies[start : start + chunk] == ([None] * len(part) if bad else part)
    assert any(1 in fids[s : s + chunk] for s in range(0, len(fids), chunk))
    assert any(1 not in fids[s : s + chunk] for s in range(0, len(fids), chunk))


def test_module_reads_an_earlier_modules_column(table: pa.Table) -> None:
    @science_module("sso_int", reads=["sso_candidate", "jd"], adds={"sso_as_int": "int"})
    def sso_int(batch: pd.DataFrame) -> dict[str, Any]:
        return {"sso_as_int": batch["sso_candidate"].astype(int).to_numpy()}

    out = run([sso, sso_int], table)
    assert out.schema.field("sso_as_int").type == pa.int32()
    assert out["sso_as_int"].to_pylist() == [int(v) for v in out["sso_candidate"].to_pylist()]
    assert out["science_errors"].to_pylist() == [[]] * table.num_rows
    assert sum(out["sso_as_int"].to_pylist()) > 0


def test_arrow_module_gets_a_table(table: pa.Table, records: list[dict[str, Any]]) -> None:
    @science_module("nhist", reads=["prv_candidates"], adds={"nhist": "int"}, arrow=True)
    def nhist(t: pa.Table) -> dict[str, Any]:
        assert isinstance(t, pa.Table)
        assert t.column_names == ["prv_candidates"]
        return {"nhist": pc.list_value_length(t["prv_candidates"])}

    out = run([nhist], table)
    assert out["nhist"].to_pylist() == [len(r["prv_candidates"] or []) for r in records]
    assert out["science_errors"].to_pylist() == [[]] * table.num_rows


# --- usable -----------------------------------------------------------------------------------


def test_usable_keeps_all_builtins_on_ztf_columns(table: pa.Table) -> None:
    modules = resolve_modules(BUILTINS)
    keep, notes = usable(modules, table.column_names)
    assert [m.name for m in keep] == BUILTINS
    assert notes == []


def test_usable_skips_missing_inputs_and_dependents(table: pa.Table) -> None:
    columns = [c for c in table.column_names if c != "ssnamenr"]
    keep, notes = usable(resolve_modules(BUILTINS), columns)
    assert [m.name for m in keep] == ["context", "lightcurve"]
    assert notes == [
        "science module sso skipped: no column ssnamenr",
        "science module early_sn skipped: no column sso_candidate",
    ]


def test_usable_respects_order(table: pa.Table) -> None:
    keep, notes = usable(resolve_modules(["early_sn", *BUILTINS[:3]]), table.column_names)
    assert [m.name for m in keep] == ["sso", "context", "lightcurve"]
    assert notes == [
        "science module early_sn skipped: no column duration, rise_rate, ndet_g, ndet_r, "
        "near_star, sso_candidate"
    ]


# --- resolve_modules --------------------------------------------------------------------------


def test_resolve_builtins_by_name() -> None:
    modules = resolve_modules(["lightcurve", "sso"])
    assert modules == [lightcurve, sso]
    assert resolve_modules([]) == []


def test_resolve_unknown_name_lists_builtins() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_modules(["sso", "nosuchmodule"])
    message = str(info.value)
    assert "nosuchmodule" in message
    for name in BUILTINS:
        assert name in message
    assert "crossmatch" in message


def test_resolve_crossmatch_needs_a_catalogue() -> None:
    with pytest.raises(ConfigError, match="catalogue"):
        resolve_modules(["crossmatch"])


def test_resolve_crossmatch_with_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    pd.DataFrame({"ra": [10.0], "dec": [20.0], "name": ["x"]}).to_csv(path, index=False)
    (m,) = resolve_modules(["crossmatch"], catalogue=str(path))
    assert m.name == "crossmatch"
    assert m.reads == ["ra", "dec"]
    assert m.adds == {"xmatch_name": "string", "xmatch_sep_arcsec": "double"}


def test_resolve_by_module_and_object() -> None:
    assert resolve_modules(["alertbench.broker.batch.science.builtin:sso"]) == [sso]
    assert resolve_modules(["alertbench.broker.batch.science.builtin:early_sn", "context"]) == [
        early_sn,
        context,
    ]


def test_resolve_object_that_is_not_a_module() -> None:
    with pytest.raises(ConfigError, match="not a ScienceModule"):
        resolve_modules(["math:pi"])


def test_resolve_unimportable_reference() -> None:
    with pytest.raises(ConfigError, match="nosuch_package_xyz"):
        resolve_modules(["nosuch_package_xyz.mod:obj"])
    with pytest.raises(ConfigError, match="no_such_attr"):
        resolve_modules(["alertbench.broker.batch.science.builtin:no_such_attr"])


# --- crossmatch -------------------------------------------------------------------------------


def sep_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angular separation by the haversine formula (stable at small angles)."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    dp, dl = p2 - p1, math.radians(ra2 - ra1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0


FAR_SOURCES = [(0.5, -89.5, "far-south"), (200.0, 10.0, "far-a"), (120.25, -40.75, "far-b")]


def catalogue_frame(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[tuple]]:
    """5 alerts' exact positions (distinct), named src-<candid>, plus far-away sources."""
    chosen: dict[tuple[float, float], int] = {}
    for r in records:
        pos = (r["candidate"]["ra"], r["candidate"]["dec"])
        if pos not in chosen:
            chosen[pos] = r["candidate"]["candid"]
        if len(chosen) == 5:
            break
    rows = [(ra, dec, f"src-{candid}") for (ra, dec), candid in chosen.items()] + FAR_SOURCES
    frame = pd.DataFrame(rows, columns=["ra", "dec", "name"])
    return frame, rows


def check_crossmatch(m: ScienceModule, table: pa.Table, rows: list[tuple]) -> int:
    result = m.fn(table.select(m.reads).to_pandas())
    names = as_list(result["xmatch_name"])
    seps = as_list(result["xmatch_sep_arcsec"])
    matched = 0
    for ra, dec, name, sep in zip(
        table["ra"].to_pylist(), table["dec"].to_pylist(), names, seps, strict=True
    ):
        at_position = {n for r, d, n in rows if (r, d) == (ra, dec)}
        if at_position:
            matched += 1
            assert name in at_position, (ra, dec)
            assert sep is not None
            assert sep < 1e-3, (ra, dec, sep)
        else:
            assert min(sep_arcsec(ra, dec, r, d) for r, d, _ in rows) > 1.5
            assert (name, sep) == (None, None), (ra, dec)
    return matched


def test_crossmatch_csv(tmp_path: Path, table: pa.Table, records: list[dict[str, Any]]) -> None:
    frame, rows = catalogue_frame(records)
    path = tmp_path / "catalogue.csv"
    frame.to_csv(path, index=False)
    m = crossmatch_module(path)
    matched = check_crossmatch(m, table, rows)
    positions = {(ra, dec) for ra, dec, _ in rows}
    assert matched == sum(
        (r["candidate"]["ra"], r["candidate"]["dec"]) in positions for r in records
    )
    assert 5 <= matched < table.num_rows
    out = run([m], table)
    assert out.schema.field("xmatch_name").type == pa.string()
    assert out.schema.field("xmatch_sep_arcsec").type == pa.float64()
    assert out["xmatch_name"].null_count == table.num_rows - matched
    assert out["science_errors"].to_pylist() == [[]] * table.num_rows


def test_crossmatch_parquet(tmp_path: Path, table: pa.Table, records: list[dict[str, Any]]) -> None:
    frame, rows = catalogue_frame(records)
    path = tmp_path / "catalogue.parquet"
    frame.to_parquet(path, index=False)
    matched = check_crossmatch(crossmatch_module(path), table, rows)
    assert matched >= 5


def test_crossmatch_catalogue_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"ra": [1.0], "dec": [2.0], "label": ["x"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="name") as info:
        crossmatch_module(path)
    assert str(path) in str(info.value)
    assert "ra" not in str(info.value).split("column(s)")[-1]


def test_crossmatch_radius(tmp_path: Path, table: pa.Table) -> None:
    ra0, dec0 = table["ra"][0].as_py(), table["dec"][0].as_py()
    path = tmp_path / "near.csv"
    pd.DataFrame({"ra": [ra0], "dec": [dec0 + 2.0 / 3600.0], "name": ["two-arcsec"]}).to_csv(
        path, index=False
    )
    same = [
        i
        for i, (ra, dec) in enumerate(
            zip(table["ra"].to_pylist(), table["dec"].to_pylist(), strict=True)
        )
        if (ra, dec) == (ra0, dec0)
    ]
    batch = table.select(["ra", "dec"]).to_pandas()

    default = crossmatch_module(path).fn(batch)
    assert as_list(default["xmatch_name"]) == [None] * table.num_rows

    wide = crossmatch_module(path, radius_arcsec=3.0).fn(batch)
    names = as_list(wide["xmatch_name"])
    seps = as_list(wide["xmatch_sep_arcsec"])
    assert [i for i, n in enumerate(names) if n is not None] == same
    for i in same:
        assert names[i] == "two-arcsec"
        assert seps[i] == pytest.approx(2.0, abs=1e-4)


# --- arrow_type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected_type"),
    [
        ("double", pa.float64()),
        ("float", pa.float32()),
        ("int", pa.int32()),
        ("bigint", pa.int64()),
        ("long", pa.int64()),
        ("boolean", pa.bool_()),
        ("string", pa.string()),
        (" DOUBLE ", pa.float64()),
        ("Boolean", pa.bool_()),
    ],
)
def test_arrow_type(name: str, expected_type: pa.DataType) -> None:
    assert arrow_type(name) == expected_type


def test_arrow_type_rejects_unsupported() -> None:
    with pytest.raises(ValueError, match="map<string,int>"):
        arrow_type("map<string,int>")
