"""``alertbench kafka ...``: fetch Kafka, render configs, run the cluster, manage topics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from alertbench.errors import ConfigError
from alertbench.kafka.cli_options import BootstrapOpt, ModeOpt, VersionOpt, console, say
from alertbench.kafka.cli_options import settings as _settings
from alertbench.kafka.user_cli import check_client, user_app

kafka_app = typer.Typer(
    help="The alert system: fetch Apache Kafka, render node configs, run a cluster.",
    no_args_is_help=True,
)
topic_app = typer.Typer(help="Create, list, describe and delete topics.", no_args_is_help=True)
kafka_app.add_typer(topic_app, name="topic")
kafka_app.add_typer(user_app, name="user")


def _mode(mode: str | None) -> str | None:
    if mode is not None and mode not in ("kraft", "zookeeper"):
        raise ConfigError(f"--mode must be 'kraft' or 'zookeeper', not {mode!r}.")
    return mode


@kafka_app.command("fetch")
def fetch(
    ctx: typer.Context,
    version: VersionOpt = None,
    kafka_home: Annotated[
        Path | None,
        typer.Option(help="Use this unpacked Kafka distribution instead.", resolve_path=True),
    ] = None,
) -> None:
    """Resolve Apache Kafka and the JMX exporter agent its nodes run with into the cache."""
    from alertbench.kafka.fetch import fetch_kafka, kafka_from_home
    from alertbench.kafka.jmx_exporter import fetch_agent

    settings = _settings(ctx, version=version, home=kafka_home)
    if settings.kafka.home is not None:
        install = kafka_from_home(settings.kafka.home)
    else:
        with console.status(f"fetching Kafka {settings.kafka.version}…"):
            install = fetch_kafka(settings, settings.kafka.version, progress=say)
    size = sum(j.stat().st_size for j in install.jars) / 1e6
    console.print(
        f"[green]Kafka {install.release.version}[/] ready: {len(install.jars)} jars, "
        f"{size:.0f} MB in {install.lib_dir}"
    )
    if settings.kafka.jmx_exporter:
        agent = fetch_agent(settings, progress=say)
        console.print(f"[green]JMX exporter agent[/] ready: {agent}")


@kafka_app.command("config")
def config(
    ctx: typer.Context,
    inventory: Annotated[
        Path, typer.Option("--inventory", "-i", help="Hosts file or TOML.", resolve_path=True)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write into.", resolve_path=True)
    ],
    mode: ModeOpt = None,
    version: VersionOpt = None,
    security: Annotated[
        str | None,
        typer.Option(
            help="The main listener's protocol \\[default: the inventory's, else plaintext]."
        ),
    ] = None,
    listener: Annotated[
        list[str] | None, typer.Option(help="A further listener's protocol (repeatable).")
    ] = None,
) -> None:
    """Render every node's files (server.properties, zoo.cfg, myid) from an inventory.

    A secured cluster also gets its CA, host key stores (mode 0600) and the admin's client
    properties under OUT/security/.
    """
    from alertbench.kafka.inventory import load_inventory
    from alertbench.kafka.local import kafka_version_for, node_security, prepare_security
    from alertbench.kafka.release import parse_release
    from alertbench.kafka.render import write_rendered
    from alertbench.kafka.security import check_protocol

    settings = _settings(
        ctx,
        security=check_protocol(security, "--security") if security else None,
        listeners=[check_protocol(p, "--listener") for p in listener] if listener else None,
    )
    inv = load_inventory(inventory, mode=_mode(mode))  # type: ignore[arg-type]
    release = parse_release(kafka_version_for(settings, inv.mode, version))
    sec = node_security(settings, inv)
    secured = prepare_security(settings, sec, inv, out) if sec.secured else None
    written = write_rendered(inv, release, out, secured=secured)
    table = Table(title=f"{inv.mode} cluster, Kafka {release.version}: {len(inv.hosts)} hosts")
    for col in ("host", "address", "id", "roles", "files"):
        table.add_column(col)
    for host in inv.hosts:
        files = sorted(p.name for p in written if p.parent.name == host.name)
        table.add_row(
            host.name, host.address, str(inv.node_id(host)), ",".join(host.roles), " ".join(files)
        )
    console.print(table)
    console.print(f"bootstrap servers: [bold]{inv.bootstrap_servers}[/]")
    console.print(f"written to {out}/ (summary in {out / 'cluster.json'})")


@kafka_app.command("up")
def up(
    ctx: typer.Context,
    nodes: Annotated[int | None, typer.Option(help="Number of nodes \\[default: 1].")] = None,
    mode: ModeOpt = None,
    version: VersionOpt = None,
    base_port: Annotated[
        int | None,
        typer.Option(help="First port; node i uses base+10i.. \\[default: 0 = free ports]."),
    ] = None,
    heap: Annotated[str | None, typer.Option(help="Heap per Kafka JVM \\[default: 512m].")] = None,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-i",
            help="The cluster's hosts (TOML or 'IP NAME' lines). Hosts that are not this "
            "machine are deployed to over SSH.",
            resolve_path=True,
        ),
    ] = None,
    security: Annotated[
        str | None,
        typer.Option(
            help="plaintext, sasl_plaintext, ssl or sasl_ssl: the main listener, used by "
            "alertbench's clients and between brokers \\[default: plaintext].",
        ),
    ] = None,
    listener: Annotated[
        list[str] | None,
        typer.Option(help="A further listener's protocol (repeatable), e.g. sasl_plaintext."),
    ] = None,
) -> None:
    """Start a Kafka cluster (here, or on an inventory's hosts) and wait until it has formed.

    A secured cluster gets SCRAM-SHA-512 users, TLS from a CA made here (or yours), an
    authorizer that denies what no ACL grants, and an admin principal for alertbench's own
    commands. `kafka user add` makes users.
    """
    from alertbench.kafka import local
    from alertbench.kafka.security import check_protocol

    settings = _settings(
        ctx,
        nodes=nodes,
        mode=_mode(mode),
        base_port=base_port,
        heap=heap,
        security=check_protocol(security, "--security") if security else None,
        listeners=[check_protocol(p, "--listener") for p in listener] if listener else None,
    )
    with console.status("starting Kafka…"):
        result = local.up(settings, version=version, inventory=inventory, progress=say)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    if result.hosts:
        _print_hosts(result.hosts)
    state = result.state
    console.print(
        f"[green]Kafka {state.kafka_version}[/] ({state.mode}, {state.protocol.upper()}) up: "
        f"{len(result.info.brokers)} broker(s), controller {result.info.controller}, "
        f"cluster id {result.info.cluster_id}"
    )
    console.print(f"bootstrap servers: [bold]{state.bootstrap_servers}[/]")
    for proto, servers in list(state.listeners.items())[1:]:
        console.print(f"{proto.upper()} listener: [bold]{servers}[/]")
    _print_metrics(state)
    if state.protocol != "plaintext":
        from alertbench.kafka.credentials import ADMIN_PROPERTIES, SECURITY_DIR

        folder = local.cluster_for(settings).state_dir / SECURITY_DIR
        console.print(
            f"admin client config: {folder / ADMIN_PROPERTIES} (alertbench's commands use it); "
            "add users with `alertbench kafka user add NAME --read TOPIC`"
        )


def _print_metrics(state) -> None:
    urls = [n.metrics_url for n in state.nodes if n.metrics_url]
    if urls:
        console.print(f"metrics for Prometheus (JMX exporter): {' '.join(urls)}", highlight=False)


def _print_hosts(reports: list) -> None:
    table = Table(title="hosts")
    for col in ("host", "address", "java", "kafka jars", "nodes"):
        table.add_column(col)
    for r in reports:
        jars = f"{r.copied} copied" if r.copied else "already installed"
        table.add_row(r.host, r.address, r.java, f"{jars} ({r.lib_dir})", ", ".join(r.nodes))
    console.print(table)


@kafka_app.command("down")
def down(
    ctx: typer.Context,
    purge: Annotated[bool, typer.Option(help="Also delete data, logs and state.")] = False,
) -> None:
    """Stop the cluster by PID (SIGTERM, then SIGKILL after the grace period)."""
    from alertbench.kafka import local

    settings = _settings(
        ctx,
    )
    state, killed = local.down(settings, purge=purge)
    if state is None:
        console.print("no Kafka cluster recorded" + ("; run dir purged" if purge else ""))
        return
    msg = f"stopped {len(state.nodes)} process(es)"
    if killed:
        msg += f" ({', '.join(killed)} needed SIGKILL)"
    console.print(msg + ("; data purged" if purge else "; data kept for the next `up`"))


@kafka_app.command("status")
def status(
    ctx: typer.Context,
) -> None:
    """Nodes, controller, brokers, topics and under-replicated partitions."""
    from alertbench.kafka import local

    st = local.status(_settings(ctx))
    table = Table(title=f"Kafka {st.state.kafka_version} ({st.state.mode})")
    for col in ("node", "address", "kind", "roles", "pid", "ports", "state"):
        table.add_column(col)
    for n in st.state.nodes:
        table.add_row(
            n.name,
            n.address,
            n.kind,
            ",".join(n.roles),
            str(n.proc.pid) if n.proc else "-",
            " ".join(str(p) for p in n.ports.values()),
            "[green]running[/]"
            if st.alive[n.name]
            else ("[red]unreachable[/]" if n.host in st.unreachable else "[red]stopped[/]"),
        )
    console.print(table)
    for host, why in st.unreachable.items():
        console.print(f"[red]{host}:[/] {why}")
    console.print(f"bootstrap servers: {st.state.bootstrap_servers} ({st.state.protocol.upper()})")
    for proto, servers in list(st.state.listeners.items())[1:]:
        console.print(f"{proto.upper()} listener: {servers}")
    _print_metrics(st.state)
    if st.info:
        console.print(
            f"controller: {st.info.controller}   brokers: {st.info.brokers}   "
            f"cluster id: {st.info.cluster_id}"
        )
        _print_topics(st.topics)
    elif st.error:
        console.print(f"[red]{st.error}[/]")


def _print_topics(topics: list) -> None:
    table = Table(title="topics")
    for col in ("topic", "partitions", "replication", "under-replicated"):
        table.add_column(col)
    for t in topics:
        table.add_row(
            t.name, str(len(t.partitions)), str(t.replication_factor), str(t.under_replicated)
        )
    console.print(table)


def _parse_configs(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(
                f"--config takes KEY=VALUE (e.g. retention.ms=3600000), not {pair!r}."
            )
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


@topic_app.command("create")
def topic_create(
    ctx: typer.Context,
    name: str,
    partitions: Annotated[int, typer.Option(help="Number of partitions.")] = 1,
    replication: Annotated[
        int | None, typer.Option(help="Replication factor \\[default: the cluster's].")
    ] = None,
    config: Annotated[
        list[str] | None, typer.Option("--config", "-c", help="Topic config KEY=VALUE.")
    ] = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Create a topic."""
    from alertbench.kafka.admin import create_topic
    from alertbench.kafka.local import connection

    servers = connection(_settings(ctx, bootstrap_servers=bootstrap_servers))
    create_topic(
        servers,
        name,
        partitions=partitions,
        replication=replication,
        config=_parse_configs(config or []),
    )
    console.print(f"created topic [bold]{name}[/] ({partitions} partitions)")


@topic_app.command("list")
def topic_list(
    ctx: typer.Context,
    internal: Annotated[bool, typer.Option(help="Include internal topics.")] = False,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """List topics with partitions and replication."""
    from alertbench.kafka.admin import list_topics
    from alertbench.kafka.local import connection

    servers = connection(_settings(ctx, bootstrap_servers=bootstrap_servers))
    _print_topics(list_topics(servers, internal=internal))


@topic_app.command("describe")
def topic_describe(ctx: typer.Context, name: str, bootstrap_servers: BootstrapOpt = None) -> None:
    """Show a topic's partitions (leader, replicas, ISR) and non-default configuration."""
    from alertbench.kafka.admin import describe_topic
    from alertbench.kafka.local import connection

    servers = connection(_settings(ctx, bootstrap_servers=bootstrap_servers))
    topic = describe_topic(servers, name)
    table = Table(title=f"topic {name}")
    for col in ("partition", "leader", "replicas", "isr"):
        table.add_column(col)
    for p in topic.partitions:
        table.add_row(str(p.id), str(p.leader), str(p.replicas), str(p.isr))
    console.print(table)
    for key, value in topic.config.items():
        console.print(f"  {key} = {value}")


@topic_app.command("delete")
def topic_delete(ctx: typer.Context, name: str, bootstrap_servers: BootstrapOpt = None) -> None:
    """Delete a topic."""
    from alertbench.kafka.admin import delete_topic
    from alertbench.kafka.local import connection

    servers = connection(_settings(ctx, bootstrap_servers=bootstrap_servers))
    delete_topic(servers, name)
    console.print(f"deleted topic [bold]{name}[/]")


# After the user commands in the help, as it checks what they write.
kafka_app.command("check-client")(check_client)
