"""Two runs side by side: values, changes, and missing values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from alertbench.bench.compare import METRICS, compare_table, render_compare


def run_a() -> dict[str, Any]:
    return {
        "run_id": "run-a",
        "status": "passed",
        "machine": {"cores": 2},
        "producer": {"alerts_per_s": 1000.0, "mb_per_s": 80.0},
        "throughput": {"alerts_per_s": 400.0},
        "latency": {
            "raw": {"p50": 1.0, "p99": 2.0},
            "distribution": {"p50": 2.0, "p95": 4.0, "p99": 8.0, "max": 9.0},
        },
        "kafka": {"max_lag": 1000},
        "spark": {"batches": 10, "rows_per_s": {"p50": 500.0}},
        "resources": {"broker": {"cpu_mean": 150.0}, "kafka": {"cpu_mean": 40.0}},
        "verdicts": {
            "rubin_visit": {"held": True},
            "rubin_latency": {"share": 0.99},
            "p99_target": {"ok": True},
        },
        "integrity": {"ok": True},
    }


def run_b() -> dict[str, Any]:
    b = run_a()
    b["run_id"] = "run-b"
    b["status"] = "failed"
    b["machine"]["cores"] = 8
    b["producer"]["alerts_per_s"] = 1123.0
    b["latency"]["raw"]["p99"] = 1.0
    del b["latency"]["distribution"]
    b["kafka"]["max_lag"] = 0
    b["verdicts"]["rubin_visit"] = {"held": False}
    b["verdicts"]["rubin_latency"] = {"share": 0.9}
    return b


def rows_by_label(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {label: (va, vb, change) for label, va, vb, change in compare_table(a, b)}


def test_one_row_per_metric_in_order() -> None:
    rows = compare_table(run_a(), run_b())
    assert [row[0] for row in rows] == [m.label for m in METRICS]
    assert all(len(row) == 4 and all(isinstance(c, str) for c in row) for row in rows)


def test_values_and_percentage_changes() -> None:
    rows = rows_by_label(run_a(), run_b())
    assert rows["producer alerts/s"] == ("1,000", "1,123", "+12.3%")
    assert rows["producer MB/s"] == ("80", "80", "+0.0%")
    assert rows["latency raw p99 (s)"] == ("2", "1", "-50.0%")
    assert rows["latency raw p50 (s)"] == ("1", "1", "+0.0%")
    assert rows["machine cores"] == ("2", "8", "+300.0%")
    assert rows["kafka max lag"] == ("1,000", "0", "-100.0%")
    assert rows["spark rows/s p50"] == ("500", "500", "+0.0%")
    assert rows["broker CPU mean (%)"] == ("150", "150", "+0.0%")


def test_states_and_verdicts() -> None:
    rows = rows_by_label(run_a(), run_b())
    assert rows["status"] == ("passed", "failed", "changed")
    assert rows["verdict: visits held"] == ("yes", "no", "changed")
    assert rows["verdict: 98% within 60 s"] == ("yes", "no", "changed")
    assert rows["verdict: p99 <= 10 s"] == ("yes", "yes", "same")
    assert rows["integrity ok"] == ("yes", "yes", "same")


def test_missing_values_print_as_a_dash() -> None:
    rows = rows_by_label(run_a(), run_b())
    for stat in ("p50", "p95", "p99", "max"):
        label = f"latency distribution {stat} (s)"
        assert rows[label][1] == "—"
        assert rows[label][2] == "—"
    everything_missing = rows_by_label({}, {})
    assert all(row == ("—", "—", "—") for row in everything_missing.values())
    # From zero there is no percentage.
    assert rows_by_label(run_b(), run_a())["kafka max lag"] == ("0", "1,000", "—")


def write_run(folder: Path, results: dict[str, Any]) -> Path:
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_render_compare_prints_a_table_headed_by_run_ids(tmp_path: Path) -> None:
    b = run_b()
    b["run_id"] = "run-[bold]b"
    a_dir = write_run(tmp_path / "a", run_a())
    b_dir = write_run(tmp_path / "b", b)
    console = Console(record=True, width=160)
    render_compare(a_dir, b_dir, console)
    text = console.export_text()
    assert "run-a" in text
    # Run ids are shown as written, not read as rich markup.
    assert "run-[bold]b" in text
    assert "+12.3%" in text
    assert "producer alerts/s" in text
    assert "—" in text


def test_another_broker_beside_ours() -> None:
    ours = run_a()
    ours["config"] = {"broker": {"kind": "alertbench", "mode": "fused"}}
    other = run_a()
    other["config"] = {"broker": {"kind": "external", "cmd": "mybroker --fast"}}
    other["spark"] = None  # another broker has no Spark batches
    other["latency"]["raw"] = None
    rows = rows_by_label(ours, other)
    assert rows["broker"] == ("alertbench (fused)", "external: mybroker --fast", "changed")
    assert rows["spark batches"] == ("10", "—", "—")
    assert rows["latency raw p50 (s)"] == ("1", "—", "—")
    assert rows["latency distribution p99 (s)"] == ("8", "8", "+0.0%")


def test_a_faulted_run_beside_the_same_load_without_its_faults() -> None:
    plain = run_a()
    faulted = run_a()
    faulted["faults"] = {
        "acked_lost": 0,
        "quarantined": 15,
        "faults": [
            {
                "name": "kafka-pause",
                "largest_ack_stall_s": {"baseline": 0.1, "fault": 8.1, "recovery": 0.2},
                "largest_commit_stall_s": {"baseline": 0.5, "fault": 10.7, "recovery": 0.4},
            },
            {
                "name": "bad-input-burst",
                "largest_ack_stall_s": {"baseline": 0.1, "fault": 0.3, "recovery": 0.1},
                "largest_commit_stall_s": {"baseline": 0.5, "fault": None, "recovery": 0.4},
            },
        ],
    }
    rows = rows_by_label(plain, faulted)
    assert rows["faults"] == ("—", "kafka-pause, bad-input-burst", "—")
    assert rows["acked alerts lost"] == ("—", "0", "—")
    assert rows["quarantined"] == ("—", "15", "—")
    # The longest stall of any fault, read from the fault windows only.
    assert rows["longest ack stall in a fault (s)"] == ("—", "8.1", "—")
    assert rows["longest commit stall in a fault (s)"] == ("—", "10.7", "—")
