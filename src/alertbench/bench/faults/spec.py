"""What a fault is, as a scenario or ``--fault`` asks for it, and the checks made before a run.

A fault has a kind (:data:`KINDS`), a time (``visit = 2, after_s = 5``: five
seconds into the second visit; without ``visit``, seconds after the measured
load starts), how long until it is healed (``heal_after_s``), and the keys of
its kind. Everything that can be refused without starting anything is
refused here: an unknown kind or key, a visit the scenario does not send, a
time past the load's end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alertbench.errors import ConfigError


@dataclass(frozen=True)
class Kind:
    """One kind of fault: what it does, its keys with their defaults, what it needs."""

    what: str
    keys: dict[str, Any] = field(default_factory=dict)
    heal_after_s: float | None = 10.0  # None: nothing to heal (the fault is one act)
    kafka_nodes: int = 1  # embedded Kafka nodes it needs
    own_broker: bool = False  # acts on alertbench's broker
    embedded_kafka: bool = False  # needs the Kafka the bench started (its settings, its PIDs)
    standalone: bool = False  # needs a Spark standalone cluster that `spark up` started here
    disk: bool = False  # mounts a small filesystem (root, mkfs.ext4) before the broker starts
    network: bool = False  # shapes the loopback interface's traffic (root, tc)
    hosts: bool = False  # acts on the hosts of a Kafka that `kafka up` deployed (SSH, root)


#: The kinds alertbench injects.
KINDS: dict[str, Kind] = {
    "kafka-kill": Kind(
        "the leader of an input partition is killed (SIGKILL) and restarted through the "
        "same launcher after heal_after_s",
        keys={"partition": 0},
        kafka_nodes=3,
    ),
    "kafka-rolling-restart": Kind(
        "every Kafka node in turn is stopped (SIGTERM, SIGKILL after grace_s), restarted "
        "through the same launcher, and the next only once the input's ISR is full again",
        keys={"grace_s": 30},
        heal_after_s=None,
        kafka_nodes=3,
    ),
    "retention-overrun": Kind(
        "the broker under test is paused (SIGSTOP) while the input topic's retention is cut "
        "to retention_ms, so records it had still to read age out; after heal_after_s the "
        "retention is restored and the broker resumed (alertbench's must stop naming them, "
        "or skip and count them: broker.fail_on_data_loss)",
        keys={"retention_ms": 3000},
        heal_after_s=30.0,
        embedded_kafka=True,
    ),
    "network-slow": Kind(
        "every packet the leader of an input partition sends from its ports goes through a "
        "link of rate_mbit (an HTB class on the loopback interface, tc; 0: no limit), "
        "loss_pct of them are dropped at random (nftables), and each is held delay_ms, give "
        "or take jitter_ms (a delayer on an NFQUEUE, iptables), until heal_after_s removes it",
        keys={"partition": 0, "rate_mbit": 50, "loss_pct": 0, "delay_ms": 0, "jitter_ms": 0},
        embedded_kafka=True,
        network=True,
    ),
    "host-cut": Kind(
        "the host of the leader of an input partition is cut off the network (`ip link set "
        "DEV down` on the interface holding the node's address, by a helper on the host that "
        "brings it back up, and its routes, after heal_after_s); needs a Kafka of 3 or more "
        "brokers that `alertbench kafka up` deployed on an inventory's hosts, root there",
        keys={"partition": 0},
        heal_after_s=20.0,
        hosts=True,
    ),
    "kafka-pause": Kind(
        "a Kafka node (the leader of an input partition) is stopped with SIGSTOP and "
        "resumed with SIGCONT after heal_after_s",
        keys={"partition": 0},
    ),
    "driver-kill": Kind(
        "alertbench's broker (its driver, Spark JVM and Python workers) is killed with "
        "SIGKILL and started again on the same checkpoint after heal_after_s, as "
        "--supervise would",
        heal_after_s=2.0,
        own_broker=True,
    ),
    "worker-kill": Kind(
        "the executor that a Spark standalone worker runs for the broker (its JVM and Python "
        "workers) is killed with SIGKILL; the master starts another and Spark runs the lost "
        "tasks again",
        keys={"worker": 1},
        heal_after_s=None,
        own_broker=True,
        standalone=True,
    ),
    "disk-full": Kind(
        "alertbench's broker writes its output (Parquet, checkpoints, progress) on a "
        "filesystem of size_mb of its own, mounted from an image before it starts; the fault "
        "takes every free block of it, and after heal_after_s frees them (a broker that "
        "stopped on the full disk is started again on its checkpoint, as --supervise would)",
        keys={"size_mb": 8192},
        heal_after_s=10.0,
        own_broker=True,
        disk=True,
    ),
    "bad-input-burst": Kind(
        "malformed messages are written between the good alerts: random bytes, truncated "
        "Avro, good alerts with 8 bytes after their record, another schema's container, "
        "good alerts with their format's magic changed and "
        "(Confluent framing) behind an unregistered schema id, good alerts sent a second time "
        "(duplicate ids), and a message 1 MiB over the input topic's max.message.bytes, which "
        "Kafka must refuse",
        keys={
            "random": 3,
            "truncated": 3,
            "trailing": 3,
            "wrong_schema": 3,
            "wrong_magic": 3,
            "wrong_schema_id": 3,
            "duplicates": 3,
            "oversized": 1,
        },
        heal_after_s=None,
        own_broker=True,
    ),
}


class FaultSpec(BaseModel):
    """One fault of a scenario (a ``[[faults]]`` table, or ``--fault NAME:k=v,...``).

    Keys other than the common ones below are the kind's own (:data:`KINDS`).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The kind: " + ", ".join(KINDS) + ".")
    visit: int | None = Field(
        None, ge=1, description="The visit it strikes in (visits schedule); else the load."
    )
    after_s: float = Field(0.0, ge=0, description="Seconds after that visit's (or load's) start.")
    heal_after_s: float | None = Field(
        None, gt=0, description="Seconds until it is healed; default: the kind's."
    )
    params: dict[str, float | int] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _own_keys(cls, data: Any) -> Any:
        # A kind's own keys stand beside the common ones in TOML; they are kept in params.
        if isinstance(data, dict):
            common = {"name", "visit", "after_s", "heal_after_s", "params"}
            own = {k: v for k, v in data.items() if k not in common}
            data = {k: v for k, v in data.items() if k in common}
            data["params"] = {**(data.get("params") or {}), **own}
        return data

    @model_validator(mode="after")
    def _known(self) -> FaultSpec:
        kind = KINDS.get(self.name)
        if kind is None:
            raise ValueError(f"unknown fault {self.name!r}: alertbench injects {', '.join(KINDS)}")
        unknown = sorted(set(self.params) - set(kind.keys))
        if unknown:
            takes = ", ".join(f"{k} (default {v})" for k, v in kind.keys.items()) or "none"
            raise ValueError(
                f"fault {self.name} has no key {', '.join(unknown)}; its own keys: {takes}; "
                "every fault takes visit, after_s and heal_after_s"
            )
        if kind.heal_after_s is None and self.heal_after_s is not None:
            raise ValueError(f"fault {self.name} is one act: it has nothing to heal")
        return self

    @property
    def kind(self) -> Kind:
        """The fault's kind."""
        return KINDS[self.name]

    @property
    def heal_s(self) -> float | None:
        """Seconds from injection to heal (None: nothing to heal)."""
        if self.kind.heal_after_s is None:
            return None
        return self.heal_after_s if self.heal_after_s is not None else self.kind.heal_after_s

    def value(self, key: str) -> Any:
        """The kind's key ``key``: as given, else its default."""
        return self.params.get(key, self.kind.keys[key])

    def label(self) -> str:
        """``name@visit 2+5s`` for people."""
        where = f"visit {self.visit}" if self.visit is not None else "load"
        return f"{self.name} at {where} + {self.after_s:g} s"


