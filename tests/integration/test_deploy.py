"""`kafka up/status/down --inventory` on real separate hosts (namespaces with sshd each).

The hosts are built by tests/hosts.py: each has its own network stack and
address on a bridge, reached over SSH only. Kafka is installed on them from
this machine's cache, started over SSH and stopped by PID; alerts go in and
come back across the bridge, also while one host is cut off the network.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fastavro
import pytest

from alertbench.kafka.admin import create_topic, describe_topic
from alertbench.kafka.client import consume, end_offsets
from alertbench.ssh import SSHTarget, SSHTransport
from hosts import NetnsHost, network_hosts, set_link, why_not
from others import passthrough

REASON = why_not()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no test hosts: {REASON}")

ALERTS = 400


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory):
    with network_hosts(3, tmp_path_factory.mktemp("hosts")) as made:
        yield made


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install folders that outlive one test, so each host gets Kafka's jars once."""
    return tmp_path_factory.mktemp("opt")


def inventory(
    path: Path,
    hosts: list[NetnsHost],
    *,
    mode: str,
    installs: Path,
    data: Path,
    per_host: dict[str, dict[str, str]] | None = None,
    top: list[str] | None = None,
    defaults: list[str] | None = None,
) -> Path:
    """Write a TOML inventory of ``hosts``; ``per_host`` overrides keys of one host.

    ``top`` and ``defaults`` are more TOML lines for the file's top and ``[defaults]``.
    """
    lines = [f'mode = "{mode}"', *(top or []), "[defaults]", f'ssh_key = "{hosts[0].key_file}"']
    lines += defaults or []
    for h in hosts:
        entry = {
            "name": h.name,
            "address": h.address,
            "install_dir": str(installs / h.name),
            "data_dir": str(data / h.name / "kafka-logs"),
            "zookeeper_data_dir": str(data / h.name / "zookeeper"),
            **(per_host or {}).get(h.name, {}),
        }
        lines.append("[[hosts]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def java_pids(host: NetnsHost) -> list[int]:
    """JVMs running inside ``host``'s namespace."""
    pids = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True)
    found = []
    for pid in pids.stdout.split():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
                found.append(int(pid))
    return found


def record(packet: bytes) -> dict:
    """The alert in a ZTF packet (an Avro container of one record)."""
    return next(fastavro.reader(io.BytesIO(packet)))


def state_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "kafka" / "state.json").read_text())


