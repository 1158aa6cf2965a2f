"""Faults inside a benchmark run, on real Kafka nodes and the README's pass-through broker.

Each run strikes a Kafka node the bench started, by its PID, in the middle
of a visit, heals it, and must report what that cost: no acknowledged alert
lost (per id), the stall in the acknowledgements and commits, and the
visits back within 1.5 times the baseline p99.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psutil
import pytest

from alertbench.bench.faults.measure import read_acks
from alertbench.bench.results import missing_fields
from others import passthrough, run_scenario, running

pytestmark = [pytest.mark.kafka]


def _scenario(tmp_path: Path, output: str, fault: str, *, nodes: int = 1, visits: int = 5) -> Path:
    path = tmp_path / "faulted.toml"
    path.write_text(
        'name = "faulted"\nkind = "stream"\nschedule = "visits"\nvisit_alerts = 150\n'
        f"visit_interval = 6.0\nvisits = {visits}\npartitions = 2\nwarmup_alerts = 20\n"
        f"kafka_nodes = {nodes}\n{fault}\n"
        f'[broker]\ncmd = "{passthrough(output, "faulted")}"\n'
        f'output_topics = "{output}"\ngroup = "faulted"\nid_format = "container"\n'
    )
    return path


def _fault(name: str, **keys: float) -> str:
    """One ``[[faults]]`` table of a scenario file: its kind, time, heal and keys."""
    return f'[[faults]]\nname = "{name}"\n' + "".join(f"{k} = {v}\n" for k, v in keys.items())


def _gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie not yet reaped)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_paused_kafka_node_loses_nothing_and_the_run_says_how_long_it_stalled(
    cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    output = f"paused-{uuid.uuid4().hex[:8]}"
    # Struck 4 s into visit 2, healed 5 s later: visit 3 (due 6 s after visit 2) is sent
    # while the node is stopped.
    fault = _fault("kafka-pause", visit=2, after_s=4, heal_after_s=5)
    r, stdout, _ = run_scenario(cli, _scenario(tmp_path, output, fault), alerts_dir, tmp_path)
    assert r["status"] == "passed", r["failures"]
    assert missing_fields(r) == []
    f = r["faults"]
    (pause,) = f["faults"]
    assert pause["name"] == "kafka-pause"
    assert pause["error"] is None
    assert pause["did"]["signal"] == "SIGSTOP"
    assert pause["heal_did"] == {"pids": pause["did"]["pids"], "signal": "SIGCONT"}
    # Healed 5 s after it struck; nothing acknowledged while the only node was stopped.
    assert pause["healed_s"] - pause["injected_s"] == pytest.approx(5.0, abs=0.5)
    stall = pause["largest_ack_stall_s"]
    assert stall["fault"] >= 2.5  # visit 3 waited from its send (6 s) to the heal (9 s)
    assert stall["baseline"] < 1.0  # the visits before it: acknowledged as they were sent
    assert pause["largest_commit_stall_s"]["fault"] >= 2.5
    assert pause["first_ack_after_s"] >= 3.0
    # Every alert acknowledged was read back by id; none lost, none failed.
    assert f["acked"] == 5 * 150
    assert (f["acked_lost"], f["lost_ids"], f["never_acked"]) == (0, [], 0)
    assert f["ok"] is True
    # The visits after the heal (4 and 5) came back within 1.5x the baseline p99.
    rec = pause["recovery"]
    assert rec["judged"] is True, rec
    assert rec["back_in_time"] is True
    assert rec["back_at_visit"] in rec["visits_after_heal"][:2]
    assert [v["visit"] for v in f["visits"]] == [1, 2, 3, 4, 5]
    assert "fault: kafka-pause at visit 2 + 4 s" in stdout
    assert "healed: kafka-pause at visit 2 + 4 s" in stdout
    assert running(output) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="tc on the loopback interface needs root")
@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables' nft")
@pytest.mark.skipif(shutil.which("iptables") is None, reason="needs iptables")
def test_a_node_behind_a_narrow_lossy_slow_link_stalls_the_stream_loses_nothing_and_heals(
    cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    output = f"narrow-{uuid.uuid4().hex[:8]}"
    # The only node sends at 4 Mbit/s, a tenth of its packets lost, each held 100 ms give or
    # take 20, from 1 s into visit 2 for 8 s: visit 3 (due 6 s after visit 2, 150 ZTF
    # alerts, about 7 MB) cannot be read by the pass-through in time.
    fault = _fault(
        "network-slow", visit=2, after_s=1, heal_after_s=8, rate_mbit=4, loss_pct=10,
        delay_ms=100, jitter_ms=20,
    )  # fmt: skip
    r, _, _ = run_scenario(cli, _scenario(tmp_path, output, fault), alerts_dir, tmp_path)
    assert r["status"] == "passed", r["failures"]
    f = r["faults"]
    (slow,) = f["faults"]
    assert (slow["name"], slow["error"]) == ("network-slow", None)
    did = slow["did"]
    assert (did["node"], did["device"], did["rate_mbit"], did["loss_pct"]) == (1, "lo", 4.0, 10.0)
    assert len(did["ports"]) >= 2  # its broker and controller listeners
    healed = slow["heal_did"]
    assert (healed["device"], healed["root_qdisc"]) == ("lo", "noqueue")
    # Packets were dropped, TCP sent them again, and the rule's table went with the heal.
    assert healed["lost"]["packets"] > 0
    assert healed["nft_table_removed"] is True
    # The delayer held them in user space, tracked by PID, and went with its rules.
    assert (did["delay_ms"], did["jitter_ms"]) == (100.0, 20.0)
    assert healed["delayed_packets"] > 0
    assert healed["iptables_chain_removed"] is True
    (delayer,) = did["pids"]
    assert _gone(delayer)
    assert (
        did["nft_table"]
        not in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    )
    # The node's packets went through the class, which held them back, for about 8 s at
    # 4 Mbit/s (0.5 MB/s): some MB, not the run's 37 MB of alerts written and read.
    shaped = healed["shaped"]
    assert shaped["overlimits"] > 0
    assert 1e6 < shaped["bytes"] < 8e6
    # The pass-through's commits waited on the link.
    stall = slow["largest_commit_stall_s"]
    assert stall["fault"] > 2 * stall["baseline"]
    assert f["acked"] == 5 * 150
    assert (f["acked_lost"], f["never_acked"]) == (0, 0)
    assert r["integrity"]["ok"] is True
    # Loopback has its default queueing back.
    shown = subprocess.run(["tc", "qdisc", "show", "dev", "lo", "root"], capture_output=True)
    assert shown.stdout.split()[:2] == [b"qdisc", b"noqueue"]
    assert running(output) == []


@pytest.mark.slow
def test_the_leader_killed_at_replication_3_loses_no_acknowledged_alert(
    cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    output = f"killed-{uuid.uuid4().hex[:8]}"
    fault = _fault("kafka-kill", visit=2, after_s=4, heal_after_s=5)
    # Eight visits: the restart and the wait for the ISR take 6-16 s here, and after the
    # heal two consecutive visits back may start at the first or the second.
    scenario = _scenario(tmp_path, output, fault, nodes=3, visits=8)
    r, _, _ = run_scenario(cli, scenario, alerts_dir, tmp_path)
    assert r["status"] == "passed", r["failures"]
    assert r["config"]["kafka"]["nodes"] == 3
    f = r["faults"]
    (kill,) = f["faults"]
    assert kill["error"] is None
    assert kill["did"]["signal"] == "SIGKILL"
    (killed,) = kill["did"]["pids"]
    # Restarted through the launcher: a new process for the same node, back in the ISR.
    assert kill["heal_did"]["node"] == kill["did"]["node"]
    assert kill["heal_did"]["restarted_pid"] not in (None, killed)
    assert kill["heal_did"]["isr_full"] is True
    # Idempotent producers, acks=all, min ISR 2: nothing acknowledged is lost or doubled.
    assert f["acked"] == 8 * 150
    assert (f["acked_lost"], f["never_acked"]) == (0, 0)
    assert r["integrity"]["ok"] is True
    assert r["integrity"]["in_kafka"] == 20 + 8 * 150
    # Nothing acknowledged while the partition's leadership moved; back within two visits.
    assert kill["largest_ack_stall_s"]["fault"] > kill["largest_ack_stall_s"]["baseline"]
    assert kill["recovery"]["judged"] is True, kill["recovery"]
    assert kill["recovery"]["back_in_time"] is True
    # The restarted node was stopped with the rest at the run's end.
    assert _gone(kill["heal_did"]["restarted_pid"])


def test_a_fault_that_loses_alerts_fails_the_run_naming_their_ids(
    cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    # The pass-through broker paused for 25 s while its input keeps 2 s of records: what it
    # had not read ages out, and its consumer (auto.offset.reset = earliest) skips it unseen.
    output = f"overrun-{uuid.uuid4().hex[:8]}"
    fault = _fault("retention-overrun", visit=2, after_s=1, heal_after_s=25, retention_ms=2000)
    scenario = _scenario(tmp_path, output, fault)
    r, stdout, run = run_scenario(cli, scenario, alerts_dir, tmp_path, "--keep-data", passes=False)
    assert r["status"] == "failed"
    f = r["faults"]
    (overrun,) = f["faults"]
    assert overrun["error"] is None
    assert overrun["did"]["signal"] == "SIGSTOP"
    assert overrun["heal_did"]["signal"] == "SIGCONT"
    assert overrun["did"]["retention_ms"] == 2000
    lows = {int(p): o for p, o in overrun["heal_did"]["earliest_offsets"].items()}
    assert sum(lows.values()) > sum(overrun["did"]["earliest_offsets"].values())
    # Lost: acknowledged, then deleted by retention before the broker read them, by id.
    assert f["acked"] == 5 * 150
    assert f["acked_lost"] > 0
    assert f["lost_ids"] == sorted(f["lost_ids"])
    said = next(x for x in r["failures"] if "acknowledged alerts never reached any output" in x)
    assert said.startswith(f"{f['acked_lost']} acknowledged alerts")
    assert ", ".join(f["lost_ids"][:10]) in said
    # Each one was written below the offset Kafka still kept when the broker was resumed.
    assert f"failed: {said}" in " ".join(stdout.split())
    acks = read_acks(run / "work" / "main")
    where = acks.set_index("alert_id").loc[f["lost_ids"]]
    assert all(o < lows[p] for p, o in zip(where["partition"], where["offset"], strict=True))
    # Resumed: no process of the broker is left stopped.
    assert all(p.status() != psutil.STATUS_STOPPED for p in running(output))


@pytest.mark.slow
def test_a_rolling_restart_of_every_node_loses_and_doubles_nothing(
    cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    output = f"rolled-{uuid.uuid4().hex[:8]}"
    fault = _fault("kafka-rolling-restart", visit=2, after_s=1)
    scenario = _scenario(tmp_path, output, fault, nodes=3, visits=10)
    r, stdout, _ = run_scenario(cli, scenario, alerts_dir, tmp_path)
    assert r["status"] == "passed", r["failures"]
    f = r["faults"]
    (rolled,) = f["faults"]
    assert rolled["error"] is None
    steps = rolled["did"]["nodes"]
    # Every node in turn, each stopped cleanly by its PID and started again as a new process.
    assert [s["node"] for s in steps] == [1, 2, 3]
    assert all(s["signal"] == "SIGTERM" for s in steps), steps
    assert all(s["restarted_pid"] not in (None, s["pid"]) for s in steps)
    assert all(s["isr_full"] for s in steps)
    # The fault lasts as long as the restarts: its window ends when the last node is back.
    assert rolled["healed_s"] - rolled["injected_s"] >= sum(s["back_s"] for s in steps)
    assert f["acked"] == 10 * 150
    assert (f["acked_lost"], f["never_acked"]) == (0, 0)
    assert r["integrity"]["ok"] is True
    assert r["integrity"]["in_kafka"] == 20 + 10 * 150
    assert all(_gone(s["restarted_pid"]) for s in steps)
    assert "fault: kafka-rolling-restart at visit 2 + 1 s" in stdout
