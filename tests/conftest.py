"""Fixtures shared by every test tier: real alerts, and real Kafka clusters.

Clusters are started from the fetched jars in temporary folders on free ports,
so tests can run beside a live cluster, and are stopped by PID and purged at
teardown, also when a test fails. One single-node KRaft cluster is shared by
the whole session.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from alertbench.alerts.files import find_alert_files
from alertbench.config import Settings, load_settings
from alertbench.java import find_java
from alertbench.kafka import credentials
from alertbench.kafka.cluster import KafkaCluster
from alertbench.kafka.fetch import KafkaInstall, fetch_kafka
from alertbench.kafka.security import Connection, NodeSecurity
from alertbench.kafka.state import ClusterState, local_inventory


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``long`` tests unless ALERTBENCH_LONG_TESTS=1 asks for them.

    Each takes minutes of real clusters to prove what faster tests in the
    suite already prove, in another combination (ZooKeeper mode under a cut
    host, security over SSH deploys); CI stays under its time budget without them.
    """
    if os.environ.get("ALERTBENCH_LONG_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="long: set ALERTBENCH_LONG_TESTS=1 to run it")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def alerts_dir() -> Path:
    """The real ZTF alerts named by ALERTBENCH_ALERTS (CI points it at a night of 1,084)."""
    value = os.environ.get("ALERTBENCH_ALERTS")
    if not value:
        pytest.skip("needs real alerts: set ALERTBENCH_ALERTS to a folder of .avro alert files")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"ALERTBENCH_ALERTS={value} is not a folder")
    return path


def _env_folder(name: str, what: str) -> Path:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"needs {what}: set {name}")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"{name}={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real test alerts of every survey and version (ztf/..., lsst/...): ALERTBENCH_TEST_DATA."""
    return _env_folder("ALERTBENCH_TEST_DATA", "the shared real test alerts")


@pytest.fixture(scope="session")
def shared_schemas() -> Path:
    """Official alert schemas (ztf/vX, lsst/vX) named by ALERTBENCH_SCHEMAS."""
    return _env_folder("ALERTBENCH_SCHEMAS", "the official alert schemas")


@pytest.fixture(scope="session")
def alert_files(alerts_dir: Path) -> list[Path]:
    """Every alert file of ``alerts_dir``, sorted."""
    return find_alert_files([alerts_dir])


def isolated_settings(run_dir: Path, **kafka: object) -> Settings:
    """Settings isolated to ``run_dir``, on free ports; the jar cache stays shared."""
    return load_settings(run_dir=run_dir, kafka={"base_port": 0, **kafka})


@pytest.fixture(scope="session")
def kafka4(tmp_path_factory: pytest.TempPathFactory) -> KafkaInstall:
    """Kafka 4.3.1 (KRaft), fetched once into the user cache."""
    settings = isolated_settings(tmp_path_factory.mktemp("fetch"))
    return fetch_kafka(settings, settings.kafka.version)


@pytest.fixture(scope="session")
def kafka3(tmp_path_factory: pytest.TempPathFactory) -> KafkaInstall:
    """Kafka 3.9.2, the last line with ZooKeeper mode."""
    settings = isolated_settings(tmp_path_factory.mktemp("fetch"))
    return fetch_kafka(settings, settings.kafka.zookeeper_version)


@dataclass
class RunningCluster:
    """A started cluster, its state and the run dir it lives in."""

    cluster: KafkaCluster
    state: ClusterState
    run_dir: Path

    @property
    def bootstrap(self) -> str:
        return self.state.bootstrap_servers

    @property
    def admin(self) -> Connection:
        """The admin principal's connection (plain servers on a PLAINTEXT cluster)."""
        return self.cluster.connection(self.state)


