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
) -> None:
    """Run stream2raw, raw2science and distribute (together or apart) until stopped or idle."""
    from alertbench.broker.run import run_broker
    from alertbench.kafka.local import bootstrap_servers as find_bootstrap

    flags = ctx.find_root().obj if isinstance(ctx.find_root().obj, Flags) else Flags()
    broker = {
        "trigger": trigger,
        "master": master,
        "topics": topic,
        "format": wire,
        "schema_registry": schema_registry,
    }
    settings = flags.settings(
        kafka={"bootstrap_servers": bootstrap_servers},
        broker={k: v for k, v in broker.items() if v},
    )

    def echo(record: dict) -> None:
        if record["rows"]:
            console.print(
                f"[dim]{record['query']:>12}[/] batch {record['batch']:>4}: "
                f"{record['rows']:>6} rows"
                f"  {record['rows_per_s'] or 0:>8.0f} rows/s  {record['batch_ms'] or 0:>6} ms"
            )

    result = run_broker(
        settings,
        servers=find_bootstrap(settings),
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


spark_app = typer.Typer(
    help="A real Spark standalone cluster on this machine (master + workers).",
    no_args_is_help=True,
)


def _spark_settings(ctx: typer.Context):
    flags = ctx.find_root().obj if isinstance(ctx.find_root().obj, Flags) else Flags()
    return flags.settings()


@spark_app.command("up")
def spark_up(
    ctx: typer.Context,
    workers: Annotated[int, typer.Option(help="Number of workers.")] = 1,
    cores: Annotated[int, typer.Option(help="Cores per worker.")] = 2,
    memory: Annotated[str, typer.Option(help="Memory per worker.")] = "3g",
) -> None:
    """Start a standalone master and workers here (from pyspark's spark-class)."""
    from alertbench.broker import standalone

    with console.status("starting Spark…"):
        cluster = standalone.up(_spark_settings(ctx), workers=workers, cores=cores, memory=memory)
    console.print(f"[green]Spark master[/] {cluster.master_url} with {cluster.workers} worker(s)")
    console.print(f"web UI {cluster.ui_url}; run the broker with --master {cluster.master_url}")


@spark_app.command("status")
def spark_status(ctx: typer.Context) -> None:
    """The master's URL, its workers and their cores."""
    from alertbench.broker import standalone
    from alertbench.errors import ClusterError
    from alertbench.procs import LocalTransport

    settings = _spark_settings(ctx)
    cluster = standalone.read_state(settings)
    if cluster is None:
        raise ClusterError("no Spark cluster recorded; start one with `alertbench spark up`.")
    local = LocalTransport()
    for name, proc in cluster.procs.items():
        state = "running" if local.is_running(proc) else "stopped"
        console.print(f"{name:>10}  pid {proc.pid:>7}  {state}")
    info = standalone.master_status(cluster.ui_url)
    if info:
        console.print(
            f"master {cluster.master_url}: {info.get('aliveworkers', 0)} alive worker(s), "
            f"{info.get('cores', 0)} cores, {info.get('coresused', 0)} in use"
        )


@spark_app.command("down")
def spark_down(
    ctx: typer.Context,
    purge: Annotated[bool, typer.Option(help="Also delete logs and work dirs.")] = False,
) -> None:
    """Stop the standalone cluster by PID."""
    from alertbench.broker import standalone

    cluster = standalone.down(_spark_settings(ctx), purge=purge)
    console.print("no Spark cluster recorded" if cluster is None else "Spark cluster stopped")
