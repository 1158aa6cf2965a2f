"""Spark deployed to real hosts over SSH, and the broker running on it.

The hosts are network namespaces with an sshd each (see tests/hosts.py); they
share this machine's file system, so this Python environment (and its
pyspark) is at the same path on every host, as a real deployment needs. The
Kafka the executors read from runs on this machine, on its address on the
hosts' bridge.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from alertbench.errors import ClusterError
from alertbench.kafka.inventory import load_inventory
from alertbench.spark import deploy, standalone
from alertbench.spark import hosts as spark_hosts
from alertbench.spark import state as spark_state
from alertbench.ssh import SSHTarget, SSHTransport
from conftest import _run_cli, read_messages
from hosts import network_hosts, why_not

REASON = why_not()
pytestmark = [
    pytest.mark.skipif(REASON is not None, reason=f"no test hosts: {REASON}"),
    pytest.mark.spark,
    pytest.mark.slow,
]

CUTS = "rb >= 0.7 AND nbad = 0"
BRIGHT = "hosts-bright"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory):
    with network_hosts(3, tmp_path_factory.mktemp("hosts")) as made:
        yield made


def write_inventory(
    folder: Path, hosts, *, extra: str = "", overrides: dict[str, dict[str, str]] | None = None
) -> Path:
    """host1 the Kafka node and the Spark master, host2-3 Spark workers."""
    overrides = overrides or {}
    lines = [
        "[defaults]",
        f'ssh_key = "{hosts[0].key_file}"',
        "spark_worker_cores = 1",
        'spark_worker_memory = "2g"',
    ]
    roles = {
        "host1": '["controller", "broker", "spark-master"]',
        "host2": '["spark-worker"]',
        "host3": '["spark-worker"]',
    }
    for h in hosts:
        lines += [
            "[[hosts]]",
            f'name = "{h.name}"',
            f'address = "{h.address}"',
            f"roles = {roles[h.name]}",
            f'install_dir = "{folder / h.name}"',
            f'data_dir = "{folder / h.name / "kafka-logs"}"',
        ]
        lines += [f'{k} = "{v}"' for k, v in overrides.get(h.name, {}).items()]
    path = folder / "hosts.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def transport(host) -> SSHTransport:
    return SSHTransport(SSHTarget(host.name, host.address, key_file=host.key_file))


def java_pids(host) -> list[str]:
    """Command lines of the JVMs running inside a host's namespace."""
    pids = subprocess.run(
        ["ip", "netns", "pids", host.netns], capture_output=True, text=True
    ).stdout.split()
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "java" in cmd:
                found.append(cmd)
    return found


def settings_for(run_dir: Path, inv: Path, **broker):
    from alertbench.config import load_settings

    return load_settings(run_dir=run_dir, inventory=inv, broker=broker)


def test_a_bad_host_fails_up_naming_it_and_nothing_starts(hosts, tmp_path: Path) -> None:
    net = hosts[0].address.rsplit(".", 1)[0]
    nojava = tmp_path / "nojava"
    nojava.mkdir()
    ghost = (
        "[[hosts]]\n"
        'name = "ghost"\n'
        f'address = "{net}.250"\n'
        'roles = ["spark-worker"]\n'
        f'install_dir = "{tmp_path / "ghost"}"\n'
    )
    inv_path = write_inventory(
        tmp_path, hosts, extra=ghost, overrides={"host2": {"java_home": str(nojava)}}
    )
    settings = settings_for(tmp_path / "run", inv_path)
    try:
        with pytest.raises(ClusterError) as err:
            deploy.up(settings, load_inventory(inv_path), connect_timeout=3)
        message = str(err.value)
        assert "2 host(s) failed the checks, so nothing was started" in message
        assert f"host host2 ({hosts[1].address}): `{nojava}/bin/java -version` failed" in message
        assert f"host ghost ({net}.250): " in message
        assert "not reachable over SSH" in message
        assert "host1" not in message
        assert "host3" not in message
        for h in hosts:
            assert java_pids(h) == [], h.name
        state = spark_state.read_state(settings)
        assert state is None or state.procs == {}
    finally:
        with contextlib.suppress(ClusterError):
            standalone.down(settings, purge=True)


