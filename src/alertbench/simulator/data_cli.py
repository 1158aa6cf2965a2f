"""``alertbench data ...``: fetch real survey alerts into the data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from alertbench.config import Flags, Settings
from alertbench.errors import AlertbenchError

console = Console()

data_app = typer.Typer(
    help="Real alert data: fetch public survey alerts into the data dir.",
    no_args_is_help=True,
)
fetch_app = typer.Typer(help="Fetch alerts from a public survey archive.", no_args_is_help=True)
data_app.add_typer(fetch_app, name="fetch")


def _settings(ctx: typer.Context) -> Settings:
    flags = ctx.find_root().obj
    return (flags if isinstance(flags, Flags) else Flags()).settings()


@fetch_app.command("ztf")
def fetch_ztf(
    ctx: typer.Context,
    night: Annotated[str, typer.Option("--night", help="The night, YYYYMMDD (e.g. 20231018).")],
    max_alerts: Annotated[
        int | None,
        typer.Option(
            "--max-alerts",
            "-n",
            min=1,
            help="Keep the first N alerts and stop downloading \\[default: the whole night].",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder to write into \\[default: DATA_DIR/ztf/NIGHT].",
            resolve_path=True,
        ),
    ] = None,
) -> None:
    """Stream the first alerts of a public ZTF nightly archive, without the rest of the night."""
    from alertbench.alerts.archive import ArchiveError, check_night, fetch_ztf_night

    settings = _settings(ctx)
    try:
        check_night(night)  # before the night names a folder
        dest = out if out is not None else settings.data_dir / "ztf" / night
        with Progress(
            SpinnerColumn(),
            TextColumn(f"ZTF {night}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("alerts  {task.fields[mb]:,.1f} MB downloaded"),
            TimeElapsedColumn(),
            console=console,
            transient=True,  # the summary line below says it all; errors stay one line
            disable=not console.is_terminal,  # a bar in a log or a pipe is noise
        ) as progress:
            task = progress.add_task("fetch", total=max_alerts, mb=0.0)

            def on_progress(alerts: int, nbytes: int) -> None:
                progress.update(task, completed=alerts, mb=nbytes / 1e6)

            summary = fetch_ztf_night(
                night,
                dest,
                base_url=settings.ztf_archive_url,
                max_alerts=max_alerts,
                on_progress=on_progress,
            )
    except ArchiveError as exc:
        raise AlertbenchError(str(exc)) from exc
    if summary.alerts == 0:
        console.print(
            f"night {night} had no alerts: {summary.url} is an empty archive "
            f"({summary.bytes_downloaded} bytes)."
        )
        return
    how = (
        "the whole night was read"
        if summary.complete
        else "stopped early, the rest of the night was not downloaded"
    )
    new = summary.alerts - summary.already_present
    written = f"{summary.bytes_written / 1e6:,.1f} MB written"
    if not summary.already_present:
        disk = written
    elif not new:
        disk = "all already there"
    else:
        disk = f"{new} new, {written}; {summary.already_present} already there"
    console.print(
        f"[green]{summary.alerts} alerts[/] ({disk}) in {dest}; "
        f"{summary.bytes_downloaded / 1e6:,.1f} MB downloaded, {how}.",
        highlight=False,
    )
