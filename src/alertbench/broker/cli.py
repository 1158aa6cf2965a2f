"""``alertbench broker ...``: run the Spark alert broker."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from alertbench.config import Flags

console = Console()
broker_app = typer.Typer(help="The alert broker on Apache Spark.", no_args_is_help=True)


@broker_app.command("run")
def run(
    ctx: typer.Context,
    stages: Annotated[
        str, typer.Option(help="Comma list of stream2raw, raw2science, distribute.")
    ] = "stream2raw,raw2science,distribute",
    trigger: Annotated[
        str | None, typer.Option(help="Micro-batch interval, e.g. '1 second'.")
    ] = None,
    until_idle: Annotated[
        float | None, typer.Option(help="Stop once no stage read a row for S seconds.")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop after S seconds.")] = None,
    master: Annotated[str | None, typer.Option(help="local[*] or spark://HOST:PORT.")] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option("--bootstrap-servers", "-b", help="Kafka (default: embedded).")
    ] = None,
    topic: Annotated[list[str] | None, typer.Option(help="Input topic(s).")] = None,
    wire: Annotated[
        str | None, typer.Option("--format", help="ztf, schemaless, confluent.")
    ] = None,
    schema_registry: Annotated[
        str | None, typer.Option(help="confluent: folder of <id>.avsc or a registry URL.")
    ] = None,
    fused: Annotated[
        bool, typer.Option(help="One query does every stage per micro-batch (lowest latency).")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve metrics for Prometheus on this port (0: a free one) \\[default: off].",
        ),
    ] = None,
) -> None:
    """Run stream2raw, raw2science and distribute (together or apart) until stopped or idle."""
    from alertbench.broker.stream.run import run_broker
    from alertbench.kafka.local import connection

    flags = ctx.find_root().obj if isinstance(ctx.find_root().obj, Flags) else Flags()
    broker = {
        "trigger": trigger,
        "master": master,
        "topics": topic,
        "format": wire,
        "schema_registry": schema_registry,
        "metrics_port": metrics_port,
    }
    settings = flags.settings(
        kafka={"bootstrap_servers": bootstrap_servers},
        broker={k: v for k, v in broker.items() if v is not None},
    )
    from alertbench.spark.session import resolve_master

    # The inventory's Spark master unless one was given: resolved once, shown as used.
    resolved = settings.broker.model_copy(update={"master": resolve_master(settings)})
    settings = settings.model_copy(update={"broker": resolved})

    def echo(record: dict) -> None:
        if record["rows"]:
            console.print(
                f"[dim]{record['query']:>12}[/] batch {record['batch']:>4}: "
                f"{record['rows']:>6} rows"
                f"  {record['rows_per_s'] or 0:>8.0f} rows/s  {record['batch_ms'] or 0:>6} ms"
            )

    result = run_broker(
        settings,
        servers=connection(settings),
        stages=[s.strip() for s in stages.split(",") if s.strip()],
        until_idle=until_idle,
        timeout=timeout,
        fused=fused,
        echo=echo,
        say=lambda m: console.print(f"[dim]…[/] {m}"),
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    for name, rows in result.rows.items():
        console.print(f"{name}: {rows:,} rows in {result.batches.get(name, 0)} batches")
    console.print(f"outputs in {result.out}")
