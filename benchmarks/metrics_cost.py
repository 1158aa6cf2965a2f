"""What the live metrics cost: the same scenario with them, scraped, and without.

With metrics, a `bench run` serves its own endpoint, its timing consumer's,
its broker's, Spark's own sinks, and the embedded Kafka's JMX exporter agent,
and a real Prometheus (Debian's, started here on a free port and stopped by
PID) scrapes them all every ``--interval`` seconds, as in a user's set-up.
Without (``--no-metrics``), none of them is served or started. The two are
run alternately, ``--rounds`` times each, on one machine; the script records
latency percentiles, throughput, and the CPU of the broker and of Kafka per
run. It writes JSON and never asserts.

Usage::

    ALERTBENCH_ALERTS=/path/to/ztf/alerts python benchmarks/metrics_cost.py \\
        [--scenario lsst-nominal] [--visits 2] [--rounds 3] [--interval 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from alertbench.procs import LocalTransport, free_ports, stop_processes
from other_broker import figures, run
from output import machine, write_result


def start_prometheus(work: Path, results: Path, interval: float):
    """A real Prometheus scraping every run started into ``results``; None if not installed."""
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    config = work / "prometheus.yml"
    subprocess.run(
        [sys.executable, "-m", "alertbench", "metrics", "prometheus-config", "--results",
         str(results), "--interval", str(interval), "-o", str(config)],
        check=True, capture_output=True,
    )  # fmt: skip
    (port,) = free_ports(1)
    proc = LocalTransport().spawn(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log=work / "prometheus.log",
        cwd=work,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    stop_processes(LocalTransport(), [proc], grace=5)
    raise SystemExit(f"Prometheus did not start; see {work / 'prometheus.log'}")


def main() -> None:
    """Alternate runs with metrics (scraped) and with ``--no-metrics``, ``--rounds`` times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="lsst-nominal")
    parser.add_argument("--visits", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=5.0, help="Prometheus' scrape interval.")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="metrics-cost-"))
    results = work / "runs"
    results.mkdir()
    prometheus = start_prometheus(work, results, args.interval)
    rows: dict[str, list[dict]] = {"with_metrics": [], "no_metrics": []}
    try:
        for k in range(args.rounds):
            for name, extra in (("with_metrics", []), ("no_metrics", ["--no-metrics"])):
                r = run(args.scenario, args.visits, results, extra, dict(os.environ))
                rows[name].append(figures(r))
                print(f"round {k + 1} {name}: {rows[name][-1]['latency_s']}", flush=True)
    finally:
        if prometheus is not None:
            stop_processes(LocalTransport(), [prometheus], grace=10)
    write_result(
        args.out,
        "metrics_cost",
        {
            "machine": machine(),
            "scenario": args.scenario,
            "visits": args.visits,
            "scraped_by": "prometheus" if prometheus else None,
            "scrape_interval_s": args.interval,
            "rounds": rows,
        },
    )


if __name__ == "__main__":
    main()
