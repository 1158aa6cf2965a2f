"""The inventory: which hosts make up the Kafka cluster, with their roles, ports and dirs.

Two forms are read:

* classic ``/etc/hosts`` lines, ``IP NAME [ALIAS...]``, one host each; every host
  gets every role of the mode (KRaft: controller and broker; ZooKeeper mode:
  zookeeper and broker) and the classic ports;
* TOML, with a ``[defaults]`` table and ``[[hosts]]`` entries that may set
  ``roles``, ports and data dirs per host.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alertbench.errors import ConfigError
from alertbench.kafka.security import PROTOCOLS

Mode = Literal["kraft", "zookeeper"]
Role = Literal["controller", "broker", "zookeeper", "spark-master", "spark-worker"]
SPARK_ROLES: tuple[Role, ...] = ("spark-master", "spark-worker")

MODE_ROLES: dict[str, tuple[Role, ...]] = {
    "kraft": ("controller", "broker"),
    "zookeeper": ("zookeeper", "broker"),
}


class HostDefaults(BaseModel):
    """Settings every host gets unless it sets its own.

    The port defaults are the classic ones of the ZTF/Fink-era deployments.
    """

    model_config = ConfigDict(extra="forbid")

    roles: tuple[Role, ...] | None = None
    broker_port: int = Field(24499, ge=1, le=65535)
    controller_port: int = Field(24500, ge=1, le=65535)
    zookeeper_client_port: int = Field(24498, ge=1, le=65535)
    zookeeper_peer_port: int = Field(23333, ge=1, le=65535)
    zookeeper_election_port: int = Field(23334, ge=1, le=65535)
    # The JMX exporter agent's HTTP port on the Kafka node and on the ZooKeeper node
    # (7071 is the port Kafka's JMX-exporter guides use).
    metrics_port: int = Field(7071, ge=1, le=65535)
    zookeeper_metrics_port: int = Field(7072, ge=1, le=65535)
    data_dir: Path = Path("/data/kafka-logs")
    zookeeper_data_dir: Path = Path("/data/zookeeper")
    install_dir: Path = Path("/opt/alertbench")
    user: str | None = None
    ssh_port: int = Field(22, ge=1, le=65535)
    ssh_key: Path | None = None  # else the SSH agent and the user's default keys
    sudo: bool = False  # run remote commands through `sudo -n`
    # Record a host key never seen before on first use (else refused: alertbench.ssh).
    trust_new_host_keys: bool = False
    java_home: Path | None = None  # else `java` on the host's PATH
    spark_port: int = Field(7077, ge=1, le=65535)
    spark_ui_port: int = Field(8080, ge=1, le=65535)
    spark_worker_ui_port: int = Field(8081, ge=1, le=65535)
    spark_worker_cores: int | None = Field(None, ge=1)  # else every core of the host
    spark_worker_memory: str = "3g"
    spark_dir: Path | None = None  # Spark's logs and work dirs; else <install_dir>/spark
    # Ports of the listeners beyond the main one, by protocol, e.g. {sasl_plaintext = 24502}.
    listener_ports: dict[str, int] = Field(default_factory=dict)
    # A certificate and key the user gives (PEM); else alertbench issues them from its CA.
    tls_cert: Path | None = None
    tls_key: Path | None = None


class Host(HostDefaults):
    """One machine of the cluster."""

    name: str = Field(min_length=1)
    address: str = Field(min_length=1)
    roles: tuple[Role, ...] = ()

    def has(self, role: Role) -> bool:
        """Tell whether this host plays ``role``."""
        return role in self.roles


class Inventory(BaseModel):
    """Every host of a cluster and the mode it runs in."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode = "kraft"
    hosts: list[Host]
    source: str = "<memory>"
    # The main listener's protocol and any further listeners; None: from [kafka].
    security: str | None = None
    listeners: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> Inventory:
        if not self.hosts:
            raise ValueError("no hosts")
        for proto in [self.security or "plaintext", *(self.listeners or [])]:
            if proto not in PROTOCOLS:
                raise ValueError(
                    f"unknown security protocol {proto!r}; use one of {', '.join(PROTOCOLS)}"
                )
        names = [h.name for h in self.hosts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"host names must be unique; repeated: {', '.join(dupes)}")
        allowed = set(MODE_ROLES[self.mode]) | set(SPARK_ROLES)
        for h in self.hosts:
            wrong = set(h.roles) - allowed
            if wrong:
                raise ValueError(
                    f"host {h.name}: role(s) {', '.join(sorted(wrong))} do not exist in "
                    f"{self.mode} mode (allowed: "
                    f"{', '.join(MODE_ROLES[self.mode] + SPARK_ROLES)})"
                )
        masters = self.with_role("spark-master")
        if self.with_role("spark-worker") and len(masters) != 1:
            raise ValueError(
                f"hosts with role 'spark-worker' need exactly one host with role "
                f"'spark-master', found {len(masters)}"
            )
        if len(masters) > 1:
            raise ValueError(
                f"only one host can have role 'spark-master', found "
                f"{', '.join(h.name for h in masters)}"
            )
        need = ("controller", "broker") if self.mode == "kraft" else ("zookeeper", "broker")
        # An inventory of Spark hosts only is valid: it runs no Kafka.
        runs_kafka = any(h.has(r) for h in self.hosts for r in MODE_ROLES[self.mode])
        for role in need if runs_kafka else ():
            if not any(h.has(role) for h in self.hosts):
                raise ValueError(f"{self.mode} mode needs at least one host with role {role!r}")
        used: dict[tuple[str, int], str] = {}
        for h in self.hosts:
            for port_name in _ports_in_use(h):
                key = (h.address, _port(h, port_name))
                if key in used:
                    raise ValueError(
                        f"host {h.name}: {port_name} {key[1]} on {key[0]} is already used by "
                        f"{used[key]}"
                    )
                used[key] = f"{h.name} ({port_name})"
        return self

    def with_role(self, role: Role) -> list[Host]:
        """Hosts that play ``role``, in inventory order."""
        return [h for h in self.hosts if h.has(role)]

    def node_id(self, host: Host) -> int:
        """The id of ``host``: its 1-based position (``node.id``, ``broker.id``, ``myid``)."""
        return self.hosts.index(host) + 1

    @property
    def brokers(self) -> list[Host]:
        """Hosts that run a Kafka broker."""
        return self.with_role("broker")

    @property
    def bootstrap_servers(self) -> str:
        """Comma list of every broker's ``address:port`` (empty without brokers)."""
        return ",".join(f"{h.address}:{h.broker_port}" for h in self.brokers)

    @property
    def declares_spark(self) -> bool:
        """Whether hosts name Spark roles (then the broker runs on this Spark cluster)."""
        return any(h.has(r) for h in self.hosts for r in SPARK_ROLES)

    @property
    def spark_master(self) -> Host:
        """The host of the Spark master: the one with role ``spark-master``, else the first."""
        declared = self.with_role("spark-master")
        return declared[0] if declared else self.hosts[0]

    @property
    def spark_workers(self) -> list[Host]:
        """Hosts of Spark workers: role ``spark-worker``, else every host but the master's.

        A one-host inventory runs its worker beside the master.
        """
        if self.declares_spark:
            return self.with_role("spark-worker")
        return self.hosts[1:] or self.hosts[:1]

    @property
    def spark_master_url(self) -> str:
        """``spark://ADDRESS:PORT`` of the Spark master."""
        m = self.spark_master
        return f"spark://{m.address}:{m.spark_port}"

    @property
    def zookeeper_connect(self) -> str:
        """Comma list of every ZooKeeper's client ``address:port``."""
        return ",".join(
            f"{h.address}:{h.zookeeper_client_port}" for h in self.with_role("zookeeper")
        )