def kill_recorded(run_dir: Path) -> None:
    """Kill, by the PIDs the state file records, any node `kafka down` left running.

    The hosts share this machine's PID namespace, so a recorded PID is a
    local one. Without this, a failed `down` leaves JVMs holding the hosts'
    ports and every later test in the module fails for it.
    """
    path = run_dir / "kafka" / "state.json"
    if not path.exists():
        return
    for node in json.loads(path.read_text()).get("nodes", []):
        pid = (node.get("proc") or {}).get("pid")
        with contextlib.suppress(OSError, TypeError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("mode", "version"),
    [
        # On KRaft, the bench's host-cut fault (below) deploys the same three hosts, cuts
        # the input's leader off mid-visit and checks every acknowledged alert by id.
        pytest.param("kraft", "4.3.1", marks=pytest.mark.long),
        # The same failover in ZooKeeper mode: test_zookeeper and the secured chain
        # carry alerts through a ZooKeeper cluster; this adds three minutes.
        pytest.param("zookeeper", "3.9.2", marks=pytest.mark.long),
    ],
    ids=["kraft", "zookeeper"],
)
def test_three_hosts_keep_every_alert_when_one_is_cut_off(
    mode, version, hosts, installs, alerts_dir, alert_files, tmp_path, cli
) -> None:
    run_dir = tmp_path / "run"
    inv = inventory(tmp_path / "cluster.toml", hosts, mode=mode, installs=installs, data=tmp_path)
    top = ("--inventory", str(inv))
    cut: NetnsHost | None = None
    try:
        up = cli(*top, "kafka", "up", run_dir=run_dir)
        assert up.returncode == 0, up.stderr
        state = state_of(run_dir)
        kinds = sorted((n["host"], n["kind"]) for n in state["nodes"])
        expected = [(h.name, "kafka") for h in hosts]
        if mode == "zookeeper":
            expected += [(h.name, "zookeeper") for h in hosts]
        assert kinds == sorted(expected)
        for node in state["nodes"]:
            host = next(h for h in hosts if h.name == node["host"])
            assert node["address"] == host.address
            # Each JVM runs inside its own host, with the jars installed on that host.
            assert node["proc"]["pid"] in java_pids(host)
            assert node["lib_dir"] == str(installs / host.name / f"kafka-{version}" / "libs")
        for h in hosts:
            assert h.name in up.stdout
            assert h.address in up.stdout
        servers = ",".join(f"{h.address}:24499" for h in hosts)
        assert state["bootstrap_servers"] == servers

        again = cli(*top, "kafka", "up", run_dir=run_dir)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert "already installed" in again.stdout
        assert state_of(run_dir)["nodes"] == state["nodes"]  # nothing restarted

        status = cli(*top, "kafka", "status", run_dir=run_dir)
        assert status.returncode == 0, status.stderr
        assert status.stdout.count("running") == len(state["nodes"])

        topic = f"deploy-{mode}"
        create_topic(
            servers, topic, partitions=3, replication=3, config={"min.insync.replicas": "2"}
        )
        victim_id = describe_topic(servers, topic).partitions[0].leader
        cut = hosts[victim_id - 1]
        # The simulator finds the brokers in the inventory; the cut happens mid-stream.
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alertbench",
                "--run-dir",
                str(run_dir),
                *top,
                "simulate",
                "--topic",
                topic,
                "--alerts",
                str(alerts_dir),
                "--rate",
                "40",
                "--count",
                str(ALERTS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Cut once the stream flows, not after a fixed wait: a simulator slow to
        # start on a loaded machine would otherwise meet the cut in its pre-flight.
        deadline = time.monotonic() + 60
        while sum(end_offsets(servers, topic, 3).values()) < 40 and sim.poll() is None:
            assert time.monotonic() < deadline, "the simulator sent nothing in 60 s"
            time.sleep(0.2)
        set_link(cut, "down")
        _out, err = sim.communicate(timeout=240)
        assert sim.returncode == 0, err
        live = ",".join(f"{h.address}:24499" for h in hosts if h is not cut)
        leaders = {p.leader for p in describe_topic(live, topic).partitions}
        assert victim_id not in leaders  # partition 0 failed over to another host
        # Every acknowledged alert is there once, equal to its source packet.
        assert sum(end_offsets(live, topic, 3).values()) == ALERTS
        received = [record(v) for *_, v in consume(live, topic, count=ALERTS, timeout=120)]
        by_candid = {r["candid"]: r for r in received}
        assert len(by_candid) == ALERTS
        source = {r["candid"]: r for r in (record(f.read_bytes()) for f in alert_files)}
        assert all(source[c] == r for c, r in by_candid.items())
    finally:
        if cut is not None:
            set_link(cut, "up")
        down = cli(*top, "kafka", "down", "--purge", run_dir=run_dir)
        if down.returncode != 0:
            kill_recorded(run_dir)
    assert down.returncode == 0, down.stderr
    assert all(java_pids(h) == [] for h in hosts)
    assert not (tmp_path / hosts[0].name / "kafka-logs").exists()


def failing(hosts: list[NetnsHost], tmp_path: Path, case: str) -> tuple[dict, str, str]:
    """The inventory change that breaks host2 in ``case``, and what the error must say."""
    bad = hosts[1]
    if case == "unreachable":
        ghost = bad.address.rsplit(".", 1)[0] + ".250"
        return {bad.name: {"address": ghost}}, f"{bad.name} ({ghost})", "not reachable over SSH"
    if case == "java":
        return (
            {bad.name: {"java_home": str(tmp_path / "no-jdk")}},
            f"{bad.name} ({bad.address})",
            f"`{tmp_path / 'no-jdk' / 'bin' / 'java'} -version` failed",
        )
    if case == "disk":
        return (
            {bad.name: {"data_dir": "/proc/alertbench-data"}},
            f"{bad.name} ({bad.address})",
            "/proc/alertbench-data",
        )
    return {}, f"{bad.name} ({bad.address})", "24499 (broker listener)"


@pytest.mark.parametrize("case", ["unreachable", "java", "disk", "port"])
def test_a_failed_host_is_named_and_nothing_starts(case, hosts, installs, tmp_path, cli) -> None:
    change, who, why = failing(hosts, tmp_path, case)
    inv = inventory(
        tmp_path / "cluster.toml",
        hosts,
        mode="kraft",
        installs=installs,
        data=tmp_path,
        per_host=change,
    )
    squatter = None
    transport = None
    if case == "port":
        transport = SSHTransport(
            SSHTarget(hosts[1].name, hosts[1].address, key_file=hosts[1].key_file)
        )
        squatter = transport.spawn(
            ["python3", "-m", "http.server", "24499", "--bind", hosts[1].address],
            log=tmp_path / "squatter.log",
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 20
        while not transport.port_in_use(hosts[1].address, 24499):
            assert time.monotonic() < deadline, transport.tail(tmp_path / "squatter.log")
            time.sleep(0.2)
    try:
        up = cli("--inventory", str(inv), "kafka", "up", run_dir=tmp_path / "run")
        message = " ".join(up.stderr.split())
        assert up.returncode == 1
        assert "cannot deploy Kafka to 1 of 3 host(s); nothing was started" in message
        assert f"{who}: " in message
        assert why in message
        # The other hosts are named as prepared, and run nothing.
        assert f"({hosts[0].name}, {hosts[2].name}) are prepared" in message
        assert all(java_pids(h) == [] for h in hosts)
        assert not (tmp_path / "run" / "kafka" / "state.json").exists()
    finally:
        if squatter is not None and transport is not None:
            transport.send_signal(squatter, 9)
            transport.close()


@pytest.mark.spark
# Long: security is proven on three local nodes (e2e/test_secured_chain) and SSH
# deploys by the tests above; this is their combination.
@pytest.mark.long
def test_a_secured_cluster_on_three_hosts_carries_alerts_through_the_broker(
    hosts, installs, alerts_dir, tmp_path, cli
) -> None:
    """SASL_SSL between the hosts and to every client; a user reads over SASL_PLAINTEXT."""
    run_dir = tmp_path / "run"
    inv = inventory(
        tmp_path / "secured.toml",
        hosts,
        mode="kraft",
        installs=installs,
        data=tmp_path,
        top=['security = "sasl_ssl"', 'listeners = ["sasl_plaintext"]'],
        defaults=["listener_ports = { sasl_plaintext = 24502 }"],
    )
    top = ("--inventory", str(inv))
    config = tmp_path / "alertbench.toml"
    config.write_text(
        '[broker]\nmaster = "local[2]"\ntopics = ["secure-in"]\n'
        'filters = { "secure-out" = "candid > 0" }\n'
    )
    env = {"ALERTBENCH_CONFIG": str(config)}
    try:
        up = cli(*top, "kafka", "up", run_dir=run_dir, env=env)
        assert up.returncode == 0, up.stderr
        state = state_of(run_dir)
        assert state["security"]["protocol"] == "sasl_ssl"
        assert state["security"]["listeners"]["sasl_plaintext"] == ",".join(
            f"{h.address}:24502" for h in hosts
        )
        for h in hosts:
            # The node's secrets on its host, readable by their owner only.
            config_dir = installs / h.name / h.name / "config"
            for secret in ("server.properties", "tls/node.pem"):
                assert (config_dir / secret).stat().st_mode & 0o777 == 0o600
        sim = cli(
            *top, "simulate", "--topic", "secure-in", "--alerts", str(alerts_dir),
            "--max", "--count", "60", run_dir=run_dir, env=env,
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr
        broker = cli(
            *top, "broker", "run", "--fused", "--until-idle", "6", "--timeout", "300",
            run_dir=run_dir, env=env,
        )  # fmt: skip
        assert broker.returncode == 0, broker.stderr
        added = cli(
            *top, "kafka", "user", "add", "reader", "--read", "secure-out",
            "--listener", "sasl_plaintext", "--out", str(tmp_path / "reader.properties"),
            run_dir=run_dir, env=env,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        from alertbench.kafka.credentials import admin_connection
        from alertbench.kafka.security import Connection, read_client_properties

        admin = admin_connection(run_dir / "kafka", state["bootstrap_servers"])
        sent = [record(v) for *_, v in consume(admin, "secure-in", count=60, timeout=60)]
        want = sorted(
            r["candid"]
            for r in sent
            if r["candidate"]["rb"] >= 0.55 and r["candidate"]["nbad"] == 0
        )
        assert want
        props = read_client_properties(tmp_path / "reader.properties")
        reader = Connection.build(props.pop("bootstrap.servers"), props)
        assert reader.servers == state["security"]["listeners"]["sasl_plaintext"]
        got = consume(reader, "secure-out", count=len(want), config={"group.id": "reader-1"})
        schema = fastavro.parse_schema(
            json.loads((run_dir / "broker" / "schemas" / "secure-out.avsc").read_text())
        )
        ids = sorted(fastavro.schemaless_reader(io.BytesIO(v), schema)["candid"] for *_, v in got)
        assert ids == want
    finally:
        down = cli(*top, "kafka", "down", "--purge", run_dir=run_dir, env=env)
        if down.returncode != 0:
            kill_recorded(run_dir)
    assert down.returncode == 0, down.stderr
    assert all(java_pids(h) == [] for h in hosts)


def test_the_timing_consumer_on_another_host_records_the_clock_offset(
    hosts, installs, alerts_dir, tmp_path, cli
) -> None:
    """`bench run --timing-host`: arrivals timed on host3, sends here, the offset measured."""
    run_dir = tmp_path / "run"
    inv = inventory(
        tmp_path / "cluster.toml", hosts, mode="kraft", installs=installs, data=tmp_path
    )
    top = ("--inventory", str(inv))
    root = Path(__file__).resolve().parents[2]
    cmd = passthrough("far-out", "far")
    out = tmp_path / "results"
    try:
        up = cli(*top, "kafka", "up", run_dir=run_dir)
        assert up.returncode == 0, up.stderr
        done = cli(
            *top, "bench", "run", "smoke", "--alerts", str(alerts_dir), "--out", str(out),
            "--broker-cmd", cmd, "--output-topics", "far-out", "--broker-group", "far",
            "--id-format", "container", "--timing-host", hosts[2].name,
            run_dir=run_dir, cwd=root,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        down = cli(*top, "kafka", "down", "--purge", run_dir=run_dir)
        if down.returncode != 0:
            kill_recorded(run_dir)
    assert down.returncode == 0, down.stderr
    (run,) = out.iterdir()
    r = json.loads((run / "results.json").read_text())
    assert r["status"] == "passed", r["failures"]
    servers = ",".join(f"{h.address}:24499" for h in hosts)
    assert r["config"]["kafka"]["bootstrap_servers"] == servers
    clock = r["clock"]
    assert clock["timing_host"] == hosts[2].name
    # The hosts share this machine's kernel clock: the offset is within its round trip.
    for when in ("start", "end"):
        assert 0 < clock[f"round_trip_{when}_s"] < 1
        assert abs(clock[f"offset_{when}_s"]) <= clock[f"round_trip_{when}_s"]
    assert r["warnings"] == []
    assert r["integrity"]["topics"]["far-out"]["received"] == 50 + 4 * 300
    assert r["latency"]["distribution"]["count"] == 4 * 300
    # The timing consumer's log came home, and its folder on the host is gone.
    assert (run / "logs" / "timing-main.log").exists()
    assert not (installs / hosts[2].name / "bench").exists() or not any(
        (installs / hosts[2].name / "bench").iterdir()
    )


def link_state(host: NetnsHost) -> str:
    """``UP`` or ``DOWN``: the operational state of ``host``'s own end of its cable."""
    shown = subprocess.run(
        ["ip", "-n", host.netns, "-o", "link", "show"], capture_output=True, text=True
    )
    for line in shown.stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name != "lo":
            return line.split(" state ")[1].split()[0]
    raise AssertionError(f"{host.name} has no cable: {shown.stdout}")


def test_a_host_cut_off_mid_visit_loses_no_acknowledged_alert(
    hosts, installs, alerts_dir, tmp_path, cli
) -> None:
    """`bench run --fault host-cut` on three hosts: the input's leader cut off, then back."""
    run_dir = tmp_path / "run"
    inv = inventory(
        tmp_path / "cluster.toml", hosts, mode="kraft", installs=installs, data=tmp_path
    )
    top = ("--inventory", str(inv))
    root = Path(__file__).resolve().parents[2]
    cmd = passthrough("cut-out", "cut")
    scenario = tmp_path / "cut.toml"
    scenario.write_text(
        'name = "cut"\nkind = "stream"\nschedule = "visits"\nvisit_alerts = 150\n'
        "visit_interval = 6.0\nvisits = 8\npartitions = 2\nwarmup_alerts = 20\n"
        '[[faults]]\nname = "host-cut"\nvisit = 2\nafter_s = 1\nheal_after_s = 12\n'
    )
    out = tmp_path / "results"
    try:
        up = cli(*top, "kafka", "up", run_dir=run_dir)
        assert up.returncode == 0, up.stderr
        # Deployed as the inventory says: each JVM inside its own host, with its jars there.
        state = state_of(run_dir)
        assert sorted((n["host"], n["kind"]) for n in state["nodes"]) == [
            (h.name, "kafka") for h in hosts
        ]
        for node in state["nodes"]:
            host = next(h for h in hosts if h.name == node["host"])
            assert node["address"] == host.address
            assert node["proc"]["pid"] in java_pids(host)
            assert node["lib_dir"] == str(installs / host.name / "kafka-4.3.1" / "libs")
            assert f"{host.name}" in up.stdout
        assert state["bootstrap_servers"] == ",".join(f"{h.address}:24499" for h in hosts)
        again = cli(*top, "kafka", "up", run_dir=run_dir)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert state_of(run_dir)["nodes"] == state["nodes"]  # nothing restarted
        status = cli(*top, "kafka", "status", run_dir=run_dir)
        assert status.stdout.count("running") == len(hosts), status.stdout + status.stderr
        done = cli(
            *top, "bench", "run", str(scenario), "--alerts", str(alerts_dir), "--out", str(out),
            "--broker-cmd", cmd, "--output-topics", "cut-out", "--broker-group", "cut",
            "--id-format", "container", run_dir=run_dir, cwd=root,
        )  # fmt: skip
    finally:
        states = {h.name: link_state(h) for h in hosts}
        down = cli(*top, "kafka", "down", "--purge", run_dir=run_dir)
        if down.returncode != 0:
            kill_recorded(run_dir)
    assert down.returncode == 0, down.stderr
    assert all(java_pids(h) == [] for h in hosts)
    # The helper brought the link back on its own host; nothing is left cut off.
    assert states == {h.name: "UP" for h in hosts}
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = out.iterdir()
    r = json.loads((run / "results.json").read_text())
    f = r["faults"]
    (cut,) = f["faults"]
    assert cut["error"] is None, cut
    did, healed = cut["did"], cut["heal_did"]
    victim = next(h for h in hosts if h.name == did["host"])
    # The leader of partition 0 was cut where it runs: its host's own interface.
    assert did["address"] == victim.address
    assert did["device"] == victim.veth.replace("v", "p")  # the namespace's end of the cable
    assert healed["host"] == victim.name
    assert healed["down_s"] == pytest.approx(12, abs=0.5)
    # The window is the helper's own: from the cut to the link back.
    assert cut["healed_s"] - cut["injected_s"] == pytest.approx(healed["down_s"], abs=0.01)
    # Its process on the host, tracked by PID, is gone.
    (helper,) = did["pids"]
    assert not Path(f"/proc/{helper}").exists()
    # Replication 3, min ISR 2, idempotent acks=all producers: nothing acknowledged lost
    # or doubled while partition 0's leadership moved off the cut host.
    assert f["acked"] == 8 * 150
    assert (f["acked_lost"], f["never_acked"]) == (0, 0)
    assert r["integrity"]["ok"] is True
    assert r["integrity"]["topics"]["cut-out"]["received"] >= 20 + 8 * 150
    # Nothing acknowledged until the controller fenced the cut node and moved the leader.
    assert cut["largest_ack_stall_s"]["fault"] > 2 * cut["largest_ack_stall_s"]["baseline"]
    assert cut["first_ack_after_s"] > 1
    # Back within two visits of the link coming back: the run passes.
    assert cut["recovery"]["judged"] is True, cut["recovery"]
    assert r["status"] == "passed", r["failures"]
