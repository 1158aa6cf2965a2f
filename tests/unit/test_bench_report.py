"""The HTML report of a run: tables from results.json, inlined plots from series/*.csv."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from alertbench.bench.capacity import capacity_model
from alertbench.bench.plots import PLOTS
from alertbench.bench.report import render_report
from alertbench.bench.values import format_value, verdict_status

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def results_dict() -> dict[str, Any]:
    latency = {"count": 40, "mean": 2.1, "p50": 1.9, "p95": 5.5, "p99": 7.25, "max": 8.0}
    results: dict[str, Any] = {
        "schema_version": 1,
        "run_id": "run-20260101-lsst",
        "status": "passed",
        "failures": [],
        "started_at": "2026-01-01T00:00:00Z",
        "duration_s": 120.0,
        "scenario": {"name": "lsst-nominal", "description": "Rubin visits", "kind": "stream"},
        "config": {"kafka": {"version": "4.1.0", "nodes": 1}},
        "machine": {"cores": 2, "memory_gb": 7.7, "platform": "Linux-x86_64"},
        "versions": {"alertbench": "0.1.0", "kafka": "4.1.0", "pyspark": "4.2.0"},
        "producer": {
            "alerts": 400,
            "failed": 0,
            "mb": 32.8,
            "seconds": 4.0,
            "alerts_per_s": 100.0,
            "mb_per_s": 8.2,
            "visits": 4,
            "visit_send_s": latency,
            "lateness_s": latency,
        },
        "kafka": {"topic": "alerts", "partitions": 2, "end_offset": 400, "max_lag": 120},
        "spark": {"batches": 8, "input_rows": 400, "rows_per_s": latency, "batch_s": latency},
        "latency": {"raw": {**latency, "p99": 3.5}, "distribution": latency},
        "throughput": {"alerts_per_s": 95.0, "drain_s": 2.0},
        "resources": {
            "broker": {"cpu_mean": 150.0, "cpu_max": 190.0, "rss_max_mb": 900.0},
            "kafka": {"cpu_mean": 40.0, "cpu_max": 70.0, "rss_max_mb": 600.0},
        },
        "integrity": {
            "ok": True,
            "sent": 400,
            "in_raw": 400,
            "topics": {
                "ztf-sso": {
                    "expected": 12,
                    "received": 12,
                    "missing": 0,
                    "unexpected": 0,
                    "duplicates": 0,
                }
            },
        },
        "verdicts": {
            "rubin_visit": {"held": False, "visit_alerts": 100, "interval_s": 37.0},
            "rubin_latency": {"share": 0.995, "required_share": 0.98, "met": True},
            "p99_target": {"met": True, "p99_s": 7.25, "target_s": 10.0},
        },
    }
    results["capacity"] = capacity_model(results)
    return results


def write_csv(path: Path, header: str, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")


def write_all_series(run: Path) -> None:
    series = run / "series"
    write_csv(
        series / "visits.csv",
        "visit,due_s,alerts,acked,lateness_s,send_s,ack_s",
        [f"{v},{37 * v},100,100,{0.01 * v},{0.5 + 0.1 * v},{0.6 + 0.1 * v}" for v in range(4)],
    )
    write_csv(
        series / "lag.csv",
        "t_s,produced,end_offset,processed_offset,lag",
        [f"{t},{t * 10},{t * 10},{t * 8},{t * 2}" for t in range(10)],
    )
    write_csv(
        series / "batches.csv",
        "t_s,query,batch,rows,rows_per_s,batch_ms",
        [f"{t},fused,{t},50,{40 + t},{900 + t}" for t in range(8)],
    )
    write_csv(
        series / "resources.csv",
        "t_s,component,cpu_percent,rss_mb",
        [f"{t},{c},{20 + t},{500 + t}" for t in range(5) for c in ("kafka", "broker")],
    )
    write_csv(
        series / "latency_raw.csv",
        "alert_id,sent_s,latency_s",
        [f"a{i},{i * 0.1},{1 + (i % 7) * 0.3}" for i in range(40)],
    )
    write_csv(
        series / "latency_dist.csv",
        "alert_id,topic,sent_s,latency_s",
        [f"a{i},ztf-sso,{i * 0.1},{2 + (i % 5) * 0.4}" for i in range(40)],
    )
    write_csv(
        series / "steps.csv",
        "step,rate,produced_per_s,processed_per_s,lag_start,lag_end,held",
        ["1,100,99.5,99.0,0,10,True", "2,200,198.0,150.0,10,4000,False"],
    )
    write_csv(
        series / "sweep.csv",
        "partitions,producers,cores,alerts,alerts_per_s,p99_s",
        [
            # Cores swept around partitions=2, producers=1; then partitions; then producers.
            "2,1,1,1000,80.0,3.0",
            "2,1,2,1000,150.0,2.0",
            "2,1,4,1000,260.0,1.5",
            "1,1,2,1000,120.0,2.2",
            "4,1,2,1000,155.0,2.0",
            "2,2,2,1000,151.0,2.0",
        ],
    )


def make_run(tmp_path: Path, results: dict[str, Any] | None = None, series: bool = True) -> Path:
    run = tmp_path / "run-20260101-lsst"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results or results_dict()))
    if series:
        write_all_series(run)
    return run


def sections(html: str) -> dict[str, str]:
    """Section id -> its inner HTML (sections do not nest)."""
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', html, flags=re.DOTALL))


def images(fragment: str) -> list[bytes]:
    return [
        base64.b64decode(data, validate=True)
        for data in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', fragment)
    ]


def test_every_plot_is_an_inlined_png(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    path = render_report(run)
    assert path == run / "report.html"
    html = path.read_text()
    found = sections(html)
    for plot in PLOTS:
        pngs = images(found[plot])
        assert pngs, f"no plot in section {plot}"
        assert all(png.startswith(PNG_SIGNATURE) for png in pngs)
        assert "not measured" not in found[plot]
    # Self-contained: nothing fetched, nothing run.
    assert "<script" not in html
    assert not re.search(r'(src|href)="(?!data:)', html)


def test_missing_series_say_not_measured(tmp_path: Path) -> None:
    run = make_run(tmp_path, series=False)
    html = render_report(run).read_text()
    found = sections(html)
    for plot in PLOTS:
        assert "not measured" in found[plot], plot
        assert "<img" not in found[plot]
    # Tables from results.json are still there.
    assert "run-20260101-lsst" in found["summary"]


def test_empty_and_header_only_series_say_not_measured(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    (run / "series" / "lag.csv").write_text("")
    (run / "series" / "sweep.csv").write_text(
        "partitions,producers,cores,alerts,alerts_per_s,p99_s\n"
    )
    (run / "series" / "latency_dist.csv").unlink()
    found = sections(render_report(run).read_text())
    assert "not measured" in found["lag"]
    assert "not measured" in found["scaling"]
    # One of two latency series is enough for the plots; the other is named as missing.
    assert images(found["latency"])
    assert "latency distribution: not measured" in found["latency"]


def test_one_missing_input_of_a_section_is_named(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    (run / "series" / "batches.csv").unlink()
    found = sections(render_report(run).read_text())
    assert images(found["throughput"])
    assert "batches.csv (processed rows/s): not measured" in found["throughput"]


def test_values_from_results_appear(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    html = render_report(run).read_text()
    found = sections(html)
    assert "<title>alertbench run run-20260101-lsst</title>" in html
    assert "7.25" in found["percentiles"]
    assert "3.5" in found["percentiles"]
    assert "lsst-nominal" in found["summary"]
    assert "passed" in found["summary"]
    assert "ztf-sso" in found["integrity"]
    # Capacity: the loads and the assumptions they rest on.
    assert "Rubin peak" in found["capacity"]
    assert "broker_network_mb_per_s" in found["capacity"]
    assert "10 GbE" in found["capacity"]


def test_verdicts_show_whether_each_holds(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    verdicts = sections(render_report(run).read_text())["verdicts"]
    rows = dict(re.findall(r"<tr><td>(\w+)</td><td>[^<]*</td><td>(.*?)</td>", verdicts))
    assert rows == {
        "rubin_visit": '<span class="no">no</span>',
        "rubin_latency": '<span class="yes">yes</span>',
        "p99_target": '<span class="yes">yes</span>',
    }
    assert "98%" in verdicts


def test_a_verdict_not_judged_says_so(tmp_path: Path) -> None:
    results = results_dict()
    results["verdicts"]["rubin_visit"] = {"held": None, "note": "not a visits scenario"}
    verdicts = sections(render_report(make_run(tmp_path, results, series=False)).read_text())[
        "verdicts"
    ]
    assert "not judged" in verdicts
    assert "not a visits scenario" in verdicts


def test_values_are_escaped(tmp_path: Path) -> None:
    results = results_dict()
    results["scenario"]["description"] = "<script>alert(1)</script>"
    results["failures"] = ["bad <b>input</b> & more"]
    results["run_id"] = "run <img src=x>"
    html = render_report(make_run(tmp_path, results)).read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "bad &lt;b&gt;input&lt;/b&gt; &amp; more" in html
    assert "<img src=x>" not in html


def test_capacity_is_computed_when_results_lack_it(tmp_path: Path) -> None:
    results = results_dict()
    del results["capacity"]
    found = sections(render_report(make_run(tmp_path, results, series=False)).read_text())
    assert "computed at report time" in found["capacity"]
    assert "Rubin nominal" in found["capacity"]


def test_a_sparse_results_json_still_renders(tmp_path: Path) -> None:
    found = sections(
        render_report(make_run(tmp_path, {"run_id": "bare"}, series=False)).read_text()
    )
    assert "bare" in found["summary"]
    assert "not measured" in found["percentiles"]
    assert "not measured" in found["integrity"]
    assert "not judged" in found["verdicts"]
    assert "Spark cores not computed" in found["capacity"]


def test_no_results_json_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"results\.json"):
        render_report(tmp_path)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (True, "yes"),
        (12345, "12,345"),
        (1234.56, "1,234.6"),
        (150.0, "150"),
        (40.0, "40"),
        (7.254, "7.25"),
        (0.000123, "0.000123"),
        ([], "none"),
        (["a", 1], "a, 1"),
        ({"held": True, "n": 3}, "held=yes, n=3"),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize(
    ("value", "share", "holds"),
    [
        (True, None, True),
        ({"held": False}, None, False),
        ({"ok": True, "p99_s": 3.0}, None, True),
        ({"met": False, "share": 0.99}, 0.98, False),
        ({"held": None, "note": "not a visits scenario"}, None, None),
        ({"share": 0.97}, 0.98, False),
        ({"share_within_60s": 0.99}, 0.98, True),
        (0.985, 0.98, True),
        ({"note": "nothing"}, None, None),
        (None, 0.98, None),
    ],
)
def test_verdict_status(value: Any, share: float | None, holds: bool | None) -> None:
    assert verdict_status(value, share=share) is holds


def test_producer_rate_counts_only_the_time_spent_sending() -> None:
    from alertbench.bench.collect import sending_seconds

    # Two visits of 2 s each, 37 s apart: 4 s of sending, not 39.
    visits = [
        {"due": 100.0, "lateness_s": 0.5, "ack_s": 2.0},
        {"due": 137.0, "lateness_s": 0.0, "ack_s": 2.0},
    ]
    assert sending_seconds(visits) == pytest.approx(4.0)
    # A visit that overruns into the next is not counted twice: [0, 5] U [3, 6] = 6 s.
    overlap = [
        {"due": 0.0, "lateness_s": 0.0, "ack_s": 5.0},
        {"due": 3.0, "lateness_s": 0.0, "ack_s": 3.0},
    ]
    assert sending_seconds(overlap) == pytest.approx(6.0)
    assert sending_seconds([]) == 0.0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (0.0123456, "12 ms"),
        (0.9994, "999 ms"),
        (1.0, "1.0 s"),
        (15.638291, "15.6 s"),
        (1234.5, "1,234.5 s"),
    ],
)
def test_summary_durations_are_read_at_a_sensible_precision(value: Any, text: str) -> None:
    from alertbench.bench.cli import seconds

    assert seconds(value) == text


def test_a_clock_offset_above_5_percent_of_the_p50_is_a_warning() -> None:
    from alertbench.bench.collect import clock_warnings

    latency = {"p50": 2.0}
    far = {"timing_host": "host3", "offset_s": 0.15}
    (warning,) = clock_warnings(far, latency)
    assert "host3" in warning
    assert "+150.0 ms" in warning
    assert "5% of the p50 latency (2.000 s)" in warning
    assert clock_warnings({"timing_host": "host3", "offset_s": -0.09}, latency) == []
    assert clock_warnings({"timing_host": "host3", "offset_s": -0.11}, latency) != []
    # The same machine's clock, or nothing timed: nothing to warn about.
    assert clock_warnings({"timing_host": None, "offset_s": 0.0}, latency) == []
    assert clock_warnings(far, None) == []


def test_the_science_section_names_the_profile_and_plots_each_modules_cost(tmp_path) -> None:
    results = results_dict()
    results["science"] = {
        "profile": "fink",
        "modules": {
            "vsx": {
                "rows": 400,
                "processed": 380,
                "seconds": 0.04,
                "ms_per_alert": 0.1,
                "ms_per_processed": 0.105,
                "failed_batches": 0,
                "setup_seconds": 2.6,
            },
            "roid": {
                "rows": 400,
                "processed": 400,
                "seconds": 0.008,
                "ms_per_alert": 0.02,
                "ms_per_processed": 0.02,
                "failed_batches": 1,
                "setup_seconds": 0.0,
            },
        },
        "notes": ["science module is_sso skipped: it serves lsst"],
        "ms_per_alert": 0.12,
        "ms_per_input_alert": 0.12,
    }
    results["capacity"] = capacity_model(results)
    html = render_report(make_run(tmp_path, results)).read_text()
    found = sections(html)
    science = found["science"]
    assert "Profile: <b>fink</b>" in science
    assert [png[:8] for png in images(science)] == [PNG_SIGNATURE]
    rows = re.findall(r"<tr>(.*?)</tr>", science, flags=re.DOTALL)
    assert len(rows) == 3  # the header, vsx, roid
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", rows[1])
    assert cells == ["vsx", "400", "380", "0.04", "0.1", "0.105", "0", "2.6"]
    assert "is_sso skipped" in science
    assert "fink" in found["summary"]
    # The capacity model sizes the profile's modules alone: 270 alerts/s x 0.12 ms / 0.7.
    nominal = results["capacity"]["loads"][0]
    assert nominal["science_cores"] == 1
    assert results["capacity"]["measured"]["science_profile"] == "fink"


def test_a_run_without_science_says_so(tmp_path) -> None:
    html = render_report(make_run(tmp_path)).read_text()
    assert "not measured" in sections(html)["science"]


def test_a_faulted_run_has_a_faults_section_with_its_timeline_and_costs(tmp_path: Path) -> None:
    results = results_dict()
    results["faults"] = {
        "pass_rules": "no acknowledged alert missing from raw",
        "faults": [
            {
                "name": "kafka-kill",
                "label": "kafka-kill at visit 2 + 4 s",
                "error": None,
                "injected_s": 12.5,
                "healed_s": 17.5,
                "largest_ack_stall_s": {"baseline": 0.4, "fault": 6.25, "recovery": 0.1},
                "largest_commit_stall_s": {"baseline": 0.5, "fault": 7.75, "recovery": 0.2},
                "first_commit_after_heal_s": 1.125,
                "recovery": {"judged": True, "back_at_visit": 4},
            }
        ],
        "acked": 1200,
        "acked_lost": 0,
        "never_acked": 3,
        "aged_out": {"records": 0},
        "duplicates": {"raw": 0, "science": 0},
        "quarantined": 0,
        "visits_missing_98pct_in_60s": [3],
    }
    html = render_report(make_run(tmp_path, results)).read_text()
    faults = sections(html)["faults"]
    assert len(images(faults)) == 1
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", faults)
    row = cells[cells.index("kafka-kill at visit 2 + 4 s") :][:8]
    assert row == [
        "kafka-kill at visit 2 + 4 s",
        "12.5",
        "17.5",
        "6.25",
        "0.5",
        "7.75",
        "1.12",
        "4",
    ]
    summary = dict(re.findall(r"<tr><td>([^<]*)</td><td[^>]*>([^<]*)</td></tr>", faults))
    assert summary["never acknowledged"] == "3"
    assert summary["visits missing 98% in 60 s"] == "3"
    # A run without faults has no such section.
    (tmp_path / "plain").mkdir()
    plain = render_report(make_run(tmp_path / "plain")).read_text()
    assert "faults" not in sections(plain)
