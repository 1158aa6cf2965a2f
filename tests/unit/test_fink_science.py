"""The fink profile against fink-science 7.4.0's own functions, on real alerts.

Every oracle is Fink's function itself (``.func`` of its pandas UDF, which
runs without a Spark session), fed the same alerts the broker decodes:
the 1,084 alerts of the shared ZTF night and the real LSSTCam alerts. The
alerts reach the modules as the broker hands them over: decoded by the
native decoder into raw rows, then run by ``run_modules``.

fink-science pairs each catalogue source with its nearest alert of the
batch, so of two alerts near one source in one batch only the nearer gets
the label. alertbench gives each alert its own nearest source within the
radius, whatever the batch. Where the two differ, the test checks that the
difference is exactly that case.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alertbench.alerts.files import find_alert_files
from alertbench.broker.batch.raw import records_raw
from alertbench.broker.batch.science import (
    ScienceModule,
    ScienceStats,
    profile_modules,
    resolve_modules,
    run_modules,
    usable,
)
from alertbench.broker.batch.science import module as module_state
from alertbench.broker.batch.science.catalogues import (
    GAIA_BRIGHT,
    GAIA_HEADER,
    GAIA_RECORD,
    GCVS,
    MANGROVE,
    VSX,
    Catalogue,
    CatalogueFile,
)
from alertbench.broker.batch.science.fink import (
    BRIGHT_STAR_RADIUS_ARCSEC,
    MANGROVE_RADIUS_ARCSEC,
    VARIABLE_STAR_RADIUS_ARCSEC,
    variable_star_module,
)
from alertbench.errors import ConfigError
from compare import same
from records import read_records

pytestmark = pytest.mark.slow
FINK = profile_modules("fink")


def _fresh() -> None:
    """Forget every worker's states and objects, as a new Python worker would."""
    module_state._STATES.clear()
    module_state._OBJECTS.clear()


def _science(raw: pa.Table, survey: str, chunk: int = 500, names=FINK) -> pa.Table:
    _fresh()
    modules, _ = usable(resolve_modules(names, survey=survey), raw.column_names, survey)
    batches = iter(raw.to_batches(max_chunksize=chunk))
    return pa.Table.from_batches(list(run_modules(modules, batches)))


@pytest.fixture(scope="module")
def ztf(alert_files) -> tuple[list[dict], pa.Table, pa.Table]:
    """The shared night: records, raw rows, and the fink profile's columns on them."""
    schema, records = read_records(alert_files)
    raw = records_raw(schema, records)
    return records, raw, _science(raw, "ztf")


@pytest.fixture(scope="module")
def rubin(shared_data: Path) -> tuple[list[dict], pa.Table, pa.Table]:
    """Real LSSTCam alerts (schema 9.0), through the fink profile."""
    folder = shared_data / "lsst" / "lsstcam-20250906-v9.0"
    schema, records = read_records(find_alert_files([folder]))
    raw = records_raw(schema, records)
    return records, raw, _science(raw, "lsst", chunk=40)


def _fink_labels(ra: np.ndarray, dec: np.ndarray, catalogue: str) -> list[str]:
    from fink_science.ztf.xmatch.processor import crossmatch_other_catalog

    n = len(ra)
    return crossmatch_other_catalog.func(
        pd.Series(np.arange(n)), pd.Series(ra), pd.Series(dec), pd.Series([catalogue] * n)
    ).to_list()


def _fink_mangrove(ra: np.ndarray, dec: np.ndarray) -> list[dict]:
    from fink_science.ztf.xmatch.processor import crossmatch_mangrove

    n = len(ra)
    return crossmatch_mangrove.func(
        pd.Series(np.arange(n)),
        pd.Series(ra),
        pd.Series(dec),
        pd.Series([MANGROVE_RADIUS_ARCSEC] * n),
    ).to_list()


def _first_of_object(keys: list) -> np.ndarray:
    """For each alert, the row of its object's first alert (stream order)."""
    first: dict = {}
    return np.array([first.setdefault(k, i) for i, k in enumerate(keys)])


