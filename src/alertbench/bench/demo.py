"""``alertbench demo``: start the embedded Kafka, stream real alerts through it, check them.

The end-to-end smoke of the alert system: every alert file is produced as one
message (the ZTF wire format: an Avro container file with its schema), read
back, compared byte for byte and decoded, and the throughput is reported.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import fastavro
import typer
from rich.console import Console
from rich.table import Table

from alertbench.alerts.files import (
    AlertSourceError,
    alert_sources,
    find_alert_files,
    read_packet,
)
from alertbench.config import Flags, Settings
from alertbench.errors import ConfigError
from alertbench.kafka import local
from alertbench.kafka.admin import create_topic
from alertbench.kafka.client import consume, produce

console = Console()


@dataclass
class DemoResult:
    """What the demo measured.

    Attributes
    ----------
    alerts : int
        Alerts produced and read back.
    bytes : int
        Their total size.
    produce_seconds, consume_seconds : float
        Wall time of each direction.
    mismatched : list of str
        Files whose message differed from the file (should be empty).
    ids : list of str
        ``objectId`` (ZTF) or ``diaSourceId`` (Rubin) of each alert read back.
    """

    alerts: int
    bytes: int
    produce_seconds: float
    consume_seconds: float
    mismatched: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


def _alert_id(packet: bytes) -> str:
    record = next(fastavro.reader(io.BytesIO(packet)))
    for key in ("objectId", "diaObjectId"):
        if record.get(key) is not None:
            return str(record[key])
    source = record.get("diaSource") or {}
    return str(source.get("diaSourceId", record.get("candid", "?")))


def run_demo(settings: Settings, files: list[Path], *, topic: str) -> DemoResult:
    """Produce ``files`` to ``topic`` on the configured Kafka, read them back and compare.

    Parameters
    ----------
    settings : Settings
        Says which cluster to use.
    files : list of Path
        Alert files, one message each.
    topic : str
        Topic to create and use.

    Returns
    -------
    DemoResult
    """
    servers = local.connection(settings)
    packets = [read_packet(f) for f in files]
    create_topic(servers, topic, partitions=1, exist_ok=True)
    report = produce(
        servers,
        topic,
        ((f.name.encode(), p) for f, p in zip(files, packets, strict=True)),
        config={"acks": "all", "enable.idempotence": True},
    )
    if report.failed:
        raise ConfigError(f"{len(report.failed)} alert(s) not delivered: {report.failed[0]}")
    start = time.perf_counter()
    messages = consume(servers, topic, count=len(packets))
    consume_seconds = time.perf_counter() - start
    by_name = {f.name.encode(): p for f, p in zip(files, packets, strict=True)}
    mismatched = [k.decode() for _, _, k, v in messages if k is None or by_name.get(k) != v]
    return DemoResult(
        alerts=len(messages),
        bytes=sum(len(v) for *_, v in messages),
        produce_seconds=report.seconds,
        consume_seconds=consume_seconds,
        mismatched=mismatched,
        ids=[_alert_id(v) for *_, v in messages],
    )


def demo_command(
    ctx: typer.Context,
    alerts: Annotated[
        list[str] | None,
        typer.Option(
            help="Alert files, folders or globs "
            "\\[default: ALERTBENCH_ALERTS, else the shipped sample].",
        ),
    ] = None,
    count: Annotated[int, typer.Option(help="How many alerts to stream.")] = 500,
    topic: Annotated[str, typer.Option(help="Topic to stream into.")] = "alertbench-demo",
    keep: Annotated[bool, typer.Option(help="Leave the embedded Kafka running.")] = False,
) -> None:
    """Start the embedded Kafka, stream real alerts through it and show what happened."""
    flags = ctx.find_root().obj if isinstance(ctx.find_root().obj, Flags) else Flags()
    settings = flags.settings()
    sources = alert_sources(alerts, settings.alerts)
    if sources.sample:
        console.print(sources.describe(), highlight=False)
    try:
        files = find_alert_files(sources.paths)[:count]
    except AlertSourceError as exc:
        raise ConfigError(str(exc)) from None
    started_here = False
    if not settings.kafka.bootstrap_servers:
        with console.status("starting the embedded Kafka…"):
            result = local.up(settings)
        started_here = result.created
        console.print(f"Kafka {result.state.kafka_version} at {result.state.bootstrap_servers}")
    try:
        with console.status(f"streaming {len(files)} alerts…"):
            res = run_demo(settings, files, topic=topic)
    finally:
        if started_here and not keep:
            local.down(settings, purge=True)
    mb = res.bytes / 1e6
    table = Table(title=f"{res.alerts} real alerts through Kafka topic {topic!r}")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("alerts/s", justify="right")
    table.add_column("MB/s", justify="right")
    for step, secs in (
        ("produce (acks=all)", res.produce_seconds),
        ("consume", res.consume_seconds),
    ):
        table.add_row(step, f"{secs:.2f}", f"{res.alerts / secs:,.0f}", f"{mb / secs:,.1f}")
    console.print(table)
    console.print(
        f"{mb:.1f} MB, {mb * 1e3 / max(res.alerts, 1):.0f} KB/alert; first ids: "
        + ", ".join(res.ids[:3])
    )
    if res.mismatched:
        console.print(f"[red]{len(res.mismatched)} message(s) differ from their file[/]")
        raise typer.Exit(1)
    console.print("[green]every message read back equals its alert file, byte for byte[/]")
