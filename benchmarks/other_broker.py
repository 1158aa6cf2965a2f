"""Our broker measured from outside against the built-in run of the same scenario.

`bench run SCENARIO` drives alertbench's broker with everything the bench
knows (its progress file, its raw Parquet). `bench run SCENARIO --broker-cmd
"alertbench broker run ..."` starts the very same broker as a foreign
command and sees only Kafka: the ids it writes, and its outputs settling
(it keeps its offsets in Spark checkpoints, not in a consumer group). The
two should agree within the run-to-run noise; this script runs them
alternately, several rounds, on one machine, and records latency
percentiles, throughput and CPU of each run. It writes JSON and never asserts.

Usage::

    ALERTBENCH_ALERTS=/path/to/ztf/alerts python benchmarks/other_broker.py \\
        [--scenario lsst-nominal] [--visits 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from output import machine, write_result

ROOT = Path(__file__).resolve().parents[1]
ALERTBENCH = [sys.executable, "-m", "alertbench"]


def our_broker_cmd(state: Path, cores: int) -> str:
    """alertbench's broker as a foreign command: fused, its default filters, local[cores]."""
    return shlex.join(
        [
            *ALERTBENCH,
            "--run-dir",
            str(state),
            "broker",
            "run",
            "--fused",
            "--master",
            f"local[{cores}]",
            "-b",
            "{servers}",
            "--topic",
            "{input_topic}",
        ]
    )


def run(scenario: str, visits: int, out: Path, extra: list[str], env: dict[str, str]) -> dict:
    """One `bench run`; returns its results.json (whatever its status)."""
    before = set(out.iterdir()) if out.exists() else set()
    argv = [*ALERTBENCH, "bench", "run", scenario, "--visits", str(visits), "--out", str(out)]
    done = subprocess.run(
        [*argv, *extra], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    made = set(out.iterdir()) - before
    results_file = next(iter(made)) / "results.json" if len(made) == 1 else None
    if results_file is None or not results_file.exists():
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return json.loads(results_file.read_text())


def figures(r: dict) -> dict:
    """What is compared: latency to the topics, throughput, CPU and memory."""
    lat = r["latency"]["distribution"] or {}
    res = r["resources"]
    return {
        "status": r["status"],
        "failures": r["failures"],
        "latency_s": {k: lat.get(k) for k in ("count", "p50", "p95", "p99", "max")},
        "throughput_alerts_per_s": r["throughput"]["alerts_per_s"],
        "producer_alerts_per_s": r["producer"]["alerts_per_s"],
        "visits_held": r["verdicts"]["rubin_visit"].get("held"),
        "worst_visit_s": r["verdicts"]["rubin_visit"].get("worst_visit_in_raw_s"),
        "broker_cpu_mean": res.get("broker", {}).get("cpu_mean"),
        "broker_rss_max_mb": res.get("broker", {}).get("rss_max_mb"),
        "timing_cpu_mean": res.get("timing", {}).get("cpu_mean"),
        "kafka_cpu_mean": res.get("kafka", {}).get("cpu_mean"),
    }


def main() -> None:
    """Alternate the built-in run and the --broker-cmd run, ``--rounds`` times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="lsst-nominal")
    parser.add_argument("--visits", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="other-broker-"))
    env = dict(os.environ)
    # The scenario's batch bounds, given to the foreign broker as the bench gives them to
    # its own (lsst-nominal: a whole visit per batch, at most 10 s).
    from alertbench.bench.scenario import load_scenario

    s = load_scenario(args.scenario)
    if s.min_offsets_per_trigger:
        env["ALERTBENCH_BROKER__MIN_OFFSETS_PER_TRIGGER"] = str(s.min_offsets_per_trigger)
        env["ALERTBENCH_BROKER__MAX_TRIGGER_DELAY_S"] = str(s.max_trigger_delay_s)
    rows: dict[str, list[dict]] = {"built_in": [], "broker_cmd": []}
    for k in range(args.rounds):
        built_in = run(args.scenario, args.visits, work / "runs", [], dict(os.environ))
        rows["built_in"].append(figures(built_in))
        print(f"round {k + 1} built-in: {rows['built_in'][-1]['latency_s']}")
        cmd = our_broker_cmd(work / f"state-{k}", args.cores)
        other = run(
            args.scenario,
            args.visits,
            work / "runs",
            [
                "--broker-cmd",
                cmd,
                "--output-topics",
                "early-sn|sso|bright|high-snr",
                "--id-format",
                "header",
            ],
            env,
        )
        rows["broker_cmd"].append(figures(other))
        print(f"round {k + 1} --broker-cmd: {rows['broker_cmd'][-1]['latency_s']}")
    write_result(
        args.out,
        "other_broker",
        {
            "machine": machine(cores_used=args.cores),
            "scenario": args.scenario,
            "visits": args.visits,
            "rounds": rows,
        },
    )


if __name__ == "__main__":
    main()
