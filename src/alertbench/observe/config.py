"""A Prometheus scrape configuration for alertbench's endpoints."""

from __future__ import annotations

from pathlib import Path

from alertbench.observe.targets import TARGETS_FILE


def prometheus_config(results: Path, *, interval_s: float = 5.0) -> str:
    """``prometheus.yml`` scraping every run started into ``results``, as it runs.

    Parameters
    ----------
    results : Path
        The folder that receives run folders (``bench run --out``); its
        ``prometheus-targets.json`` lists the endpoints of the runs in progress.
    interval_s : float
        Seconds between scrapes (and between re-reads of the targets file).
    """
    every = f"{interval_s:g}s"
    targets = (results.resolve() / TARGETS_FILE).as_posix()
    # YAML by hand: two keys whose values are ours; a YAML writer would be a dependency
    # for a fixed shape.
    return (
        "# Written by `alertbench metrics prometheus-config`: every bench run started\n"
        f"# into {results.resolve()} is scraped while it runs.\n"
        "global:\n"
        f"  scrape_interval: {every}\n"
        f"  evaluation_interval: {every}\n"
        "scrape_configs:\n"
        "  - job_name: alertbench\n"
        "    file_sd_configs:\n"
        f"      - files: ['{targets}']\n"
        f"        refresh_interval: {every}\n"
    )
