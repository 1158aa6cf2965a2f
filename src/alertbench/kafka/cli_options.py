"""What the ``alertbench kafka`` commands share: the console, common options, settings."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from alertbench.config import Flags, Settings

console = Console()

ModeOpt = Annotated[
    str | None, typer.Option("--mode", help="kraft (default) or zookeeper (Kafka 3.x).")
]
VersionOpt = Annotated[
    str | None,
    typer.Option("--version", help="Kafka version \\[default: 4.3.1; 3.9.2 for zookeeper]."),
]
BootstrapOpt = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers", "-b", help="HOST:PORT,... \\[default: the embedded cluster]."
    ),
]


def settings(ctx: typer.Context, **kafka: object) -> Settings:
    """The settings, with the root command's flags and these ``[kafka]`` ones on top."""
    flags = ctx.find_root().obj
    return (flags if isinstance(flags, Flags) else Flags()).settings(kafka=kafka)


def say(msg: str) -> None:
    """A progress line."""
    console.print(f"[dim]…[/] {msg}")
