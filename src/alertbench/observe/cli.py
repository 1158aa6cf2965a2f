"""``alertbench metrics ...``: what Prometheus needs to scrape alertbench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
metrics_app = typer.Typer(
    help="Live metrics: a Prometheus scrape configuration for bench runs.",
    no_args_is_help=True,
)


@metrics_app.command("prometheus-config")
def prometheus_config_command(
    results: Annotated[
        Path,
        typer.Option(help="The folder bench runs write into (bench run --out)."),
    ] = Path("bench-results"),
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between scrapes.")] = 5.0,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write it to this file \\[default: print it]."),
    ] = None,
) -> None:
    """Write a prometheus.yml that scrapes every bench run started into RESULTS while it runs.

    Runs list their endpoints in RESULTS/prometheus-targets.json, which
    Prometheus' file service discovery re-reads: start Prometheus once with
    this file, then run benchmarks.
    """
    from alertbench.observe.config import prometheus_config

    text = prometheus_config(results, interval_s=interval)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    console.print(f"wrote {output}: prometheus --config.file={output}", highlight=False)


@metrics_app.command("dashboard")
def dashboard_command(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write it to this file \\[default: print it]."),
    ] = None,
) -> None:
    """Write the Grafana dashboard of a run (import it in Grafana: Dashboards > Import)."""
    from importlib.resources import files

    text = files("alertbench.observe").joinpath("dashboards/run.json").read_text()
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    console.print(f"wrote {output}", highlight=False)
