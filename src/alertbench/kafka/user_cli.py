"""``alertbench kafka user ...`` and ``kafka check-client``: a secured cluster's users."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from alertbench.errors import ConfigError
from alertbench.kafka.cli_options import BootstrapOpt, console
from alertbench.kafka.cli_options import settings as _settings

user_app = typer.Typer(
    help="Users of a secured cluster: SCRAM credentials, ACLs and client config files.",
    no_args_is_help=True,
)


def _user_target(ctx: typer.Context, listener: str | None, bootstrap_servers: str | None):
    """The admin connection, and the protocol and servers a new user connects to."""
    from alertbench.kafka import credentials
    from alertbench.kafka.local import connection, recorded_state

    settings = _settings(ctx, bootstrap_servers=bootstrap_servers)
    admin = connection(settings)
    state = recorded_state(settings)
    listeners = (
        state.listeners
        if state is not None and admin.servers == state.bootstrap_servers
        else {admin.protocol: admin.servers}
    )
    proto = listener.lower() if listener else next(iter(listeners))
    if proto not in listeners:
        raise ConfigError(
            f"the cluster has no {proto} listener (it has {', '.join(listeners)}); "
            "choose one of those with --listener."
        )
    if proto == "plaintext" or admin.protocol == "plaintext":
        raise ConfigError(
            "users need a secured cluster: start one with `alertbench kafka up --security "
            "sasl_ssl` (or sasl_plaintext, ssl)."
        )
    folder = settings.kafka_state_dir
    ca_file = admin.props.get("ssl.ca.location")
    if ca_file is None and (folder / credentials.SECURITY_DIR / credentials.CA_CERT).exists():
        ca_file = str(folder / credentials.SECURITY_DIR / credentials.CA_CERT)
    return admin, proto, listeners[proto], ca_file, credentials.ca_key(folder)


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: str,
    read: Annotated[
        list[str] | None,
        typer.Option("--read", help="A topic the user reads; PREFIX* for every topic so named."),
    ] = None,
    write: Annotated[
        list[str] | None, typer.Option("--write", help="A topic the user writes; PREFIX* too.")
    ] = None,
    group_prefix: Annotated[
        str | None,
        typer.Option(help="Consumer groups the user may use start with this \\[default: NAME]."),
    ] = None,
    listener: Annotated[
        str | None,
        typer.Option(help="The listener the user connects to \\[default: the main one]."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Client config to write \\[default: ./NAME.properties].",
            resolve_path=True,
        ),
    ] = None,
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            help="Also write the file another kind of client takes, beside --out: java "
            "(NAME.java.properties: Kafka's tools, Spark) or kafka-python "
            "(NAME.kafka-python.json: kafka-python, aiokafka). Repeatable.",
        ),
    ] = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Create a user with SCRAM credentials and ACLs, and write its client config (mode 0600).

    The librdkafka properties file (confluent-kafka, kcat -F, Fink's client,
    alertbench) is always written; --format adds the others.
    """
    from alertbench.kafka.client_check import runs_kafka_4, scram_warning
    from alertbench.kafka.client_files import sibling
    from alertbench.kafka.users import Grant, add_user

    admin, proto, servers, ca_file, ca = _user_target(ctx, listener, bootstrap_servers)
    grant = Grant(read=read or [], write=write or [], group_prefix=group_prefix or name)
    path = add_user(
        admin,
        name,
        grant,
        protocol=proto,
        servers=servers,
        out=out or Path.cwd() / f"{name}.properties",
        ca_file=Path(ca_file) if ca_file else None,
        ca=ca,
        formats=formats or [],
    )
    what = (
        ", ".join([f"reads {t}" for t in grant.read] + [f"writes {t}" for t in grant.write])
        or "no topics yet"
    )
    console.print(f"user [bold]{name}[/] ({proto.upper()} at {servers}): {what}")
    console.print(f"client config written to {path} (mode 0600)")
    for fmt in dict.fromkeys(f for f in formats or [] if f != "librdkafka"):
        console.print(f"{fmt} client config written to {sibling(path, fmt)} (mode 0600)")
    warning = scram_warning(proto, "SCRAM-SHA-512", runs_kafka_4(admin))
    if warning:
        console.print(f"[yellow]warning:[/] {warning}")


@user_app.command("list")
def user_list(ctx: typer.Context, bootstrap_servers: BootstrapOpt = None) -> None:
    """Users with SCRAM credentials or ACLs, and what they may do."""
    from alertbench.kafka.local import connection
    from alertbench.kafka.users import list_users

    users = list_users(connection(_settings(ctx, bootstrap_servers=bootstrap_servers)))
    table = Table(title="users")
    for col in ("user", "credentials", "ACLs"):
        table.add_column(col)
    for u in users:
        table.add_row(u.name, ", ".join(u.mechanisms) or "-", "\n".join(u.acls) or "-")
    console.print(table)


@user_app.command("remove")
def user_remove(ctx: typer.Context, name: str, bootstrap_servers: BootstrapOpt = None) -> None:
    """Delete a user's credentials and ACLs."""
    from alertbench.kafka.local import connection
    from alertbench.kafka.users import remove_user

    removed = remove_user(connection(_settings(ctx, bootstrap_servers=bootstrap_servers)), name)
    console.print(f"removed user [bold]{name}[/] and {removed} ACL(s)")


def check_client(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="A client file: librdkafka properties (as `kafka user add` writes) or a Java "
            "client's (Kafka's tools').",
            resolve_path=True,
        ),
    ],
    bootstrap_servers: Annotated[
        str | None,
        typer.Option("--bootstrap-servers", "-b", help="HOST:PORT,... \\[default: the file's]."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each step may take.")] = 10.0,
) -> None:
    """Say what a user's client file can do: reach, trust, log in, read and write.

    Connects as alertbench's clients do, one step at a time, and stops at the
    first that fails, saying what to do. On Kafka 4.x with SCRAM it names the
    client libraries that cannot log in. Exits 1 if a step failed.
    """
    from alertbench.kafka.client_check import check_client as run_check
    from alertbench.kafka.security import Connection, read_client_properties

    props = read_client_properties(file)
    servers = bootstrap_servers or props.get("bootstrap.servers")
    if not servers:
        raise ConfigError(f"{file} names no bootstrap.servers; give them with --bootstrap-servers.")
    conn = Connection.build(servers, props, source=file)
    console.print(f"checking {file} against {conn.describe()}")
    result = run_check(conn, timeout)
    for step in result.steps:
        mark = "[green]ok[/]  " if step.ok else "[red]FAIL[/]"
        console.print(f"{mark} {step.name:<13} {step.detail}", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)
