"""Topic and cluster operations through confluent-kafka's AdminClient."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from alertbench.errors import ClusterError
from alertbench.kafka.security import Connection, Kafka, explain, kafka_error


def admin_client(kafka: Kafka, errors: list[KafkaError] | None = None) -> AdminClient:
    """An AdminClient that stays quiet while brokers are still starting.

    ``errors`` receives the client's own errors (a refused login, a TLS
    handshake that failed): a request then only times out, and they say why.
    """
    conf = Connection.of(kafka).conf(
        {
            # Connection-refused chatter during start-up is expected; failures
            # surface as exceptions from the calls themselves.
            "log_level": 0,
            "socket.connection.setup.timeout.ms": 3000,
        }
    )
    if errors is not None:
        conf["error_cb"] = errors.append
    return AdminClient(conf)


def _telling(admin: AdminClient, errors: list[KafkaError], exc: BaseException):
    """The error that says why a request failed: a refused login or handshake, else ``exc``."""
    admin.poll(0)  # serves the error callbacks
    for err in errors:
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL) or "SSL" in err.str():
            return err
    return exc


def _where(kafka: Kafka) -> str:
    return Connection.of(kafka).describe()


def _refused(exc: BaseException | KafkaError) -> bool:
    """Whether the cluster refused these credentials (waiting will not help)."""
    err = kafka_error(exc)
    return err is not None and err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)


@dataclass
class ClusterInfo:
    """What the cluster says about itself.

    Attributes
    ----------
    cluster_id : str or None
        The cluster id.
    controller : int or None
        Id of the controller node reported (in KRaft, a broker that forwards to it).
    brokers : list of int
        Ids of registered, live brokers.
    """

    cluster_id: str | None
    controller: int | None
    brokers: list[int]


@dataclass
class PartitionInfo:
    """One partition of a topic."""

    id: int
    leader: int
    replicas: list[int]
    isr: list[int]

    @property
    def under_replicated(self) -> bool:
        """Fewer replicas in sync than assigned."""
        return len(self.isr) < len(self.replicas)


@dataclass
class TopicInfo:
    """A topic, its partitions and (when described) its configuration."""

    name: str
    partitions: list[PartitionInfo]
    config: dict[str, str] = field(default_factory=dict)

    @property
    def replication_factor(self) -> int:
        """Replicas of the first partition (Kafka topics share one factor)."""
        return len(self.partitions[0].replicas) if self.partitions else 0

    @property
    def under_replicated(self) -> int:
        """How many partitions are under-replicated."""
        return sum(p.under_replicated for p in self.partitions)


def describe_cluster(bootstrap_servers: Kafka, timeout: float = 10.0) -> ClusterInfo:
    """Ask the cluster for its id, controller and live brokers.

    Raises
    ------
    ClusterError
        If no broker answers within ``timeout`` seconds.
    """
    errors: list[KafkaError] = []
    admin = admin_client(bootstrap_servers, errors)
    deadline = time.monotonic() + timeout
    while True:
        # One slow answer (a controller moving, a loaded machine) is retried
        # until the deadline rather than reported as a dead cluster.
        left = max(1.0, deadline - time.monotonic())
        try:
            desc = admin.describe_cluster(request_timeout=min(5.0, left)).result(timeout=left + 5)
            break
        except (KafkaException, TimeoutError) as exc:
            why = _telling(admin, errors, exc)
            if time.monotonic() >= deadline or _refused(why):
                raise ClusterError(
                    f"no Kafka broker answers at {_where(bootstrap_servers)}: {explain(why)}"
                ) from exc
            time.sleep(0.2)
    controller = desc.controller.id if desc.controller is not None else None
    return ClusterInfo(
        cluster_id=desc.cluster_id,
        controller=controller if controller is not None and controller >= 0 else None,
        brokers=sorted(n.id for n in desc.nodes),
    )


def list_topics(
    bootstrap_servers: Kafka, *, internal: bool = False, timeout: float = 10.0
) -> list[TopicInfo]:
    """Every topic with its partitions, sorted by name.

    Parameters
    ----------
    bootstrap_servers : str or Connection
        Where to connect.
    internal : bool
        Include internal topics such as ``__consumer_offsets``.
    timeout : float
        Seconds to wait for metadata.
    """
    errors: list[KafkaError] = []
    admin = admin_client(bootstrap_servers, errors)
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        why = explain(_telling(admin, errors, exc))
        raise ClusterError(f"cannot list topics at {_where(bootstrap_servers)}: {why}") from exc
    out = []
    for name, t in md.topics.items():
        if name.startswith("__") and not internal:
            continue
        parts = [
            PartitionInfo(id=p.id, leader=p.leader, replicas=list(p.replicas), isr=list(p.isrs))
            for p in sorted(t.partitions.values(), key=lambda p: p.id)
        ]
        out.append(TopicInfo(name=name, partitions=parts))
    return sorted(out, key=lambda t: t.name)


def create_topic(
    bootstrap_servers: Kafka,
    name: str,
    *,
    partitions: int = 1,
    replication: int | None = None,
    config: dict[str, str] | None = None,
    exist_ok: bool = False,
    timeout: float = 30.0,
) -> None:
    """Create a topic.

    Parameters
    ----------
    bootstrap_servers : str or Connection
        Where to connect.
    name : str
        Topic name.
    partitions : int
        Number of partitions.
    replication : int, optional
        Replication factor; the broker default when not given.
    config : dict, optional
        Topic configuration, e.g. ``{"retention.ms": "3600000"}``.
    exist_ok : bool
        Do not fail if the topic already exists.
    timeout : float
        Seconds to wait.

    Raises
    ------
    ClusterError
        With the broker's reason (exists, too few brokers, bad config...).
    """
    admin = admin_client(bootstrap_servers)
    topic = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=replication if replication is not None else -1,
        config=config or {},
    )
    future = admin.create_topics([topic], request_timeout=timeout)[name]
    try:
        future.result(timeout=timeout + 5)
    except KafkaException as exc:
        err = exc.args[0]
        if not (exist_ok and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise ClusterError(f"cannot create topic {name!r}: {explain(exc)}") from exc
    _wait_for_leaders(admin, Connection.of(bootstrap_servers), name, timeout)


def _has_leaders(admin: AdminClient, name: str) -> tuple[bool, dict]:
    """Whether ``admin``'s broker knows ``name`` with a leader for every partition."""
    try:
        md = admin.list_topics(topic=name, timeout=5)
    except KafkaException:
        return False, {}
    topic = md.topics.get(name)
    ok = (
        topic is not None
        and topic.error is None
        and bool(topic.partitions)
        and all(p.leader >= 0 for p in topic.partitions.values())
    )
    return ok, md.brokers