def _ports_in_use(host: Host) -> list[str]:
    ports = []
    if host.has("broker"):
        ports.append("broker_port")
        ports += [f"listener_ports.{p}" for p in host.listener_ports]
    if host.has("controller"):
        ports.append("controller_port")
    if host.has("zookeeper"):
        ports += ["zookeeper_client_port", "zookeeper_peer_port", "zookeeper_election_port"]
    if host.has("spark-master"):
        ports += ["spark_port", "spark_ui_port"]
    if host.has("spark-worker"):
        ports.append("spark_worker_ui_port")
    return ports


def _port(host: Host, name: str) -> int:
    if name.startswith("listener_ports."):
        return host.listener_ports[name.split(".", 1)[1]]
    return getattr(host, name)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_hosts_lines(text: str, *, source: str, mode: Mode) -> Inventory:
    """Read classic ``/etc/hosts``-style lines (``IP NAME [ALIAS...]``).

    Parameters
    ----------
    text : str
        The file's content; ``#`` starts a comment.
    source : str
        File name for error messages.
    mode : {"kraft", "zookeeper"}
        Decides the roles every host gets.

    Returns
    -------
    Inventory

    Raises
    ------
    ConfigError
        Naming the file and line of a malformed entry.
    """
    hosts = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        where = f"{source}, line {lineno}: {raw.strip()!r}"
        if len(fields) < 2:
            raise ConfigError(
                f"{where}: expected 'IP NAME' (e.g. '134.158.74.95 kafka-master'), "
                "found only one field."
            )
        try:
            ipaddress.ip_address(fields[0])
        except ValueError:
            raise ConfigError(
                f"{where}: {fields[0]!r} is not an IP address; lines read 'IP NAME', "
                "e.g. '134.158.74.95 kafka-master'."
            ) from None
        hosts.append({"name": fields[1], "address": fields[0], "roles": MODE_ROLES[mode]})
    if not hosts:
        raise ConfigError(f"{source}: no hosts found; add lines such as '10.0.0.1 kafka-1'.")
    try:
        return Inventory(mode=mode, hosts=hosts, source=source)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_validation_message(exc)}") from None


