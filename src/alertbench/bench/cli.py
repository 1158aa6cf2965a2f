"""``alertbench bench ...``: run scenarios, rebuild reports, compare runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alertbench.config import Flags

console = Console()
bench_app = typer.Typer(
    help="Benchmarks: scenarios end to end, latency per alert, reports, Rubin verdicts.",
    no_args_is_help=True,
)


@bench_app.command("run")
def run(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Argument(help="A shipped scenario name or a .toml file.")],
    out: Annotated[
        Path, typer.Option(help="Folder that receives the run directory.", resolve_path=True)
    ] = Path("bench-results"),
    alerts: Annotated[
        list[str] | None,
        typer.Option(
            "--alerts",
            "-a",
            help="Alert files, folders or globs "
            "\\[default: ALERTBENCH_ALERTS, else the shipped sample].",
        ),
    ] = None,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-servers",
            "-b",
            help="Use this Kafka instead of an embedded one \\[default: the inventory's brokers, "
            "if an inventory is configured].",
        ),
    ] = None,
    master: Annotated[
        str | None,
        typer.Option(
            help="Use this Spark master instead of local\\[cores] \\[default: the inventory's "
            "spark-master, if it names one]."
        ),
    ] = None,
    visits: Annotated[int | None, typer.Option(help="Override the scenario's visits.")] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="Override the scenario's alert count.")
    ] = None,
    keep_data: Annotated[
        bool, typer.Option(help="Keep Kafka's data and the broker's Parquet (work/).")
    ] = False,
    science: Annotated[
        str | None,
        typer.Option(
            help="Science profile of alertbench's broker: rules or fink \\[default: the "
            "scenario's, else broker.science]."
        ),
    ] = None,
    security: Annotated[
        str | None,
        typer.Option(
            help="Override the scenario's security of the embedded Kafka: plaintext, "
            "sasl_plaintext, ssl or sasl_ssl."
        ),
    ] = None,
    broker_cmd: Annotated[
        str | None,
        typer.Option(
            help="Measure this broker instead of alertbench's: a command, started and stopped "
            "by alertbench, with {servers}, {input_topic} and {client_config} filled in.",
            rich_help_panel="Another broker",
        ),
    ] = None,
    output_topics: Annotated[
        str | None,
        typer.Option(
            help="Its output topics, a regex a whole name matches. Without --broker-cmd: a "
            "broker that already runs, reading --input-topic.",
            rich_help_panel="Another broker",
        ),
    ] = None,
    broker_group: Annotated[
        str | None,
        typer.Option(help="Its consumer group, for its lag.", rich_help_panel="Another broker"),
    ] = None,
    input_topic: Annotated[
        str | None,
        typer.Option(
            help="The topic it reads \\[default with --broker-cmd: a fresh one per run].",
            rich_help_panel="Another broker",
        ),
    ] = None,
    id_format: Annotated[
        str | None,
        typer.Option(
            help="How its output carries the alert: header (alertbench's, kept by a "
            "pass-through), container (ZTF), schema-key (Fink), confluent, json (Lasair).",
            rich_help_panel="Another broker",
        ),
    ] = None,
    id_field: Annotated[
        str | None,
        typer.Option(
            help="The alert id field, dotted if nested \\[default: candid, else diaSourceId].",
            rich_help_panel="Another broker",
        ),
    ] = None,
    timing_host: Annotated[
        str | None,
        typer.Option(
            help="Run the timing consumer on this inventory host (over SSH), away from the "
            "producers; the clock offset between them is measured and recorded."
        ),
    ] = None,
    id_schemas: Annotated[
        Path | None,
        typer.Option(
            help="For --id-format confluent: folder of <id>.avsc of its output's schemas.",
            resolve_path=True,
            rich_help_panel="Another broker",
        ),
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help="Inject a fault during the measured load, NAME[:key=value,...] (see the "
            "README's table of kinds: kafka-kill, kafka-pause, network-slow, host-cut, "
            "driver-kill, bad-input-burst...; keys visit, after_s, heal_after_s and the kind's "
            "own), e.g. kafka-pause:visit=2,after_s=5,heal_after_s=20; repeatable, added to the "
            "scenario's \\[\\[faults]].",
        ),
    ] = None,
    no_faults: Annotated[
        bool,
        typer.Option(
            "--no-faults",
            help="Drop the scenario's \\[\\[faults]]: the same load without them, to set beside "
            "a faulted run with bench compare (--fault still adds).",
        ),
    ] = False,
    kafka_nodes: Annotated[
        int | None,
        typer.Option(help="Nodes of the embedded Kafka (kafka-kill needs 3: replication 3)."),
    ] = None,
    metrics_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            help="Serve the run's metrics for Prometheus on this port (0: a free one, "
            "printed at the start); its timing consumers serve theirs on free ports. The "
            "endpoints are listed in OUT/prometheus-targets.json (see alertbench metrics "
            "prometheus-config).",
            rich_help_panel="Watching",
        ),
    ] = 0,
    no_metrics: Annotated[
        bool,
        typer.Option("--no-metrics", help="Serve no metrics.", rich_help_panel="Watching"),
    ] = False,
    fail_on_verdict: Annotated[
        bool,
        typer.Option(
            "--fail-on-verdict",
            help=f"Exit with status {VERDICT_EXIT} when a Rubin verdict fails (98% within 60 s, "
            "visits held), for CI regression gates; a run that fails its checks exits 1.",
            rich_help_panel="Watching",
        ),
    ] = False,
    repeat: Annotated[
        int,
        typer.Option(
            min=1,
            help="Run the scenario this many times and report each headline figure's median "
            "and spread (repeats.json beside the runs).",
        ),
    ] = 1,
) -> None:
    """Stand up Kafka and the broker, drive the scenario's load, measure, report.

    With --broker-cmd or --output-topics, the broker measured is another one:
    its latency is timed by the alert ids it writes.
    """
    from alertbench.alerts.files import alert_sources
    from alertbench.bench.faults.spec import parse_fault
    from alertbench.bench.live import Progress
    from alertbench.bench.runner import run_bench
    from alertbench.bench.scenario import load_scenario
    from alertbench.kafka.local import inventory_of
    from alertbench.spark.session import resolve_master

    flags = ctx.find_root().obj if isinstance(ctx.find_root().obj, Flags) else Flags()
    settings = flags.settings()
    inv = inventory_of(settings)
    if inv is not None:
        bootstrap_servers = bootstrap_servers or inv.bootstrap_servers or None
    servers = None
    if bootstrap_servers:
        # An existing cluster: with the client config's credentials, if any.
        from alertbench.kafka.local import connection

        servers = connection(flags.settings(kafka={"bootstrap_servers": bootstrap_servers}))
    configured = resolve_master(settings)
    # A local master is the scenario's to size (local[cores]).
    master = master or (None if configured.startswith("local") else configured)
    if security is not None:
        from alertbench.kafka.security import check_protocol

        security = check_protocol(security, "--security")
    other = {
        "cmd": broker_cmd,
        "output_topics": output_topics,
        "group": broker_group,
        "input_topic": input_topic,
        "id_format": id_format,
        "id_field": id_field,
        "id_schemas": id_schemas,
    }
    chosen = load_scenario(
        scenario,
        broker=other,
        visits=visits,
        alerts=count,
        security=security,
        science=science,
        kafka_nodes=kafka_nodes,
        extra_faults=[parse_fault(f) for f in fault or []],
        no_faults=no_faults,
    )
    sources = alert_sources(alerts, settings.alerts)
    console.print(f"[bold]{chosen.name}[/]: {chosen.description}")
    console.print(sources.describe(), highlight=False)
    runs = []
    for k in range(repeat):
        if repeat > 1:
            console.print(f"[bold]run {k + 1} of {repeat}[/]")
        run_dir = run_bench(
            settings,
            chosen,
            out=out,
            sources=sources.paths,
            servers=servers,
            master=master,
            keep_data=keep_data,
            timing_host=timing_host,
            say=lambda m: console.print(f"[dim]…[/] {m}"),
            metrics_port=None if no_metrics else metrics_port,
            watch=lambda view: Progress(view, console),
        )
        runs.append(run_dir)
        passed = show_summary(run_dir, exit_on_failure=repeat == 1)
    if repeat > 1:
        from alertbench.bench import repeats

        folder = repeats.write(out, chosen.name, runs)
        passed = show_repeats(folder)
    if not passed:
        raise typer.Exit(1)
    if fail_on_verdict:
        failed = [why for r in runs for why in failed_verdicts(r)]
        for why in failed:
            console.print(f"[red]verdict failed:[/] {why}")
        if failed:
            raise typer.Exit(VERDICT_EXIT)


#: ``bench run --fail-on-verdict``'s exit status when a Rubin verdict fails.
VERDICT_EXIT = 3


def failed_verdicts(run_dir: Path) -> list[str]:
    """The Rubin verdicts a run failed, each said for people (none: all held or not judged)."""
    from alertbench.bench.results import load

    r = load(run_dir)
    v = r["verdicts"]
    failed = []
    latency = v["rubin_latency"]
    if latency.get("share") is not None and not latency["met"]:
        failed.append(
            f"{run_dir.name}: {latency['share']:.2%} of alerts within {latency['budget_s']:g} s, "
            f"Rubin asks {latency['required_share']:.0%}"
        )
    visit = v["rubin_visit"]
    if visit.get("held") is False:
        failed.append(
            f"{run_dir.name}: visits not held: the worst visit was in "
            f"{visit.get('measured_to', 'raw')} {visit.get('worst_visit_in_raw_s')} s after its "
            f"start, against {visit['visit_interval_s']:g} s between visits"
        )
    return failed


def seconds(value: float | None) -> str:
    """A duration for people: milliseconds below a second, else tenths of a second."""
    if value is None:
        return "—"
    if abs(value) < 1:
        return f"{value * 1e3:.0f} ms"
    return f"{value:,.1f} s"


def show_summary(run_dir: Path, *, exit_on_failure: bool = True) -> bool:
    """Print a run's headline numbers and verdicts; returns whether it passed.

    With ``exit_on_failure``, a failed run exits with status 1 instead.
    """
    from alertbench.bench.results import load

    r = load(run_dir)
    table = Table(title=f"{r['run_id']} ({r['status']})", show_header=False)
    lat = r["latency"]["distribution"] or {}
    raw = r["latency"]["raw"] or {}
    prod = r["producer"]
    rows = [
        ("alerts sent", f"{r['integrity']['sent']:,}"),
        (
            "producer, while sending",
            f"{prod['alerts_per_s']:,.0f} alerts/s, {prod['mb_per_s']:,.1f} MB/s",
        ),
        ("end to end", f"{r['throughput']['alerts_per_s'] or 0:,.0f} alerts/s"),
        ("latency to raw p50/p99", " / ".join(seconds(raw.get(k)) for k in ("p50", "p99"))),
        (
            "latency to topics p50/p99/max",
            " / ".join(seconds(lat.get(k)) for k in ("p50", "p99", "max")),
        ),
        ("integrity", "ok" if r["integrity"]["ok"] else "FAILED"),
    ]
    v = r["verdicts"]
    if v["rubin_visit"].get("held") is not None:
        one = v["rubin_visit"].get("visits") == 1
        label = "visit held (in raw before the next is due)" if one else "visits held"
        rows.append((label, str(v["rubin_visit"]["held"])))
    share = v["rubin_latency"]["share"]
    rows.append(("within 60 s", f"{share:.2%}" if share is not None else "—"))
    if r.get("steps"):
        rows.append(("highest rate held", held_rate(r)))
    ceiling = r.get("ceiling")
    if ceiling:
        rows.append(("null broker's highest held", held_rate(ceiling)))
        ratio = ceiling.get("ratio")
        rows.append(("broker / null broker", f"{ratio:.0%}" if ratio is not None else "—"))
    for k, val in rows:
        table.add_row(k, val)
    console.print(table)
    for name, steps in (("broker", r.get("steps")), ("null broker", (ceiling or {}).get("steps"))):
        if steps:
            title = f"max-throughput steps, {name} (CPU: simulator/kafka/broker)"
            console.print(steps_table(title, steps))
    for w in r.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(w)}")
    for f in r["failures"]:
        console.print(f"[red]failed:[/] {f}")
    console.print(f"report: {run_dir / 'report.html'}")
    if r["status"] != "passed" and exit_on_failure:
        raise typer.Exit(1)
    return r["status"] == "passed"


def held_rate(r: dict) -> str:
    """A max-throughput run's highest held rate for people, marked when only a lower bound."""
    held = r.get("max_held_rate")
    if not held:
        return "none"
    bound = " (a lower bound: every step held)" if r.get("max_held_bound") == "lower bound" else ""
    return f"{held:,.0f} alerts/s{bound}"


