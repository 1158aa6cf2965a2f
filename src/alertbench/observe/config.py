"""A Prometheus scrape configuration for alertbench's endpoints."""

from __future__ import annotations

from pathlib import Path

from alertbench.observe.targets import TARGETS_FILE


def prometheus_config(
    results: Path, *, interval_s: float = 5.0, clusters: list[Path] | None = None
) -> str:
    """``prometheus.yml`` scraping every run started into ``results``, as it runs.

    Parameters
    ----------
    results : Path
        The folder that receives run folders (``bench run --out``); its
        ``prometheus-targets.json`` lists the endpoints of the runs in progress.
    interval_s : float
        Seconds between scrapes (and between re-reads of the targets files).
    clusters : list of Path, optional
        State folders of clusters alertbench runs (``kafka up``, ``spark up``),
        each listing its running processes' endpoints in its own
        ``prometheus-targets.json``
        (:func:`~alertbench.observe.targets.write_cluster_targets`).
    """
    every = f"{interval_s:g}s"
    files = [results.resolve() / TARGETS_FILE]
    files += [c.resolve() / TARGETS_FILE for c in clusters or []]
    listed = ", ".join(f"'{f.as_posix()}'" for f in files)
    what = f"every bench run started into {results.resolve()}"
    if clusters:
        what += ", and the clusters kept in " + ", ".join(str(c.resolve()) for c in clusters)
    # YAML by hand: two keys whose values are ours; a YAML writer would be a dependency
    # for a fixed shape.
    return (
        "# Written by `alertbench metrics prometheus-config`: scrapes\n"
        f"# {what}, while they run.\n"
        "global:\n"
        f"  scrape_interval: {every}\n"
        f"  evaluation_interval: {every}\n"
        "scrape_configs:\n"
        "  - job_name: alertbench\n"
        "    file_sd_configs:\n"
        f"      - files: [{listed}]\n"
        f"        refresh_interval: {every}\n"
    )