def _check_rule_and_differences(ours, theirs, raw, catalogue, radius, values, key="objectId"):
    """alertbench's rule holds exactly, and differs from Fink's only for repeated objects.

    alertbench: each object takes the nearest source within ``radius`` of its
    first alert's position (``values(rows)`` gives the columns of source rows).
    Fink pairs each source with its nearest alert of the batch, so it can differ
    only where an object has several alerts in the batch.
    """
    keys = raw[key].to_pylist()
    first = _first_of_object(keys)
    ra, dec = raw["ra"].to_numpy(), raw["dec"].to_numpy()
    rows, _ = catalogue.nearest(ra[first], dec[first], radius)
    assert ours == values(rows)
    counts = pd.Series(keys).value_counts()
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    assert all(counts[keys[i]] > 1 for i in differ), [(i, ours[i], theirs[i]) for i in differ]
    return differ


def _labels(catalogue: Catalogue, column: str):
    def values(rows):
        taken = catalogue.values(column, rows).to_pylist()
        return ["Unknown" if v is None else v.strip() for v in taken]

    return values


@pytest.mark.parametrize(("name", "source"), [("vsx", VSX), ("gcvs", GCVS)])
def test_variable_star_labels_equal_finks_on_the_shared_night(ztf, name, source) -> None:
    _, raw, science = ztf
    theirs = _fink_labels(raw["ra"].to_numpy(), raw["dec"].to_numpy(), name)
    ours = science[name].to_pylist()
    labelled = [i for i, v in enumerate(ours) if v != "Unknown"]
    assert labelled, f"no alert of the night near a {name} star"
    cat = Catalogue(source)
    differ = _check_rule_and_differences(
        ours, theirs, raw, cat, VARIABLE_STAR_RADIUS_ARCSEC, _labels(cat, source.columns[0])
    )
    assert len(differ) <= len(labelled) // 4
    if name == "vsx":
        # 47 alerts (of 43 objects) lie within 1.5" of a VSX star; Fink labels at most those.
        own, _ = cat.nearest(raw["ra"].to_numpy(), raw["dec"].to_numpy(), 1.5)
        assert (own >= 0).sum() == 47
        assert 43 <= sum(v != "Unknown" for v in theirs) <= 47


def test_mangrove_galaxies_equal_finks_on_the_shared_night(ztf) -> None:
    _, raw, science = ztf
    theirs = _fink_mangrove(raw["ra"].to_numpy(), raw["dec"].to_numpy())

    def fink(d: dict) -> tuple:
        def value(k, cast):
            return None if d[k] == "None" else cast(d[k])

        return (
            value("HyperLEDA_name", str),
            value("2MASS_name", str),
            value("lum_dist", float),
            value("ang_dist", float),
        )

    columns = ["mangrove_HyperLEDA_name", "mangrove_2MASS_name"]
    columns += ["mangrove_lum_dist", "mangrove_ang_dist"]
    ours = list(zip(*(science[c].to_pylist() for c in columns), strict=True))
    expected = [fink(d) for d in theirs]
    assert sum(o[2] is not None for o in ours) >= 10
    cat = Catalogue(MANGROVE)

    def values(rows):
        found = [cat.values(c, rows).to_pylist() for c in MANGROVE.columns]
        return [
            (None, None, None, None) if r < 0 else tuple(None if v == "None" else v for v in row)
            for r, row in zip(rows, zip(*found, strict=True), strict=True)
        ]

    _check_rule_and_differences(ours, expected, raw, cat, MANGROVE_RADIUS_ARCSEC, values)


def _fink_roid(records: list[dict]) -> list[int]:
    from fink_science.ztf.asteroids.processor import roid_catcher

    def history(r, field):
        prv = [p[field] for p in r["prv_candidates"] or []]
        # As Spark hands arrays to a pandas UDF: floats, NaN for a missing value.
        return np.array(
            [math.nan if v is None else v for v in [*prv, r["candidate"][field]]], float
        )

    cand = pd.DataFrame([r["candidate"] for r in records])
    return roid_catcher.func(
        pd.Series([history(r, "jd") for r in records]),
        pd.Series([history(r, "magpsf") for r in records]),
        cand["ndethist"],
        cand["sgscore1"].astype(float),
        cand["ssdistnr"].astype(float),
        cand["distpsnr1"].astype(float),
    ).to_list()