def _wait_for_leaders(admin: AdminClient, conn: Connection, name: str, timeout: float) -> None:
    """Wait until every broker's metadata has ``name`` with a leader for each partition.

    The controller acknowledges a new topic before every broker knows it; a
    producer or describe that lands on a lagging broker right away would fail.
    """
    deadline = time.monotonic() + timeout
    brokers: dict = {}
    while True:
        ok, brokers = _has_leaders(admin, name)
        if ok:
            break
        if time.monotonic() > deadline:
            raise ClusterError(
                f"topic {name!r} has no leader for every partition after {timeout} s"
            )
        time.sleep(0.2)
    for broker in brokers.values():
        one = admin_client(replace(conn, servers=f"{broker.host}:{broker.port}"))
        while not _has_leaders(one, name)[0]:
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"broker {broker.id} does not know topic {name!r} after {timeout} s"
                )
            time.sleep(0.2)


def delete_topic(bootstrap_servers: Kafka, name: str, *, timeout: float = 30.0) -> None:
    """Delete a topic.

    Raises
    ------
    ClusterError
        If it does not exist or the broker refuses.
    """
    admin = admin_client(bootstrap_servers)
    future = admin.delete_topics([name], request_timeout=timeout)[name]
    try:
        future.result(timeout=timeout + 5)
    except KafkaException as exc:
        raise ClusterError(f"cannot delete topic {name!r}: {explain(exc)}") from exc


def describe_topic(bootstrap_servers: Kafka, name: str, *, timeout: float = 10.0) -> TopicInfo:
    """A topic's partitions and its non-default configuration.

    Raises
    ------
    ClusterError
        If the topic does not exist.
    """
    found = list_topics(bootstrap_servers, internal=True, timeout=timeout)
    matches = [t for t in found if t.name == name]
    if not matches:
        raise ClusterError(
            f"topic {name!r} does not exist at {_where(bootstrap_servers)}; "
            "`alertbench kafka topic list` shows the topics there."
        )
    topic = matches[0]
    configs = _topic_configs(bootstrap_servers, name, timeout)
    topic.config = {
        k: v.value for k, v in sorted(configs.items()) if not v.is_default and v.value is not None
    }
    return topic


def _topic_configs(bootstrap_servers: Kafka, name: str, timeout: float) -> dict:
    """Every configuration entry of topic ``name``, defaults included."""
    admin = admin_client(bootstrap_servers)
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    try:
        return admin.describe_configs([resource])[resource].result(timeout=timeout)
    except KafkaException as exc:
        raise ClusterError(f"cannot describe topic {name!r}: {explain(exc)}") from exc


def topic_setting(
    bootstrap_servers: Kafka, name: str, key: str, *, timeout: float = 10.0
) -> str | None:
    """The value a topic has for ``key``, its own or the cluster's default (None: no such key).

    Raises
    ------
    ClusterError
        If the topic cannot be described.
    """
    entry = _topic_configs(bootstrap_servers, name, timeout).get(key)
    return None if entry is None else entry.value


def alter_topic_config(
    bootstrap_servers: Kafka, name: str, config: dict[str, str | None], *, timeout: float = 10.0
) -> None:
    """Set (or, with None, return to the cluster's default) a topic's configuration entries.

    Raises
    ------
    ClusterError
        If the cluster refuses a change.
    """
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    entries = [
        ConfigEntry(
            k,
            v,
            incremental_operation=AlterConfigOpType.DELETE if v is None else AlterConfigOpType.SET,
        )
        for k, v in config.items()
    ]
    resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
    admin = admin_client(bootstrap_servers)
    try:
        admin.incremental_alter_configs([resource])[resource].result(timeout=timeout)
    except KafkaException as exc:
        raise ClusterError(
            f"cannot change topic {name!r}'s {', '.join(config)}: {explain(exc)}"
        ) from exc
