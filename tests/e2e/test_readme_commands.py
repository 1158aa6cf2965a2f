"""The README's benchmark commands, run as a user types them.

``./run bench smoke`` from the repository root, with the default output folder
and no alerts configured (the shipped sample), and ``alertbench bench run``
from another folder with relative paths everywhere: output, alerts, the
configuration file and the catalogue it names. Both are real runs (embedded
Kafka, the fused broker on Spark), checked on their ``results.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from alertbench.alerts.files import SAMPLE_DIR, find_alert_files

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _user_env() -> dict[str, str]:
    """The environment of a user who has configured nothing of alertbench's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBENCH_")}
    # A test run from another virtual environment tells ./run where it is.
    if "ALERTBENCH_VENV" in os.environ:
        env["ALERTBENCH_VENV"] = os.environ["ALERTBENCH_VENV"]
    return {**env, "COLUMNS": "200", "NO_COLOR": "1"}


def _new_runs(folder: Path, before: set[str]) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.is_dir() and p.name not in before)


def test_run_bench_smoke_from_the_repository_root_on_the_shipped_sample() -> None:
    results_dir = ROOT / "bench-results"
    existed = results_dir.exists()
    before = {p.name for p in results_dir.glob("*")} if existed else set()
    try:
        proc = subprocess.run(
            ["./run", "bench", "smoke"],
            cwd=ROOT,
            env=_user_env(),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        runs = _new_runs(results_dir, before)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert len(runs) == 1, runs
        run = runs[0]
        results = json.loads((run / "results.json").read_text())
        assert results["status"] == "passed", results["failures"]
        assert results["integrity"]["ok"]
        assert results["integrity"]["sent"] == results["integrity"]["in_raw"] == 50 + 4 * 300
        # The clones were made from the shipped sample, and the command said so.
        assert results["config"]["simulator"]["source_alerts"] == 38
        assert "38 real ZTF alerts shipped with alertbench" in " ".join(proc.stdout.split())
        assert f"report: {run / 'report.html'}" in proc.stdout.replace("\n", "")
        assert (run / "report.html").is_file()
        # What a user reads first: no six-decimal seconds, and the Java version is known.
        table = proc.stdout.split("latency to raw", 1)[1].split("\n", 1)[0]
        assert " s" in table or " ms" in table
        assert not any(len(tok.split(".")[-1]) > 1 for tok in table.split() if "." in tok)
        assert results["versions"]["java"].split(".")[0].isdigit()
    finally:
        for run in _new_runs(results_dir, before):
            shutil.rmtree(run, ignore_errors=True)
        if not existed:
            shutil.rmtree(results_dir, ignore_errors=True)


def test_bench_run_from_another_folder_with_relative_paths(
    tmp_path: Path, alert_files: list[Path]
) -> None:
    home = tmp_path / "user"
    (home / "conf").mkdir(parents=True)
    (home / "mine").mkdir()
    for f in alert_files[:20]:
        shutil.copy(f, home / "mine" / f.name)
    shutil.copy(SAMPLE_DIR / "watchlist.csv", home / "conf" / "watchlist.csv")
    # Paths in the file are relative to the file: run_dir and the catalogue.
    (home / "conf" / "alertbench.toml").write_text(
        'run_dir = "state"\n'
        "[broker]\n"
        'driver_memory = "1g"\n'
        'modules = ["sso", "context", "lightcurve", "early_sn", "crossmatch"]\n'
        'catalogue = "watchlist.csv"\n'
    )
    (home / "short.toml").write_text(
        'name = "short"\ndescription = "2 visits of 100"\nkind = "stream"\n'
        'schedule = "visits"\nvisit_alerts = 100\nvisit_interval = 4.0\nvisits = 2\n'
        "partitions = 2\nwarmup_alerts = 20\n"
    )
    env = {**_user_env(), "ALERTBENCH_CONFIG": "conf/alertbench.toml"}
    argv = ["bench", "run", "short.toml", "--out", "results", "--alerts", "mine", "--keep-data"]
    # As a user types it from their own folder: the repository's ./run, by its path.
    proc = subprocess.run(
        [str(ROOT / "run"), *argv],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = list((home / "results").iterdir())
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "passed", results["failures"]
    assert results["integrity"]["ok"]
    assert results["integrity"]["in_raw"] == 20 + 2 * 100
    assert results["config"]["simulator"]["source_alerts"] == len(find_alert_files([home / "mine"]))
    # The broker ran in the run's folder and found the catalogue the config file names.
    import pyarrow.parquet as pq

    science = pq.read_table(run / "work" / "main" / "broker" / "science").to_pandas()
    assert "xmatch_name" in science.columns
    assert not any(len(errors) for errors in science["science_errors"])
    # The generated broker config holds absolute paths only.
    generated = (run / "work" / "main" / "alertbench.toml").read_text()
    assert f'catalogue = "{home / "conf" / "watchlist.csv"}"' in generated
    assert f'run_dir = "{run / "work" / "main"}"' in generated
    # Nothing was written relative to another folder.
    assert not (home / "bench-results").exists()
    assert not (home / "conf" / "results").exists()
    shutil.rmtree(run / "work", ignore_errors=True)