def steps_table(title: str, steps: list[dict]) -> Table:
    """Max-throughput's steps: asked, produced, processed, backlog, CPU and verdict.

    The reason of each verdict that is not "held" is the table's caption.
    """
    why = [
        f"step {st['step']} {st.get('verdict', 'not held')}: {st.get('reason', '')}"
        for st in steps
        if not st.get("held")
    ]
    table = Table(title=title, caption="\n".join(escape(w) for w in why) or None)
    for name in ("step", "asked/s", "produced/s", "processed/s", "backlog", "CPU ms/alert"):
        table.add_column(name, justify="right")
    table.add_column("verdict")
    for st in steps:
        cpu = st.get("cpu_ms_per_alert") or {}
        parts = [cpu.get(k) for k in ("simulator", "kafka", "broker")]
        backlog = [st.get("lag_start"), st.get("lag_end")]
        table.add_row(
            str(st["step"]),
            f"{st['rate']:,.0f}",
            f"{st['produced_per_s']:,.0f}",
            "—" if st.get("processed_per_s") is None else f"{st['processed_per_s']:,.0f}",
            " → ".join("—" if x is None else f"{x:,}" for x in backlog),
            "/".join("—" if x is None else f"{x:.1f}" for x in parts),
            st.get("verdict", "held" if st.get("held") else "not held"),
        )
    return table