def parse_fault(text: str) -> dict[str, Any]:
    """``NAME[:k=v,...]`` (the ``--fault`` flag) as a fault table.

    Raises
    ------
    ConfigError
        For a pair that is not ``key=number``.
    """
    name, _, rest = text.partition(":")
    table: dict[str, Any] = {"name": name.strip()}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not eq or number is None:
            raise ConfigError(
                f"--fault {text}: {pair!r} is not key=number (e.g. "
                "--fault kafka-kill:visit=2,after_s=5,heal_after_s=20)"
            )
        table[key.strip()] = int(number) if number.is_integer() else number
    return table


def check_time(spec: FaultSpec, *, visits: int | None, interval: float, load_s: float | None):
    """Refuse a fault that would strike outside the load.

    Parameters
    ----------
    spec : FaultSpec
        The fault.
    visits : int or None
        Visits the scenario sends (None: not a visits schedule).
    interval : float
        Seconds between visits.
    load_s : float or None
        The load's length in seconds, when known before the run.

    Raises
    ------
    ValueError
        Naming the fault and what the scenario sends.
    """
    if spec.visit is not None:
        if visits is None:
            raise ValueError(
                f"fault {spec.name} names visit {spec.visit}, but this scenario sends no "
                "visits: give after_s from the load's start instead"
            )
        if spec.visit > visits:
            raise ValueError(
                f"fault {spec.name} strikes in visit {spec.visit}, but the scenario sends "
                f"{visits} visit(s)"
            )
        at = (spec.visit - 1) * interval + spec.after_s
    else:
        at = spec.after_s
    if load_s is not None and at >= load_s:
        raise ValueError(
            f"fault {spec.name} would strike {at:g} s into a load of {load_s:g} s: after its end"
        )


