"""The alert sample shipped as package data: real alerts that exercise every filter and module.

Its README states what the sample holds; these tests hold it to that, with the
built-in modules run on the sample exactly as the broker runs them.
"""

from __future__ import annotations

from pathlib import Path

import fastavro
import pyarrow as pa
import pytest

from alertbench.alerts.files import (
    SAMPLE_DIR,
    alert_sources,
    find_alert_files,
    sample_alerts,
)
from alertbench.broker.batch.science import resolve_modules, run_modules

MODULES = ["sso", "context", "lightcurve", "early_sn", "crossmatch"]


def _records(survey: str) -> list[dict]:
    out = []
    for path in find_alert_files([sample_alerts(survey)]):
        with path.open("rb") as fh:
            records = list(fastavro.reader(fh))
        assert len(records) == 1, path
        out.append(records[0])
    return out


@pytest.fixture(scope="module")
def science() -> pa.Table:
    """The sample's ZTF alerts, flattened as the broker does, through every built-in module."""
    rows = []
    for r in _records("ztf"):
        rows.append(
            {**r["candidate"], "objectId": r["objectId"], "prv_candidates": r["prv_candidates"]}
        )
    table = pa.Table.from_pylist(rows)
    modules = resolve_modules(MODULES, catalogue=str(SAMPLE_DIR / "watchlist.csv"))
    return pa.Table.from_batches(list(run_modules(modules, iter(table.to_batches()))))


def test_sample_is_small_documented_and_real() -> None:
    files = [p for p in SAMPLE_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 5 * 2**20
    readme = (SAMPLE_DIR / "README.md").read_text()
    assert "Provenance and licence" in readme
    ztf = _records("ztf")
    assert len(ztf) == 38
    assert len({r["objectId"] for r in ztf}) == 38
    assert {r["candidate"]["fid"] for r in ztf} == {1, 2}
    # Every alert comes with its three cutouts, as the survey sent it.
    for r in ztf:
        for cutout in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
            assert r[cutout]["stampData"][:2] == b"\x1f\x8b"  # gzipped FITS
    lsst = _records("lsst")
    assert sorted(str(r["diaSource"]["diaSourceId"]) for r in lsst) == [
        "169298432603193359",
        "169298432603193401",
        "170094456528175205",
    ]


def test_sample_exercises_every_builtin_filter_and_module(science: pa.Table) -> None:
    df = science.drop_columns(["prv_candidates"]).to_pandas()
    assert not any(e for e in df["science_errors"] for e in e)
    passed_cuts = (df.rb >= 0.55) & (df.nbad == 0)
    early = passed_cuts & (df.early_sn_score >= 0.7)
    sso = passed_cuts & df.sso_candidate
    bright = passed_cuts & (df.magpsf <= 17.5) & ~df.near_star
    # Each default ZTF filter selects some alerts and leaves others.
    assert (early.sum(), sso.sum(), bright.sum()) == (8, 12, 9)
    assert (~early & ~sso & ~bright).sum() >= 4
    assert df.near_star.sum() == 13
    assert df.color_gr.notna().sum() == 7
    assert ((df.rise_rate > 0).sum(), (df.fade_rate > 0).sum()) == (10, 6)
    assert df.sso_name.notna().sum() == 12
    assert df.ps1_sgscore.notna().all()
    # The watchlist names every second object; each of those, and only those, matches itself.
    names = {line.split(",")[0] for line in (SAMPLE_DIR / "watchlist.csv").read_text().split()[1:]}
    assert len(names) == 19
    matched = df[df.xmatch_name.notna()]
    assert set(matched.xmatch_name) == names
    assert (matched.xmatch_name == matched.objectId).all()
    assert (matched.xmatch_sep_arcsec < 0.01).all()


def test_the_lsst_sample_passes_and_fails_the_default_lsst_filter() -> None:
    snr = sorted(r["diaSource"]["snr"] for r in _records("lsst"))
    assert [s >= 20 for s in snr] == [False, False, True]


def test_alert_sources_prefer_flags_then_config_then_the_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    given = alert_sources(["night", "more/*.avro"], Path("/data/conf"))
    assert given.paths == [str(tmp_path / "night"), str(tmp_path / "more" / "*.avro")]
    assert not given.sample
    configured = alert_sources(None, Path("/data/conf"))
    assert configured.paths == ["/data/conf"]
    assert not configured.sample
    fallback = alert_sources([], None)
    assert fallback.sample
    assert fallback.paths == [str(sample_alerts("ztf"))]
    assert "38 real ZTF alerts shipped with alertbench" in fallback.describe()