def show_repeats(folder: Path) -> bool:
    """Print the repeats' headline figures: median, range and spread; returns whether all passed."""
    import json

    from alertbench.bench.repeats import REPEATS_FILE
    from alertbench.bench.values import format_value

    summary = json.loads((folder / REPEATS_FILE).read_text())
    table = Table(title=f"{summary['scenario']}: {summary['repeats']} runs ({summary['status']})")
    for name in ("figure", "median", "min", "max", "spread"):
        table.add_column(name, justify="left" if name == "figure" else "right")
    for label, f in summary["figures"].items():
        spread = "—" if f["spread"] is None else f"{f['spread']:.1%}"
        table.add_row(label, *(format_value(f[k]) for k in ("median", "min", "max")), spread)
    console.print(table)
    console.print(f"repeats: {folder / REPEATS_FILE}")
    return summary["status"] == "passed"


@bench_app.command("report")
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.", resolve_path=True)],
) -> None:
    """Rebuild a run's report.html from its results.json and series."""
    from alertbench.bench.report import render_report

    console.print(f"wrote {render_report(run_dir)}")


@bench_app.command("compare")
def compare(
    run_a: Annotated[
        Path, typer.Argument(help="First run directory, or a --repeat folder.", resolve_path=True)
    ],
    run_b: Annotated[
        Path, typer.Argument(help="Second run directory, or a --repeat folder.", resolve_path=True)
    ],
    noise: Annotated[
        Path | None,
        typer.Option(
            help="A --repeat folder of the same scenario: changes within its run-to-run "
            "spread are marked as noise.",
            resolve_path=True,
        ),
    ] = None,
) -> None:
    """Print two runs side by side; with --repeat folders, say which figures differ."""
    from alertbench.bench.compare import render_compare

    render_compare(run_a, run_b, console, noise=noise)


@bench_app.command("list")
def list_scenarios() -> None:
    """The scenarios shipped with alertbench."""
    from alertbench.bench.scenario import builtin_names, load_scenario

    table = Table("scenario", "kind", "description")
    for name in builtin_names():
        s = load_scenario(name)
        table.add_row(name, s.kind, s.description)
    console.print(table)