@contextlib.contextmanager
def running_cluster(
    run_dir: Path,
    install: KafkaInstall,
    *,
    nodes: int,
    mode: str,
    security: str = "plaintext",
    listeners: list[str] | None = None,
) -> Iterator[RunningCluster]:
    """Start a local cluster and always stop and purge it afterwards."""
    cluster = KafkaCluster(run_dir / "kafka", find_java(), heap="384m", zookeeper_heap="128m")
    inv = local_inventory(
        cluster.state_dir,
        nodes=nodes,
        mode=mode,  # type: ignore[arg-type]
        listeners=listeners,
    )
    secured = None
    if security != "plaintext":
        secured = credentials.prepare(
            NodeSecurity(security, list(listeners or [])), inv, cluster.state_dir
        )
    state = cluster.plan(inv, install, local=True, secured=secured)
    cluster.save_state(state)
    try:
        cluster.start(state, timeout=120)
        yield RunningCluster(cluster, state, run_dir)
    finally:
        cluster.stop(state, grace=10)
        cluster.purge(state)


@pytest.fixture(scope="session")
def single_kafka(
    tmp_path_factory: pytest.TempPathFactory, kafka4: KafkaInstall
) -> Iterator[RunningCluster]:
    """One KRaft node shared by the tests that only need a broker."""
    with running_cluster(tmp_path_factory.mktemp("single"), kafka4, nodes=1, mode="kraft") as rc:
        yield rc


#: How long one ``alertbench`` command may run in a test before it is stopped.
CLI_TIMEOUT_S = 300


def _run_cli(
    *args: str,
    run_dir: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "alertbench"]
    if run_dir is not None:
        argv += ["--run-dir", str(run_dir)]
    full_env = dict(os.environ, COLUMNS="200", NO_COLOR="1", **(env or {}))
    with subprocess.Popen(
        [*argv, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=cwd,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=CLI_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # SIGTERM first: the command stops the Kafka nodes and brokers it started.
            proc.terminate()
            try:
                stdout, stderr = proc.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            raise subprocess.TimeoutExpired(
                proc.args, CLI_TIMEOUT_S, output=stdout, stderr=stderr
            ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture
def cli():
    """Run the real `alertbench` command in a subprocess: ``cli(*args, run_dir=...)``."""
    return _run_cli


@pytest.fixture
def kafka_cluster(tmp_path: Path):
    """Start a cluster for one test: ``with kafka_cluster(install, nodes=3, mode="kraft")``."""

    def start(install: KafkaInstall, *, nodes: int, mode: str = "kraft", **security):
        return running_cluster(
            tmp_path / f"{mode}-{nodes}", install, nodes=nodes, mode=mode, **security
        )

    return start


def read_messages(
    servers: str | Connection,
    topic: str,
    *,
    count: int | None = None,
    quiet: float = 5.0,
    timeout: float = 60.0,
) -> list:
    """Messages of ``topic`` from the beginning, through a fresh consumer group.

    Reads until ``count`` messages have come (then asserts there are exactly
    that many so far), or, without ``count``, until nothing new arrives for
    ``quiet`` seconds.
    """
    from confluent_kafka import Consumer

    consumer = Consumer(
        Connection.of(servers).conf(
            {
                "group.id": f"t-{topic}-{time.time()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([topic])
    out: list = []
    last = time.monotonic()
    deadline = last + timeout
    try:
        while (time.monotonic() < deadline) if count else (time.monotonic() - last < quiet):
            for m in consumer.consume(500, timeout=0.5):
                if m.error() is None:
                    out.append(m)
                    last = time.monotonic()
            if count is not None and len(out) >= count:
                break
    finally:
        consumer.close()
    if count is not None:
        assert len(out) == count, f"read {len(out)} of {count} messages of {topic}"
    return out


def bench_in_process(root: Path, alerts_dir: Path, scenario: str) -> Path:
    """``run_bench`` of ``scenario`` (a name or a file) in this process, its data kept."""
    from alertbench.bench.runner import run_bench
    from alertbench.bench.scenario import load_scenario

    settings = load_settings(run_dir=root / "state", broker={"driver_memory": "1g"})
    return run_bench(
        settings,
        load_scenario(scenario),
        out=root / "results",
        sources=[str(alerts_dir)],
        keep_data=True,
    )