def test_roid_equals_finks_roid_catcher_on_every_alert(ztf) -> None:
    records, _, science = ztf
    ours = science["roid"].to_pylist()
    assert ours == _fink_roid(records)
    # 204 alerts lie within 5" of a known asteroid; every flag occurs.
    assert sum(v == 3 for v in ours) == 204
    assert set(ours) == {0, 1, 2, 3}


def test_positions_just_inside_and_outside_each_radius_at_real_catalogue_stars() -> None:
    cases = [
        ("vsx", VSX, "VType", VARIABLE_STAR_RADIUS_ARCSEC),
        ("gcvs", GCVS, "VarType", VARIABLE_STAR_RADIUS_ARCSEC),
    ]
    rng = np.random.default_rng(20231018)
    for name, source, column, radius in cases:
        cat = Catalogue(source)
        # Isolated stars: no other source within four radii, so only the offset decides.
        picks = []
        for k in rng.permutation(len(cat))[:400]:
            near = cat.tree.query_ball_point(cat.vectors[k], 4 * radius / 206264.8)
            if len(near) == 1:
                picks.append(k)
            if len(picks) == 12:
                break
        ra0 = np.degrees(np.arctan2(cat.vectors[picks, 1], cat.vectors[picks, 0])) % 360
        dec0 = np.degrees(np.arcsin(cat.vectors[picks, 2]))
        offsets = np.array([radius - 0.05, radius + 0.05] * 6)  # arcsec, alternately
        ra = ra0 + offsets / 3600.0 / np.cos(np.radians(dec0))
        raw = pa.table({"ra": ra, "dec": dec0, "objectId": [f"ZTF{i}" for i in range(12)]})
        _fresh()
        (module,) = [variable_star_module(name, source, "ztf")]
        out = pa.Table.from_batches(list(run_modules([module], iter(raw.to_batches()))))
        labels = out[name].to_pylist()
        truth = [str(v).strip() for v in cat.table[column].take(picks).to_pylist()]
        assert labels[0::2] == truth[0::2]
        assert labels[1::2] == ["Unknown"] * 6
        # Fink's function agrees: the stars are far apart, one alert each.
        assert _fink_labels(ra, dec0, name) == labels


def test_bright_stars_are_the_nearest_gaia_star_within_20_arcsec(ztf) -> None:
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    _, raw, science = ztf
    cat = Catalogue(GAIA_BRIGHT)
    stars = np.fromfile(GAIA_BRIGHT.path(), dtype=GAIA_RECORD, offset=GAIA_HEADER)
    ra, dec = raw["ra"].to_numpy(), raw["dec"].to_numpy()
    idx, d2d, _ = SkyCoord(ra * u.deg, dec * u.deg).match_to_catalog_sky(
        SkyCoord(stars["ra"] * u.deg, stars["dec"] * u.deg)
    )
    near = d2d.arcsec < BRIGHT_STAR_RADIUS_ARCSEC
    assert science["near_brightstar"].to_pylist() == near.tolist()
    got = science["brightstar_sep_arcsec"].to_numpy(zero_copy_only=False)
    np.testing.assert_allclose(got[near], d2d.arcsec[near], atol=1e-6)
    assert np.isnan(got[~near]).all()
    mags = science["brightstar_gmag"].to_numpy(zero_copy_only=False)
    np.testing.assert_allclose(mags[near], stars["mag"][idx[near]], rtol=1e-6)
    assert len(cat) == 482_176