def refusal(
    spec: FaultSpec,
    *,
    embedded_nodes: int | None,
    own_broker: bool,
    master: str | None = None,
    deployed_brokers: int | None = None,
) -> str | None:
    """Why ``spec`` cannot run in this run, or None.

    Parameters
    ----------
    spec : FaultSpec
        The fault.
    embedded_nodes : int or None
        Nodes of the bench's embedded Kafka (None: the run uses a Kafka it
        did not start, whose processes are not its to act on).
    own_broker : bool
        Whether the broker under test is alertbench's.
    master : str or None
        The Spark master the broker runs on (None: ``local[N]``).
    deployed_brokers : int or None
        Brokers of the run's Kafka when ``kafka up`` deployed it on an
        inventory's hosts (None: it did not).
    """
    kind = spec.kind
    if kind.hosts:
        if deployed_brokers is None:
            where = "the embedded Kafka"
            if embedded_nodes is None:
                where = "a Kafka it has no record of"
            return (
                f"fault {spec.name} cuts a Kafka node's host off the network, so it needs a "
                "cluster that `alertbench kafka up` deployed on the hosts of an inventory "
                f"(reached over SSH), and this run uses {where}: configure the inventory "
                "(--inventory or ALERTBENCH_INVENTORY) and run `alertbench kafka up` first"
            )
        if deployed_brokers < 3:
            return (
                f"fault {spec.name} needs 3 Kafka brokers on hosts of their own (replication "
                f"3, min ISR 2), and the deployed cluster has {deployed_brokers}"
            )
    if kind.kafka_nodes > 1 or kind.embedded_kafka or spec.name.startswith("kafka-"):
        if embedded_nodes is None:
            return (
                f"fault {spec.name} acts on the Kafka nodes the bench started; this run uses "
                "a Kafka it did not start: run on the embedded Kafka (no --bootstrap-servers)"
            )
        if embedded_nodes < kind.kafka_nodes:
            return (
                f"fault {spec.name} needs {kind.kafka_nodes} Kafka nodes (replication 3, min "
                f"ISR 2), the embedded Kafka has {embedded_nodes}: set kafka_nodes = "
                f"{kind.kafka_nodes} in the scenario (or --kafka-nodes {kind.kafka_nodes})"
            )
    if kind.own_broker and not own_broker:
        return f"fault {spec.name} acts on alertbench's broker, not on another one"
    if kind.network:
        from alertbench.bench.faults.link import link_refusal

        why = link_refusal(
            *(float(spec.value(k)) for k in ("rate_mbit", "loss_pct", "delay_ms", "jitter_ms"))
        )
        if why:
            return f"fault {spec.name} cannot run here: {why}"
    if kind.disk:
        from alertbench.bench.faults.disk import why_not

        why = why_not()
        if why:
            return f"fault {spec.name} cannot run here: {why}"
    if kind.standalone and not (master or "").startswith("spark://"):
        return (
            f"fault {spec.name} kills an executor of a Spark standalone worker, and this run's "
            f"broker runs on {master or 'local[N]'}: start a cluster here (alertbench spark up) "
            "and run with --master spark://HOST:PORT, the master it prints"
        )
    return None