def test_a_host_without_the_drivers_python_is_told_to_install_it(hosts, tmp_path: Path) -> None:
    import pyspark

    inv = load_inventory(write_inventory(tmp_path, hosts))
    with transport(hosts[1]) as t, pytest.raises(ClusterError) as err:
        spark_hosts.check_host(
            t,
            inv.hosts[1],
            ports=[],
            python="/nowhere/bin/python",
            pyspark_version=pyspark.__version__,
        )
    assert str(err.value).startswith("host host2: the Python at /nowhere/bin/python cannot run")
    assert "install the same environment" in str(err.value)


def test_a_worker_that_exits_at_start_stops_what_was_started(hosts, tmp_path: Path) -> None:
    # Passes every check, but the worker JVM rejects its memory size and exits.
    inv_path = write_inventory(
        tmp_path, hosts, overrides={"host3": {"spark_worker_memory": "lots"}}
    )
    settings = settings_for(tmp_path / "run", inv_path)
    try:
        with pytest.raises(ClusterError) as err:
            deploy.up(settings, load_inventory(inv_path), timeout=60)
        message = str(err.value)
        assert message.startswith(
            f"Spark worker-host3 on host host3 ({hosts[2].address}) exited during start-up"
        )
        assert "Usage: Worker" in message  # the end of the worker's log: Spark's own complaint
        for h in hosts:
            assert java_pids(h) == [], h.name
        assert spark_state.read_state(settings).procs == {}
    finally:
        with contextlib.suppress(ClusterError):
            standalone.down(settings, purge=True)