def test_positions_just_inside_and_outside_20_arcsec_of_bright_stars() -> None:
    # No alert of the shared night lies near a G < 10 star (ZTF masks them): place some.
    cat = Catalogue(GAIA_BRIGHT)
    stars = np.fromfile(GAIA_BRIGHT.path(), dtype=GAIA_RECORD, offset=GAIA_HEADER)
    picks = []
    for k in np.random.default_rng(7).permutation(len(stars))[:400]:
        if len(cat.tree.query_ball_point(cat.vectors[k], 80 / 206264.8)) == 1:
            picks.append(k)
        if len(picks) == 10:
            break
    dec0 = stars["dec"][picks]
    offsets = np.array([BRIGHT_STAR_RADIUS_ARCSEC - 0.05, BRIGHT_STAR_RADIUS_ARCSEC + 0.05] * 5)
    ra = stars["ra"][picks] + offsets / 3600.0 / np.cos(np.radians(dec0))
    raw = pa.table({"ra": ra, "dec": dec0, "objectId": [f"ZTF{i}" for i in range(10)]})
    _fresh()
    modules = resolve_modules(["brightstar"], survey="ztf")
    out = pa.Table.from_batches(list(run_modules(modules, iter(raw.to_batches()))))
    assert out["near_brightstar"].to_pylist() == [True, False] * 5
    mags = out["brightstar_gmag"].to_pylist()
    np.testing.assert_allclose(mags[0::2], stars["mag"][picks][0::2], rtol=1e-6)
    assert mags[1::2] == [None] * 5
    seps = out["brightstar_sep_arcsec"].to_numpy(zero_copy_only=False)
    np.testing.assert_allclose(seps[0::2], BRIGHT_STAR_RADIUS_ARCSEC - 0.05, atol=1e-3)


def test_rubin_alerts_get_the_cross_matches_and_is_sso(rubin) -> None:
    records, raw, science = rubin
    ra, dec = raw["ra"].to_numpy(), raw["dec"].to_numpy()
    for name, source in (("vsx", VSX), ("gcvs", GCVS)):
        cat = Catalogue(source)
        _check_rule_and_differences(
            science[name].to_pylist(),
            _fink_labels(ra, dec, name),
            raw,
            cat,
            VARIABLE_STAR_RADIUS_ARCSEC,
            _labels(cat, source.columns[0]),
            key="diaObjectId",
        )
    # Fink's Rubin rule: an alert with an ssSource.
    assert science["is_sso"].to_pylist() == [r.get("ssSource") is not None for r in records]
    assert any(science["is_sso"].to_pylist())
    assert "roid" not in science.column_names  # a ZTF module


def test_one_batch_of_1000_and_ten_of_100_give_equal_columns(ztf) -> None:
    _, raw, _ = ztf
    first = raw.slice(0, 1000)
    whole = _science(first, "ztf", chunk=1000)
    tenths = _science(first, "ztf", chunk=100)
    added = [c for c in whole.column_names if c not in first.column_names]
    added = [c for c in added if not c.startswith("science_")]
    assert len(added) >= 10
    assert whole.select(added).schema == tenths.select(added).schema
    # The light-curve features hold NaN where a feature is refused: NaN equals NaN here.
    assert same(whole.select(added).to_pylist(), tenths.select(added).to_pylist())


def test_static_cross_matches_run_once_per_object(ztf) -> None:
    _, raw, _ = ztf
    _fresh()
    stats = ScienceStats()
    modules, _ = usable(resolve_modules(FINK, survey="ztf"), raw.column_names, "ztf")
    for _ in run_modules(modules, iter(raw.to_batches(max_chunksize=300)), stats):
        pass
    objects = len(set(raw["objectId"].to_pylist()))
    for name in ("vsx", "gcvs", "mangrove", "brightstar"):
        cost = stats.costs[name]
        assert (cost.rows, cost.processed, cost.failed) == (raw.num_rows, objects, 0)
        assert cost.setup_seconds > 0
    assert stats.costs["roid"].processed == raw.num_rows
    table = stats.table()
    assert table.column_names == [
        "module",
        "rows",
        "processed",
        "seconds",
        "failed",
        "setup_seconds",
    ]
    assert table["module"].to_pylist() == [m.name for m in modules]


