"""``alertbench spark ...``: a real Spark standalone cluster, here or on an inventory's hosts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from alertbench.config import Flags

console = Console()
spark_app = typer.Typer(
    help="A real Spark standalone cluster: here, or on an inventory's hosts over SSH.",
    no_args_is_help=True,
)


def _spark_settings(ctx: typer.Context, inventory: Path | None = None):
    flags = ctx.find_root().obj if isinstance(ctx.find_root().obj, Flags) else Flags()
    return flags.settings(inventory=inventory)


@spark_app.command("up")
def spark_up(
    ctx: typer.Context,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-i",
            help="Deploy to these hosts over SSH (master on the spark-master host, a worker "
            "on each spark-worker host). Default: the global --inventory, if any.",
            resolve_path=True,
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Number of workers (here only).")] = 1,
    cores: Annotated[int, typer.Option(help="Cores per worker (here only).")] = 2,
    memory: Annotated[str, typer.Option(help="Memory per worker (here only).")] = "3g",
) -> None:
    """Start a standalone master and workers, here or on an inventory's hosts."""
    from alertbench.spark import standalone

    settings = _spark_settings(ctx, inventory)
    if settings.inventory is not None:
        _deploy(settings)
        return
    with console.status("starting Spark…"):
        cluster = standalone.up(settings, workers=workers, cores=cores, memory=memory)
    console.print(f"[green]Spark master[/] {cluster.master_url} with {cluster.workers} worker(s)")
    console.print(f"web UI {cluster.ui_url}; run the broker with --master {cluster.master_url}")


def _deploy(settings) -> None:
    from alertbench.kafka.local import inventory_of
    from alertbench.spark import deploy

    inv = inventory_of(settings)
    with console.status("deploying Spark…"):
        result = deploy.up(settings, inv, progress=lambda m: console.print(f"[dim]…[/] {m}"))
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    for r in result.hosts:
        console.print(
            f"{r.host:<14} {r.address:<16} {r.role:<7} java {r.java:<10} pid {r.pid:<8} {r.action}"
        )
    cluster = result.cluster
    if result.already_running:
        console.print(f"[green]Spark already running[/]: master {cluster.master_url}")
    else:
        console.print(
            f"[green]Spark master[/] {cluster.master_url} with {cluster.workers} worker(s)"
        )
    console.print(
        f"web UI {cluster.ui_url}; `alertbench broker run` uses this master while the "
        "inventory is configured"
    )


@spark_app.command("status")
def spark_status(ctx: typer.Context) -> None:
    """The recorded cluster's daemons (on every host), the master's workers and cores."""
    from alertbench.spark import standalone
    from alertbench.spark import state as spark_state

    st = standalone.status(_spark_settings(ctx))
    for p in st.procs:
        state = p.state if not p.reason else f"{p.state}: {p.reason}"
        console.print(f"{p.name:>18}  {p.host:<14} {p.address:<16} pid {p.pid:>7}  {state}")
    info = st.master
    if info:
        alive = spark_state.alive_workers(info)
        console.print(
            f"master {st.cluster.master_url} ({info.get('status', '?')}): {len(alive)} alive "
            f"worker(s), {info.get('cores', 0)} cores, {info.get('coresused', 0)} in use"
        )
        for w in alive:
            console.print(f"  worker {w.get('host')}  {w.get('cores')} cores  {w.get('memory')} MB")
    else:
        console.print(f"master {st.cluster.master_url}: not answering")


@spark_app.command("down")
def spark_down(
    ctx: typer.Context,
    purge: Annotated[bool, typer.Option(help="Also delete logs and work dirs.")] = False,
) -> None:
    """Stop the recorded cluster by PID (workers, then the master), on every host."""
    from alertbench.spark import standalone

    cluster = standalone.down(_spark_settings(ctx), purge=purge)
    if cluster is None:
        console.print("no Spark cluster recorded")
        return
    # In the order they were stopped: the workers, then the master.
    for name in sorted(cluster.procs, key=lambda n: (n == "master", n)):
        proc = cluster.procs[name]
        console.print(f"stopped {name} (pid {proc.pid} on {proc.host})")
    console.print("Spark cluster stopped" + (" and purged" if purge else ""))
