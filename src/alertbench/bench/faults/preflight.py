"""The checks made before a run with faults: what cannot be struck here is refused first.

Nothing starts before every fault of the scenario is known to be possible:
its kind against the run's Kafka and broker (:func:`alertbench.bench.faults.
spec.refusal`), and what only the machine or the hosts can say (a standalone
worker recorded here, the hosts a cut would act on).
"""

from __future__ import annotations

from alertbench.bench.faults.host_cut import check_hosts, deployed_brokers
from alertbench.bench.faults.spec import refusal
from alertbench.bench.scenario import Scenario
from alertbench.config import Settings
from alertbench.errors import ConfigError
from alertbench.kafka.security import Connection
from alertbench.kafka.state import ClusterState


def preflight(
    settings: Settings,
    scenario: Scenario,
    servers: str | Connection | None,
    master: str | None,
) -> ClusterState | None:
    """Refuse the scenario's faults that cannot run; returns the Kafka deployed on hosts, if any.

    Raises
    ------
    ConfigError
        Naming the fault and why it cannot run here.
    """
    deployed = deployed_cluster(settings, servers)
    for fault in scenario.faults:
        why = refusal(
            fault,
            embedded_nodes=scenario.kafka_nodes if servers is None else None,
            own_broker=scenario.broker is None,
            master=master,
            deployed_brokers=None if deployed is None else len(deployed_brokers(deployed)),
        )
        if why:
            raise ConfigError(f"{why}.")
        if fault.kind.hosts:
            # Every broker host, since which one leads the input is known only mid-run.
            problems = check_hosts(deployed)  # type: ignore[arg-type]
            if problems:
                raise ConfigError(f"fault {fault.name} cannot run: " + "; ".join(problems) + ".")
        if fault.kind.standalone:
            # The worker it names must be one `spark up` started here, tracked by PID.
            from alertbench.bench.faults.broker_acts import standalone_worker
            from alertbench.bench.faults.target import FaultError

            try:
                standalone_worker(settings, master, int(fault.value("worker")))
            except FaultError as exc:
                raise ConfigError(f"fault {fault.name}: {exc}") from None
    return deployed


def deployed_cluster(settings: Settings, servers: str | Connection | None) -> ClusterState | None:
    """The cluster `kafka up` deployed on an inventory's hosts, if it is the one at ``servers``.

    Its state file says where each node runs and how to reach its host over
    SSH, which faults that act on hosts need. None for the embedded Kafka, a
    cluster on this machine alone, or one the run dir has no record of.
    """
    from alertbench.kafka import local

    if servers is None:
        return None
    state = local.recorded_state(settings)
    if state is None or not state.hosts:
        return None

    def addresses(value: str) -> set[str]:
        return {s.strip() for s in value.split(",") if s.strip()}

    listed = addresses(state.bootstrap_servers)
    for extra in state.listeners.values():
        listed |= addresses(extra)
    return state if addresses(Connection.of(servers).servers) <= listed else None
