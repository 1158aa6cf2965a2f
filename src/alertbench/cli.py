"""The ``alertbench`` command. Thin: parses flags, builds settings, calls the parts."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from alertbench import __version__
from alertbench.config import Flags
from alertbench.errors import AlertbenchError

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="alertbench",
    help=(
        "Stand up a real alert system (Apache Kafka) and alert broker (Apache Spark), "
        "stream real survey alerts through them and measure them at survey scale."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        console.print(f"alertbench {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Runtime state: node data, logs, PIDs \\[default: ./.alertbench].",
            resolve_path=True,
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Downloads kept across runs (Kafka jars, Maven).", resolve_path=True),
    ] = None,
    java_home: Annotated[
        Path | None, typer.Option(help="JDK >= 17 to use.", resolve_path=True)
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-i",
            help="The cluster's hosts (TOML or 'IP NAME' lines); see `kafka up`, `spark up`.",
            resolve_path=True,
        ),
    ] = None,
    client_config: Annotated[
        Path | None,
        typer.Option(
            "--client-config",
            help="Kafka client properties (librdkafka names: security.protocol, sasl.username, "
            "...) every client uses, e.g. one `kafka user add` wrote \\[default: the admin's "
            "of the cluster `kafka up` started].",
            resolve_path=True,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Options that apply to every command (also settable in alertbench.toml or ALERTBENCH_*)."""
    ctx.obj = Flags(
        run_dir=run_dir,
        cache_dir=cache_dir,
        java_home=java_home,
        inventory=inventory,
        kafka={"client_config": client_config},
    )


def _register() -> None:
    from alertbench.bench.cli import bench_app
    from alertbench.bench.demo import demo_command
    from alertbench.broker.cli import broker_app
    from alertbench.kafka.cli import kafka_app
    from alertbench.observe.cli import metrics_app
    from alertbench.simulator.cli import simulate_command
    from alertbench.simulator.data_cli import data_app
    from alertbench.spark.cli import spark_app

    app.add_typer(kafka_app, name="kafka")
    app.command("simulate")(simulate_command)
    app.add_typer(data_app, name="data")
    app.add_typer(broker_app, name="broker")
    app.add_typer(spark_app, name="spark")
    app.command("demo")(demo_command)
    app.add_typer(bench_app, name="bench")
    app.add_typer(metrics_app, name="metrics")


_register()


def _exit_on_sigterm() -> None:
    """Make SIGTERM unwind the command as Ctrl-C does, so it stops what it started.

    Python's default for SIGTERM ends the process at once, and the Kafka nodes,
    brokers and consumers a command started would be left running. The first
    SIGTERM raises ``SystemExit`` in the main thread (``finally`` blocks stop
    those processes by PID); later ones are ignored so that cleanup finishes
    (by a handler, not ``SIG_IGN``, which the processes it starts would inherit).
    """
    received: list[int] = []

    def on_term(signum: int, _frame: object) -> None:
        if not received:
            received.append(signum)
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)


def main() -> None:
    """Entry point: run the app, turning alertbench errors into one red line."""
    _exit_on_sigterm()
    try:
        # Standalone mode: Typer handles --help, usage errors and exit codes.
        app()
    except AlertbenchError as exc:
        # The message is text, not markup: "[defaults]" and the like stay as written.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