def test_a_module_that_raises_nulls_its_columns_is_counted_and_the_rest_go_on(ztf) -> None:
    _, raw, _ = ztf

    def boom(batch):
        raise RuntimeError("a model that fails")

    broken = ScienceModule("broken", reads=["ra"], adds={"broken": "double"}, fn=boom)
    _fresh()
    stats = ScienceStats()
    modules = [broken, *resolve_modules(["roid"], survey="ztf")]
    out = pa.Table.from_batches(
        list(run_modules(modules, iter(raw.slice(0, 600).to_batches(max_chunksize=200)), stats))
    )
    assert out.num_rows == 600
    assert out["broken"].null_count == 600
    assert out["roid"].null_count == 0
    assert all(e == ["broken"] for e in out["science_errors"].to_pylist())
    assert (stats.costs["broken"].failed, stats.costs["broken"].processed) == (3, 0)
    assert stats.costs["roid"].failed == 0


def test_a_missing_catalogue_is_refused_when_modules_resolve(tmp_path: Path) -> None:
    missing = CatalogueFile(
        "vsx", "fink_science", "data/catalogs/no-such.parquet", columns=("VType",)
    )
    module = variable_star_module("vsx", missing, "ztf")
    from alertbench.broker.batch.science.registry import check_files

    with pytest.raises(ConfigError) as err:
        check_files([module])
    assert "science module vsx cannot run without" in str(err.value)
    assert str(missing.path()) in str(err.value)


def test_a_module_that_requires_another_must_come_after_it() -> None:
    first = ScienceModule("first", reads=["ra"], adds={"a": "double"}, fn=lambda b: {"a": b["ra"]})
    second = ScienceModule(
        "second", reads=["a"], adds={"b": "double"}, fn=lambda b: {"b": b["a"]}, requires=["first"]
    )
    from alertbench.broker.batch.science.registry import check_requires

    check_requires([first, second])
    with pytest.raises(ConfigError, match="science module second requires first: list it before"):
        check_requires([second, first])
    keep, notes = usable([second], ["ra", "a"])
    assert keep == []
    assert notes == ["science module second skipped: first did not run"]


def test_applies_chooses_rows_and_the_others_get_nulls() -> None:
    calls = []

    def double(batch):
        calls.append(len(batch))
        return {"twice": batch["x"] * 2}

    module = ScienceModule(
        "twice",
        reads=["x"],
        adds={"twice": "double"},
        fn=double,
        applies=lambda t: pa.compute.greater(t["x"], 2.0),
    )
    table = pa.table({"x": [1.0, 3.0, 2.0, 5.0, None]})
    stats = ScienceStats()
    (out,) = list(run_modules([module], iter(table.to_batches()), stats))
    assert out.column("twice").to_pylist() == [None, 6.0, None, 10.0, None]
    assert calls == [2]
    assert (stats.costs["twice"].rows, stats.costs["twice"].processed) == (5, 2)


def test_science_costs_are_staged_with_the_batch(tmp_path: Path, ztf) -> None:
    from alertbench.broker.batch.tasks import STATS_OUTPUT, science_work
    from alertbench.broker.stream.offsets import FileShare

    _, raw, _ = ztf
    staged = tmp_path / "raw" / "night=20231018" / "part-0.parquet"
    staged.parent.mkdir(parents=True)
    pq.write_table(raw.slice(0, 200), staged)
    _fresh()
    modules, _ = usable(resolve_modules(FINK, survey="ztf"), raw.column_names, "ztf")
    work = science_work(tmp_path / "stage", cuts="true", modules=modules, compression="none")
    assert work(FileShare([str(staged)], "batch")) == 200
    (written,) = (tmp_path / "stage" / "batch" / STATS_OUTPUT).glob("*.parquet")
    costs = pq.read_table(written).to_pylist()
    assert [c["module"] for c in costs] == [m.name for m in modules]
    assert all(c["rows"] == 200 and c["failed"] == 0 for c in costs)
