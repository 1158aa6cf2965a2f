"""Each kind of fault and the act that injects and heals it (one small class per kind)."""

from __future__ import annotations

from collections.abc import Callable

from alertbench.bench.faults.broker_acts import DiskFull, DriverKill, WorkerKill
from alertbench.bench.faults.host_cut import HostCut
from alertbench.bench.faults.input_acts import BadInputBurst
from alertbench.bench.faults.kafka_acts import (
    KafkaKill,
    KafkaPause,
    KafkaRollingRestart,
    RetentionOverrun,
)
from alertbench.bench.faults.network import NetworkSlow
from alertbench.bench.faults.spec import FaultSpec
from alertbench.bench.faults.target import Act, Target

ACTS: dict[str, Callable[[FaultSpec, Target], Act]] = {
    "kafka-pause": KafkaPause,
    "kafka-kill": KafkaKill,
    "kafka-rolling-restart": KafkaRollingRestart,
    "retention-overrun": RetentionOverrun,
    "network-slow": NetworkSlow,
    "host-cut": HostCut,
    "driver-kill": DriverKill,
    "worker-kill": WorkerKill,
    "disk-full": DiskFull,
    "bad-input-burst": BadInputBurst,
}
