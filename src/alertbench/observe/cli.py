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
    ctx: typer.Context,
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
    this file, then run benchmarks. The Kafka nodes and Spark daemons that
    `kafka up` and `spark up` start in the run dir are scraped too, while they run.
    """
    from alertbench.config import Flags
    from alertbench.observe.config import prometheus_config

    flags = ctx.find_root().obj
    settings = (flags if isinstance(flags, Flags) else Flags()).settings()
    clusters = [settings.kafka_state_dir, settings.spark_state_dir]
    text = prometheus_config(results, interval_s=interval, clusters=clusters)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    console.print(f"wrote {output}: prometheus --config.file={output}", highlight=False)


DASHBOARDS = {
    "run": "a bench run: rates, lag, latency against 60 s, resources",
    "kafka": "the Kafka nodes (JMX exporter): traffic, replication, request time, offsets",
}


@metrics_app.command("dashboard")
def dashboard_command(
    name: Annotated[
        str,
        typer.Argument(help=f"Which: {'; '.join(f'{k}: {v}' for k, v in DASHBOARDS.items())}."),
    ] = "run",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write it to this file \\[default: print it]."),
    ] = None,
) -> None:
    """Write a Grafana dashboard (import it in Grafana: Dashboards > Import)."""
    from importlib.resources import files

    if name not in DASHBOARDS:
        raise typer.BadParameter(f"no dashboard {name!r}; choose one of {', '.join(DASHBOARDS)}")
    text = files("alertbench.observe").joinpath(f"dashboards/{name}.json").read_text()
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    console.print(f"wrote {output}", highlight=False)
