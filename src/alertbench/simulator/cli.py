"""``alertbench simulate``: replay alerts into Kafka at survey cadence."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from alertbench.alerts.files import alert_sources
from alertbench.config import Flags
from alertbench.errors import ConfigError
from alertbench.kafka.security import Connection
from alertbench.simulator.run import SimulationOptions, load_alerts, simulate
from alertbench.simulator.schedule import Schedule

console = Console()


def simulate_command(
    ctx: typer.Context,
    servers: Annotated[
        str | None,
        typer.Argument(help="Kafka bootstrap servers \\[default: the embedded cluster]."),
    ] = None,
    topic: Annotated[str, typer.Argument(help="Topic to stream into.")] = "ztf-stream",
    topic_option: Annotated[
        str | None,
        typer.Option(
            "--topic",
            "-t",
            help="Topic to stream into, when the servers come from the embedded cluster or "
            "the inventory (instead of the second argument).",
        ),
    ] = None,
    alerts: Annotated[
        list[str] | None,
        typer.Option(
            "--alerts",
            "-a",
            help="Alert files, folders or globs "
            "\\[default: ALERTBENCH_ALERTS, else the shipped sample].",
        ),
    ] = None,
    wire: Annotated[
        str, typer.Option("--format", help="Wire format: ztf, schemaless or confluent.")
    ] = "ztf",
    schema: Annotated[
        Path | None,
        typer.Option(
            help="Writer schema .avsc (bare-body sources; schemaless).", resolve_path=True
        ),
    ] = None,
    schema_registry: Annotated[
        str | None,
        typer.Option(help="confluent: folder of <id>.avsc files, or a Schema Registry URL."),
    ] = None,
    visit_size: Annotated[int, typer.Option(help="Alerts per visit.")] = 10_000,
    visit_interval: Annotated[float, typer.Option(help="Seconds between visit starts.")] = 37.0,
    rate: Annotated[
        float | None, typer.Option(help="Send at this many alerts/s instead of visits.")
    ] = None,
    replay_speed: Annotated[
        float | None, typer.Option(help="Replay real observation times, this many times faster.")
    ] = None,
    max_speed: Annotated[bool, typer.Option("--max", help="Send as fast as possible.")] = False,
    count: Annotated[int | None, typer.Option(help="Stop after this many alerts.")] = None,
    visits: Annotated[int | None, typer.Option(help="Stop after this many visits.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    loop: Annotated[bool, typer.Option(help="Repeat the source when it runs out.")] = False,
    synthesize: Annotated[
        bool, typer.Option(help="Make unique alerts (new ids, jittered, shifted) from the source.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of --synthesize.")] = 0,
    producers: Annotated[int, typer.Option(help="Producer processes sharing the load.")] = 1,
    partitions: Annotated[int, typer.Option(help="Partitions if the topic is created.")] = 4,
    compression: Annotated[str, typer.Option(help="none, lz4, zstd, snappy or gzip.")] = "none",
    acks: Annotated[str, typer.Option(help="Producer acks: all, 1 or 0.")] = "all",
    key: Annotated[str, typer.Option(help="Message key: objectId or none.")] = "objectId",
    strict: Annotated[bool, typer.Option(help="Stop on the first unreadable file.")] = False,
    summary: Annotated[
        Path | None,
        typer.Option(help="Write the JSON summary here \\[default: run dir].", resolve_path=True),
    ] = None,
) -> None:
    """Stream alerts into Kafka: survey visits, a rate, real-time replay or flat out."""
    from alertbench.kafka.local import connection

    flags = ctx.find_root().obj if isinstance(ctx.find_root().obj, Flags) else Flags()
    settings = flags.settings(kafka={"bootstrap_servers": servers})
    if key not in ("objectId", "none"):
        raise ConfigError(f"--key must be objectId or none, not {key!r}")
    if compression not in ("none", "lz4", "zstd", "snappy", "gzip"):
        raise ConfigError(
            f"--compression must be none, lz4, zstd, snappy or gzip, not {compression!r}"
        )
    modes = [m for m, on in (("rate", rate), ("replay", replay_speed), ("max", max_speed)) if on]
    if len(modes) > 1:
        raise ConfigError(f"choose one of --rate, --replay-speed, --max (got {', '.join(modes)})")
    try:
        schedule = Schedule(
            mode=modes[0] if modes else "visits",  # type: ignore[arg-type]
            visit_size=visit_size,
            visit_interval=visit_interval,
            rate=rate or 1000.0,
            replay_speed=replay_speed or 1.0,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    sources = alert_sources(alerts, settings.alerts)
    if sources.sample:
        console.print(sources.describe(), highlight=False)
    opts = SimulationOptions(
        servers=connection(settings),
        topic=topic_option or topic,
        sources=sources.paths,
        wire=wire,
        schema=schema,
        registry=schema_registry,
        schedule=schedule,
        count=count,
        visits=visits,
        duration=duration,
        loop=loop,
        synthesize=synthesize,
        seed=seed,
        producers=producers,
        partitions=partitions,
        compression=compression,
        acks=acks,
        keyed=key == "objectId",
        strict=strict,
    )
    with console.status("reading alerts…"):
        loaded, report = load_alerts(opts)
    versions = ", ".join(f"{n} × {v}" for v, n in report.versions.most_common())
    console.print(
        f"source: {report.alerts} alerts in {report.files} files ({versions}), "
        f"{report.bytes_per_alert / 1e3:.1f} KB/alert"
    )
    for path, why in report.problems[:10]:
        console.print(f"[yellow]skipped[/] {path}: {why}")
    if len(report.problems) > 10:
        console.print(f"[yellow]… and {len(report.problems) - 10} more skipped files[/]")
    where = Connection.of(opts.servers).describe()
    console.print(f"sending to {where} topic {opts.topic!r}: {schedule.describe()}")

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} alerts"),
        TextColumn("{task.fields[mbps]:.1f} MB/s"),
        TextColumn("visit {task.fields[visit]} (late {task.fields[late]:.2f} s)"),
        TextColumn("{task.fields[failures]} failed"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("streaming", total=None, mbps=0.0, failures=0, visit=0, late=0.0)
        start = time.monotonic()

        def monitor(acked: int, nbytes: int, failures: int, visit: int, late: float) -> None:
            secs = max(time.monotonic() - start, 1e-6)
            progress.update(
                task,
                completed=acked,
                mbps=nbytes / secs / 1e6,
                failures=failures,
                visit=visit,
                late=late,
            )

        result = simulate(opts, alerts=loaded, report=report, monitor=monitor)
    s = result.summary
    _print_summary(s)
    out = summary or settings.run_dir / "simulate" / f"{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(s, indent=2) + "\n")
    console.print(f"summary: {out}")
    if result.failed:
        console.print(f"[red]{s['failures']} alert(s) not delivered[/]: {s['failure_samples'][:3]}")
        raise typer.Exit(1)


def _print_summary(s: dict) -> None:
    if len(s["visits"]) > 1 or s["schedule"]["mode"] == "visits":
        table = Table(title="visits")
        for col in ("visit", "alerts", "lateness s", "send s", "acked s"):
            table.add_column(col, justify="right")
        rows = s["visits"] if len(s["visits"]) <= 20 else s["visits"][:10] + s["visits"][-10:]
        for v in rows:
            table.add_row(
                str(v["visit"]),
                f"{v['alerts']:,}",
                f"{v['lateness_s']:.3f}",
                f"{v['send_s']:.2f}",
                f"{v['ack_s']:.2f}",
            )
        console.print(table)
    console.print(
        f"[green]{s['alerts']:,} alerts[/] ({s['bytes'] / 1e6:,.1f} MB) in {s['elapsed_s']:.2f} s: "
        f"{s['alerts_per_s']:,.0f} alerts/s, {s['mb_per_s']:,.1f} MB/s with {s['producers']} "
        f"producer(s), format {s['format']}, compression {s['compression']}"
    )