def parse_toml(text: str, *, source: str, mode: Mode | None = None) -> Inventory:
    """Read a TOML inventory.

    Parameters
    ----------
    text : str
        TOML with optional ``mode``, an optional ``[defaults]`` table and
        ``[[hosts]]`` entries (``name``, ``address`` and any default key).
    source : str
        File name for error messages.
    mode : {"kraft", "zookeeper"}, optional
        Overrides the file's ``mode``.

    Returns
    -------
    Inventory

    Raises
    ------
    ConfigError
        Naming the file and the field that is wrong.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"mode", "security", "listeners", "defaults", "hosts"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))}; an inventory has "
            "'mode', 'security', 'listeners', '[defaults]' and '[[hosts]]'."
        )
    chosen: Mode = mode or data.get("mode", "kraft")
    if chosen not in MODE_ROLES:
        raise ConfigError(f"{source}: mode must be 'kraft' or 'zookeeper', not {chosen!r}.")
    try:
        defaults = HostDefaults(**data.get("defaults", {}))
    except ValidationError as exc:
        raise ConfigError(f"{source}: [defaults] {_validation_message(exc)}") from None
    base = defaults.model_dump(exclude_none=True)
    base.setdefault("roles", MODE_ROLES[chosen])
    hosts = data.get("hosts")
    if not isinstance(hosts, list):
        raise ConfigError(f"{source}: no [[hosts]] entries; each needs 'name' and 'address'.")
    try:
        return Inventory(
            mode=chosen,
            hosts=[{**base, **h} for h in hosts],
            source=source,
            security=data.get("security"),
            listeners=data.get("listeners"),
        )
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_validation_message(exc)}") from None


def load_inventory(path: Path, *, mode: Mode | None = None) -> Inventory:
    """Read an inventory file, TOML if it ends in ``.toml``, else classic host lines.

    Parameters
    ----------
    path : Path
        The file.
    mode : {"kraft", "zookeeper"}, optional
        Cluster mode; for host lines it defaults to ``kraft``, for TOML to the
        file's own ``mode``.

    Returns
    -------
    Inventory

    Raises
    ------
    ConfigError
        If the file is missing or malformed.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read inventory {path}: {exc.strerror}.") from None
    if path.suffix == ".toml":
        return parse_toml(text, source=str(path), mode=mode)
    return parse_hosts_lines(text, source=str(path), mode=mode or "kraft")
