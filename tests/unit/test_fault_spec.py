"""Faults as a scenario asks for them, the refusals made before a run, and their measures."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import psutil
import pytest

from alertbench.bench.faults import measure
from alertbench.bench.faults.spec import FaultSpec, parse_fault, refusal
from alertbench.bench.scenario import load_scenario
from alertbench.errors import ConfigError


def test_a_faults_table_keeps_the_kinds_own_keys_apart() -> None:
    s = load_scenario(
        "lsst-nominal",
        extra_faults=[
            {"name": "kafka-kill", "visit": 2, "after_s": 5, "heal_after_s": 20, "partition": 1}
        ],
    )
    (f,) = s.faults
    assert (f.name, f.visit, f.after_s, f.heal_s, f.params) == ("kafka-kill", 2, 5.0, 20.0, {
        "partition": 1})  # fmt: skip
    assert f.value("partition") == 1
    assert f.label() == "kafka-kill at visit 2 + 5 s"
    # Defaults: the kind's heal time and keys; a one-act fault has nothing to heal.
    burst = FaultSpec(name="bad-input-burst")
    assert burst.heal_s is None
    assert burst.value("random") == 3
    assert FaultSpec(name="kafka-pause").heal_s == 10.0


def test_the_flag_reads_as_the_table() -> None:
    assert parse_fault("kafka-pause:visit=2,after_s=1.5,heal_after_s=20") == {
        "name": "kafka-pause",
        "visit": 2,
        "after_s": 1.5,
        "heal_after_s": 20,
    }
    assert parse_fault("driver-kill") == {"name": "driver-kill"}
    with pytest.raises(ConfigError, match=r"'visit' is not key=number"):
        parse_fault("kafka-kill:visit")
    with pytest.raises(ConfigError, match=r"'after_s=soon' is not key=number"):
        parse_fault("kafka-kill:after_s=soon")


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"name": "disk-fill"}, "unknown fault 'disk-fill': alertbench injects kafka-kill"),
        (
            {"name": "kafka-kill", "leader": 2},
            "fault kafka-kill has no key leader; its own keys: partition (default 0)",
        ),
        ({"name": "kafka-pause", "visit": 9}, "strikes in visit 9, but the scenario sends 5"),
        (
            {"name": "kafka-pause", "visit": 5, "after_s": 40},
            "would strike 188 s into a load of 185",
        ),
        ({"name": "bad-input-burst", "heal_after_s": 3}, "is one act: it has nothing to heal"),
        ({"name": "kafka-pause", "after_s": -1}, "after_s"),
    ],
)
def test_what_cannot_be_struck_is_refused_naming_it(fault: dict, said: str) -> None:
    with pytest.raises(ConfigError, match="scenario lsst-nominal") as refused:
        load_scenario("lsst-nominal", extra_faults=[fault])
    assert said in str(refused.value)


def test_a_visit_needs_a_visits_schedule_and_scaling_takes_no_fault() -> None:
    with pytest.raises(ConfigError, match="sends no visits: give after_s"):
        load_scenario("max-throughput", extra_faults=[{"name": "kafka-pause", "visit": 1}])
    with pytest.raises(ConfigError, match="faults strike one broker's run"):
        load_scenario("scaling", extra_faults=[{"name": "kafka-pause"}])


def test_faults_that_cannot_run_here_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    kill = FaultSpec(name="kafka-kill")
    assert "needs 3 Kafka nodes" in refusal(kill, embedded_nodes=1, own_broker=True)
    assert "--kafka-nodes 3" in refusal(kill, embedded_nodes=1, own_broker=True)
    assert refusal(kill, embedded_nodes=3, own_broker=False) is None
    assert "a Kafka it did not start" in refusal(
        FaultSpec(name="kafka-pause"), embedded_nodes=None, own_broker=True
    )
    assert "not on another one" in refusal(
        FaultSpec(name="driver-kill"), embedded_nodes=1, own_broker=False
    )
    rolling = FaultSpec(name="kafka-rolling-restart")
    assert rolling.heal_s is None
    assert rolling.value("grace_s") == 30
    assert "needs 3 Kafka nodes" in refusal(rolling, embedded_nodes=1, own_broker=True)
    # Retention's check interval and the topic's configuration are the embedded Kafka's.
    overrun = FaultSpec(name="retention-overrun", retention_ms=2000)
    assert overrun.heal_s == 30.0
    assert overrun.value("retention_ms") == 2000
    assert refusal(overrun, embedded_nodes=1, own_broker=True) is None
    assert "a Kafka it did not start" in refusal(overrun, embedded_nodes=None, own_broker=True)
    assert refusal(overrun, embedded_nodes=1, own_broker=False) is None
    # An executor of a standalone worker: only with a spark:// master.
    worker = FaultSpec(name="worker-kill")
    assert (worker.heal_s, worker.value("worker")) == (None, 1)
    for master in (None, "local[2]"):
        why = refusal(worker, embedded_nodes=1, own_broker=True, master=master)
        assert "alertbench spark up" in why
        assert "--master spark://" in why
    assert refusal(worker, embedded_nodes=1, own_broker=True, master="spark://h:7077") is None
    assert "not on another one" in refusal(
        worker, embedded_nodes=1, own_broker=False, master="spark://h:7077"
    )
    # Slowing a node's network changes the loopback interface: root only, on its own Kafka.
    slow = FaultSpec(name="network-slow", rate_mbit=8)
    assert (slow.value("rate_mbit"), slow.value("partition"), slow.heal_s) == (8, 0, 10.0)
    assert slow.value("loss_pct") == 0
    nothing = FaultSpec(name="network-slow", rate_mbit=0)
    assert refusal(nothing, embedded_nodes=1, own_broker=True) == (
        "fault network-slow cannot run here: network-slow needs rate_mbit, loss_pct or "
        "delay_ms above 0"
    )
    early = FaultSpec(name="network-slow", delay_ms=10, jitter_ms=20)
    assert "a packet cannot leave before it came" in refusal(
        early, embedded_nodes=1, own_broker=True
    )
    assert "below 100, not 100" in refusal(
        FaultSpec(name="network-slow", loss_pct=100), embedded_nodes=1, own_broker=True
    )
    assert "acts on the Kafka nodes the bench started" in refusal(
        slow, embedded_nodes=None, own_broker=True
    )
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert refusal(slow, embedded_nodes=1, own_broker=False) == (
        "fault network-slow cannot run here: it changes the loopback interface's queueing "
        "(tc), which needs root"
    )
    lossy = FaultSpec(name="network-slow", rate_mbit=0, loss_pct=5)
    assert refusal(lossy, embedded_nodes=1, own_broker=False) == (
        "fault network-slow cannot run here: it drops packets with nftables, which needs root"
    )
    late = FaultSpec(name="network-slow", rate_mbit=0, delay_ms=50, jitter_ms=10)
    assert refusal(late, embedded_nodes=1, own_broker=False) == (
        "fault network-slow cannot run here: it queues packets with iptables (NFQUEUE), which "
        "needs root"
    )
    # Cutting a host off needs nodes on hosts of their own, deployed by `kafka up`.
    cut = FaultSpec(name="host-cut", visit=2, after_s=1)
    assert (cut.value("partition"), cut.heal_s) == (0, 20.0)
    for embedded, where in ((1, "this run uses the embedded Kafka"), (None, "no record of")):
        why = refusal(cut, embedded_nodes=embedded, own_broker=True)
        assert "cluster that `alertbench kafka up` deployed on the hosts of an inventory" in why
        assert where in why
        assert "--inventory" in why
    assert "the deployed cluster has 2" in refusal(
        cut, embedded_nodes=None, own_broker=True, deployed_brokers=2
    )
    assert refusal(cut, embedded_nodes=None, own_broker=False, deployed_brokers=3) is None


def test_a_stall_counts_only_while_something_waits() -> None:
    # Alerts sent at 0, 10 and 20 s, each acknowledged 0.1 s later, except the one at 10 s,
    # stuck until 14 s: idle time between them is no stall, the 4 s wait is.
    sent = np.array([0.0, 0.0, 10.0, 10.0, 20.0])
    acked = np.array([0.1, 0.1, 14.0, 14.0, 20.1])
    phases = measure._phases(sent, acked, injected=10.5, healed=13.0)
    assert phases == {"baseline": 0.1, "fault": 4.0, "recovery": 0.1}
    # Faults on either side bound the baseline and the recovery: another fault's stall
    # (here the 4 s one, seen from a fault at 16 s healed at 18 s) is neither.
    later = measure._phases(sent, acked, injected=16.0, healed=18.0, previous_heal=13.0)
    assert later == {"baseline": None, "fault": None, "recovery": 0.1}
    earlier = measure._phases(sent, acked, injected=1.0, healed=2.0, next_fault=10.5)
    assert earlier == {"baseline": 0.1, "fault": None, "recovery": None}


def _visits(p99s: list[float]) -> list[dict]:
    return [{"visit": k + 1, "due": 10.0 * k, "p99_s": p} for k, p in enumerate(p99s)]


def test_recovery_is_two_visits_back_within_the_limit() -> None:
    visits = _visits([2.0, 2.2, 9.0, 5.0, 2.5, 2.4])
    # Struck in visit 3 (20-30 s), healed at 30 s: visits 4, 5, 6 follow; 5 and 6 are back.
    r = measure._recovery(visits, 21.0, 30.0, 10.0, first_fault=21.0, next_fault=None)
    assert r["baseline_p99_s"] == 2.1
    assert r["limit_p99_s"] == 3.15
    assert r["visits_after_heal"] == [4, 5, 6]
    assert (r["back_at_visit"], r["recovery_s"], r["back_in_time"]) == (5, 10.0, True)
    late = measure._recovery(
        _visits([2.0, 2.2, 9.0, 5.0, 4.0, 2.4, 2.0]), 21.0, 30.0, 10.0,
        first_fault=21.0, next_fault=None,
    )  # fmt: skip
    assert (late["back_at_visit"], late["back_in_time"]) == (6, False)
    # Another fault at 45 s: only visit 4 lies between, too few to judge.
    cut = measure._recovery(visits, 21.0, 30.0, 10.0, first_fault=21.0, next_fault=45.0)
    assert cut["judged"] is False
    # Struck in the first visit: no baseline.
    none = measure._recovery(visits, 5.0, 8.0, 10.0, first_fault=5.0, next_fault=None)
    assert none == {"judged": False, "why": "no visit ended before the first fault: no baseline"}


def test_acks_are_read_back_per_id(tmp_path) -> None:
    (tmp_path / "acks.0.csv").write_text("a1,100,200,,0,7\na2,100,300,,1,0\n")
    (tmp_path / "acks.1.csv").write_text("a3,150,900000,_MSG_TIMED_OUT,-1,-1\n")
    acks = measure.read_acks(tmp_path)
    expected = pd.DataFrame(
        {
            "alert_id": ["a1", "a2", "a3"],
            "sent_us": [100, 100, 150],
            "ack_us": [200, 300, 900000],
            "error": ["", "", "_MSG_TIMED_OUT"],
            "partition": [0, 1, -1],
            "offset": [7, 0, -1],
        }
    )
    pd.testing.assert_frame_equal(acks, expected)


def test_aged_out_ranges_are_read_back_merged(tmp_path) -> None:
    from alertbench.broker.batch import loss

    # The planner's range and a task's, recorded twice by a replayed batch, overlapping.
    loss.record(tmp_path, [loss.AgedOut("in", 0, 0, 12), loss.AgedOut("in", 1, 5, 9)])
    loss.record(tmp_path, [loss.AgedOut("in", 0, 0, 12), loss.AgedOut("in", 0, 10, 20)])
    loss.record(tmp_path, [loss.AgedOut("in", 0, 25, 30)])
    assert loss.read(tmp_path) == [
        loss.AgedOut("in", 0, 0, 20),
        loss.AgedOut("in", 0, 25, 30),
        loss.AgedOut("in", 1, 5, 9),
    ]
    assert loss.read(tmp_path / "none") == []


def test_worker_kill_needs_the_cluster_spark_up_started_here(tmp_path) -> None:
    from alertbench.bench.faults.broker_acts import standalone_worker
    from alertbench.bench.faults.target import FaultError
    from alertbench.config import load_settings
    from alertbench.procs import ProcessRecord
    from alertbench.spark.state import SparkCluster, save_state

    settings = load_settings(run_dir=tmp_path)
    with pytest.raises(FaultError, match=r"no Spark standalone cluster is recorded in .*spark up"):
        standalone_worker(settings, "spark://127.0.0.1:7077", 1)

    me = ProcessRecord(os.getpid(), psutil.Process().create_time(), "localhost")
    cluster = SparkCluster("spark://127.0.0.1:7077", "http://127.0.0.1:8080", 1, 2, "1g")
    cluster.procs = {"master": me, "worker-1": me}
    save_state(settings, cluster)
    with pytest.raises(FaultError, match=r"runs spark://127\.0\.0\.1:7077: run with --master"):
        standalone_worker(settings, "spark://10.0.0.1:7077", 1)
    with pytest.raises(FaultError, match="has no worker-2"):
        standalone_worker(settings, "spark://127.0.0.1:7077", 2)
    assert standalone_worker(settings, "spark://127.0.0.1:7077", 1).pid == os.getpid()
    # A recorded PID whose process started at another time is not the worker any more.
    cluster.procs["worker-1"] = ProcessRecord(os.getpid(), me.started - 100, "localhost")
    save_state(settings, cluster)
    with pytest.raises(FaultError, match="is not running"):
        standalone_worker(settings, "spark://127.0.0.1:7077", 1)


def test_no_faults_gives_the_same_load_without_them() -> None:
    shipped = load_scenario("faults")
    assert [f.name for f in shipped.faults][:2] == ["bad-input-burst", "kafka-pause"]
    plain = load_scenario("faults", no_faults=True)
    assert plain.faults == []
    # Everything else is the scenario as shipped.
    assert plain.model_dump(exclude={"faults"}) == shipped.model_dump(exclude={"faults"})
    # --fault still adds to it.
    one = load_scenario("faults", no_faults=True, extra_faults=[parse_fault("kafka-pause:visit=2")])
    assert [(f.name, f.visit) for f in one.faults] == [("kafka-pause", 2)]
