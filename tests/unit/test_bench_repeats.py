"""Repeated runs: each headline figure's median and spread, and whether two sets differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from alertbench.bench import repeats
from alertbench.bench.compare import render_compare, repeats_table


def result(run_id: str, p99: float, rate: float | None = None, status: str = "passed") -> dict:
    out: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "scenario": {"name": "smoke"},
        "machine": {"cores": 2},
        "latency": {"distribution": {"p99": p99}},
        "verdicts": {"rubin_latency": {"share": 1.0}},
    }
    if rate is not None:
        out["max_held_rate"] = rate
    return out


def write_runs(folder: Path, results: list[dict]) -> list[Path]:
    dirs = []
    for r in results:
        d = folder / r["run_id"]
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(r))
        dirs.append(d)
    return dirs


def test_figures_give_median_range_and_spread_of_every_measured_figure() -> None:
    found = repeats.figures([result("a", 2.0, 600), result("b", 3.0, 800), result("c", 2.5, 600)])
    p99 = found["latency distribution p99 (s)"]
    assert p99 == {
        "values": [2.0, 3.0, 2.5],
        "n": 3,
        "median": 2.5,
        "min": 2.0,
        "max": 3.0,
        "spread": 0.4,
    }
    assert found["max held rate (alerts/s)"]["median"] == 600
    assert found["machine cores"]["spread"] == 0.0
    # Never measured by any run: left out, not reported as zero.
    assert "spark batches" not in found
    # Yes/no figures are verdicts, not numbers to take the median of.
    assert "integrity ok" not in found


def test_differ_only_when_the_ranges_do_not_overlap() -> None:
    def fig(*values: float) -> dict:
        return repeats.figures([result(str(i), v) for i, v in enumerate(values)])[
            "latency distribution p99 (s)"
        ]

    assert repeats.differ(fig(2.0, 2.4, 2.2), fig(3.0, 3.1, 2.9)) == "differ"
    assert repeats.differ(fig(2.0, 3.0, 2.2), fig(2.9, 3.1, 3.0)) == "within spread"
    assert repeats.differ(fig(2.0), fig(2.9)) == "unknown: one run each"
    assert repeats.differ(fig(2.0), fig(2.9, 3.1)) == "differ"
    assert repeats.differ(None, fig(2.0)) == "unknown"


def test_write_summarises_the_runs_and_compare_reads_repeats(tmp_path: Path) -> None:
    a = write_runs(tmp_path / "a", [result("a1", 2.0), result("a2", 2.2), result("a3", 2.1)])
    b = write_runs(
        tmp_path / "b", [result("b1", 4.0), result("b2", 4.4), result("b3", 4.1, status="failed")]
    )
    fa = repeats.write(tmp_path / "a", "smoke", a)
    fb = repeats.write(tmp_path / "b", "smoke", b)
    summary = json.loads((fa / repeats.REPEATS_FILE).read_text())
    assert (summary["repeats"], summary["status"], summary["scenario"]) == (3, "passed", "smoke")
    assert summary["runs"] == [str(d) for d in a]
    assert json.loads((fb / repeats.REPEATS_FILE).read_text())["statuses"] == [
        "passed",
        "passed",
        "failed",
    ]
    rows = {r[0]: r[1:] for r in repeats_table(repeats.load_figures(fa), repeats.load_figures(fb))}
    assert rows["latency distribution p99 (s)"] == (
        "2.1 (2–2.2, n=3)",
        "4.1 (4–4.4, n=3)",
        "+95.2%",
        "differ",
    )
    assert rows["share within 60 s"][3] == "within spread"
    console = Console(record=True, width=200)
    render_compare(fa, a[0], console)  # repeats against one run
    text = console.export_text()
    assert "Comparison of repeats" in text
    assert "within spread" in text


def test_two_single_runs_are_read_against_the_noise_of_repeats(tmp_path: Path) -> None:
    # The noise: three repeats whose p99 spread is (2.4 - 2.0) / 2.2 = 18%.
    noise = repeats.write(
        tmp_path / "noise",
        "smoke",
        write_runs(tmp_path / "noise", [result("n1", 2.0), result("n2", 2.2), result("n3", 2.4)]),
    )
    p99 = repeats.load_figures(noise)["latency distribution p99 (s)"]
    assert p99["spread"] == 0.1818
    assert repeats.noise(2.0, 2.3, p99) == "noise"  # +15%
    assert repeats.noise(2.0, 1.7, p99) == "noise"  # -15%
    assert repeats.noise(2.0, 2.5, p99) == "beyond noise"  # +25%
    assert repeats.noise(2.0, None, p99) == "unknown"
    assert repeats.noise(2.0, 2.5, None) == "unknown"
    one = repeats.figures([result("x", 2.0)])["latency distribution p99 (s)"]
    assert repeats.noise(2.0, 2.5, one) == "unknown"  # one run measures no spread

    a, b, c = write_runs(
        tmp_path / "runs", [result("a", 2.0, 600), result("b", 2.3, 600), result("c", 3.0, 600)]
    )
    console = Console(record=True, width=200)
    render_compare(a, b, console, noise=noise)
    lines = {
        line.split("│")[1].strip(): line
        for line in console.export_text().splitlines()
        if "│" in line
    }
    assert "noise" in lines["latency distribution p99 (s)"]
    assert "beyond" not in lines["latency distribution p99 (s)"]
    console = Console(record=True, width=200)
    render_compare(a, c, console, noise=noise)
    text = console.export_text()
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    assert "beyond noise" in lines["latency distribution p99 (s)"]
    assert lines["faults"].split("│")[-2].strip() == "—"  # neither run measured it
    assert f"repeatsin{noise}" in "".join(text.split())  # the path may wrap