def test_up_again_a_stale_worker_and_down_with_a_host_cut_off(hosts, tmp_path: Path, cli) -> None:
    inv_path = write_inventory(tmp_path, hosts)
    inv = load_inventory(inv_path)
    run_dir = tmp_path / "run"
    settings = settings_for(run_dir, inv_path)
    try:
        first = deploy.up(settings, inv)
        assert [(r.host, r.role, r.action) for r in first.hosts] == [
            ("host1", "master", "started"),
            ("host2", "worker", "started"),
            ("host3", "worker", "started"),
        ]
        pids = {r.host: r.pid for r in first.hosts}
        # A second cluster on the same hosts (another run dir) finds every port taken.
        with pytest.raises(ClusterError) as err:
            deploy.up(settings_for(tmp_path / "other-run", inv_path), inv)
        taken = str(err.value)
        assert "3 host(s) failed the checks, so nothing was started" in taken
        assert f"host host1 ({hosts[0].address}): port 7077 (spark_port)" in taken
        assert "port 8080 (spark_ui_port)" in taken
        assert f"host host3 ({hosts[2].address}): port 8081 (spark_worker_ui_port)" in taken
        # Up again, through the CLI's own --inventory: nothing is started.
        done = cli("spark", "up", "--inventory", str(inv_path), run_dir=run_dir)
        assert done.returncode == 0, done.stderr
        assert "Spark already running" in done.stdout
        for h in hosts:
            assert f"pid {pids[h.name]}" in done.stdout

        # A worker dies: the next up starts that one only.
        cluster = spark_state.read_state(settings)
        dead = cluster.procs["worker-host3"]
        with transport(hosts[2]) as t:
            t.send_signal(dead, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while t.is_running(dead) and time.monotonic() < deadline:
                time.sleep(0.2)
        again = deploy.up(settings, inv)
        assert not again.already_running
        assert any("worker-host3" in n and "no longer running" in n for n in again.notes)
        actions = {r.host: (r.action, r.pid) for r in again.hosts}
        assert actions["host1"] == ("running", pids["host1"])
        assert actions["host2"] == ("running", pids["host2"])
        assert actions["host3"][0] == "restarted"
        assert actions["host3"][1] != pids["host3"]
        info = spark_state.master_status(cluster.ui_url)
        assert {w["host"] for w in spark_state.alive_workers(info)} == {
            hosts[1].address,
            hosts[2].address,
        }

        done = cli("spark", "status", run_dir=run_dir)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("running") == 3
        assert "2 alive worker(s)" in done.stdout

        # host3 is cut off: down stops the rest and keeps host3's record.
        subprocess.run(["ip", "link", "set", hosts[2].veth, "down"], check=True)
        try:
            with pytest.raises(ClusterError, match=r"host3: .*not reachable") as err:
                standalone.down(settings)
            assert "worker-host3" in str(err.value)
            left = spark_state.read_state(settings)
            assert list(left.procs) == ["worker-host3"]
            assert java_pids(hosts[0]) == []
            assert java_pids(hosts[1]) == []
            assert len(java_pids(hosts[2])) == 1
        finally:
            subprocess.run(["ip", "link", "set", hosts[2].veth, "up"], check=True)
        done = cli("spark", "down", "--purge", run_dir=run_dir)
        assert done.returncode == 0, done.stderr
        assert "stopped worker-host3" in done.stdout
        assert java_pids(hosts[2]) == []
        assert not (tmp_path / "host2" / "spark" / "work").exists()
        assert spark_state.read_state(settings) is None
    finally:
        with contextlib.suppress(ClusterError):
            standalone.down(settings, purge=True)


@pytest.fixture(scope="module")
def deployed(hosts, tmp_path_factory: pytest.TempPathFactory):
    """Kafka on host1 and Spark (master host1, workers host2-3), both from one inventory."""
    from alertbench.kafka import local as kafka_local

    root = tmp_path_factory.mktemp("deployed")
    inv_path = write_inventory(root, hosts)
    run_dir = root / "run"
    settings = settings_for(run_dir, inv_path)
    try:
        kafka = _run_cli("--inventory", str(inv_path), "kafka", "up", run_dir=run_dir)
        assert kafka.returncode == 0, kafka.stderr + kafka.stdout
        # The global --inventory flag carries the inventory to `spark up`.
        spark = _run_cli("--inventory", str(inv_path), "spark", "up", run_dir=run_dir)
        assert spark.returncode == 0, spark.stderr + spark.stdout
        yield root, inv_path, run_dir, spark.stdout
    finally:
        try:
            standalone.down(settings, purge=True)
        finally:
            kafka_local.down(settings, purge=True)


@pytest.mark.kafka
# Long: test_bench_runs_on_the_deployed_cluster runs the broker on the same
# cluster and checks every alert; this checks the pipeline's outputs in detail.
@pytest.mark.long
def test_the_broker_pipeline_runs_on_the_deployed_cluster(
    hosts, deployed, alert_files, tmp_path: Path, cli
) -> None:
    from alertbench.alerts.reader import AlertReader
    from alertbench.broker.stream.run import run_broker
    from alertbench.kafka import local as kafka_local
    from alertbench.spark.session import resolve_master

    root, inv_path, run_dir, spark_up = deployed
    files = alert_files[:60]
    sources = {a.record["candid"]: a.record for a in AlertReader().read(files)}
    topic = "hosts-stream"
    settings = settings_for(
        run_dir,
        inv_path,
        topics=[topic],
        trigger="1 second",
        cuts=CUTS,
        filters={BRIGHT: "magpsf <= 17.5"},
        executor_memory="1g",
        output=str(tmp_path / "broker"),
    )
    # Kafka's addresses come from the inventory: host1, across the bridge.
    servers = kafka_local.bootstrap_servers(settings)
    assert servers == f"{hosts[0].address}:24499"
    for h, role in zip(hosts, ("master", "worker", "worker"), strict=True):
        line = next(x for x in spark_up.splitlines() if x.startswith(h.name))
        for part in (h.address, role, "java 17", "pid ", "started"):
            assert part in line, line
    cluster = spark_state.read_state(settings)
    info = spark_state.master_status(cluster.ui_url)
    workers = spark_state.alive_workers(info)
    assert sorted(w["host"] for w in workers) == sorted(h.address for h in hosts[1:])
    assert all(w["cores"] == 1 for w in workers)

    # The simulator finds the brokers in the inventory too.
    sent = cli(
        "--inventory",
        str(inv_path),
        "simulate",
        "--topic",
        topic,
        "--max",
        *[arg for f in files for arg in ("--alerts", str(f))],
        run_dir=run_dir,
    )
    assert sent.returncode == 0, sent.stderr
    # No master given: the inventory's is used.
    assert resolve_master(settings) == cluster.master_url
    result = run_broker(settings, servers=servers, until_idle=8, timeout=600)
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    assert spark.sparkContext.master == cluster.master_url
    assert spark.conf.get("spark.driver.host") == hosts[0].gateway
    app_id = spark.sparkContext.applicationId
    raw = spark.read.parquet(str(result.out / "raw")).toPandas()
    sci = spark.read.parquet(str(result.out / "science")).toPandas()
    spark.stop()

    # The executors ran on the hosts: each worker's work dir holds the app's executor.
    for h in hosts[1:]:
        app_dir = root / h.name / "spark" / "work" / app_id
        executors = [p for p in app_dir.iterdir() if (p / "stderr").is_file()]
        assert executors, f"no executor of {app_id} on {h.name}"
    assert not (root / "host1" / "spark" / "work").exists()
    filtered = [m.key().decode() for m in read_messages(servers, BRIGHT)]
    passing = {
        k for k, r in sources.items() if r["candidate"]["rb"] >= 0.7 and r["candidate"]["nbad"] == 0
    }
    assert sorted(raw["candid"]) == sorted(sources)
    assert set(sci["candid"]) == passing
    bright = {k for k in passing if sources[k]["candidate"]["magpsf"] <= 17.5}
    assert sorted(filtered) == sorted(sources[k]["objectId"] for k in bright)


@pytest.mark.kafka
def test_bench_runs_on_the_deployed_cluster(hosts, deployed, alerts_dir, tmp_path, cli) -> None:
    root, inv_path, run_dir, _ = deployed
    done = cli(
        "--inventory",
        str(inv_path),
        "bench",
        "run",
        "smoke",
        "--visits",
        "1",
        "--alerts",
        str(alerts_dir),
        "--out",
        str(tmp_path / "results"),
        run_dir=run_dir,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    (run,) = (tmp_path / "results").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "passed"
    kafka = results["config"]["kafka"]
    assert kafka["embedded"] is False
    assert kafka["bootstrap_servers"] == f"{hosts[0].address}:24499"
    assert results["config"]["broker"]["master"] == f"spark://{hosts[0].address}:7077"
    integrity = results["integrity"]
    assert integrity["ok"] is True
    assert integrity["sent"] == integrity["in_raw"] == integrity["distinct_in_raw"] == 50 + 300

    # Every process the run used served its metrics on its host, scraped once by the run
    # as its load ended: Kafka's JMX exporter agent (installed on host1 by `kafka up`), the
    # Spark master's and workers' own sinks, the driver's and its executors'.
    checked = json.loads((run / "endpoints-checked.json").read_text())
    a1 = hosts[0].address
    urls = {name: c["url"] for name, c in checked.items()}
    assert urls["kafka-host1"] == f"http://{a1}:7071/metrics"
    assert urls["spark-master"] == f"http://{a1}:8080/metrics/master/prometheus/"
    for h in hosts[1:]:
        assert urls[f"spark-worker-{h.name}"] == f"http://{h.address}:8081/metrics/prometheus/"
    assert {"bench", "broker-main", "spark-main", "spark-executors-main", "timing-main"} <= set(
        urls
    )
    assert all(c.get("series", 0) > 10 for c in checked.values()), checked
    assert (root / "host1" / "agents" / "jmx_prometheus_javaagent-1.0.1.jar").is_file()
