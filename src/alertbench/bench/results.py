"""The documented contents of a benchmark run's directory.

A run directory holds::

    results.json          the summary; every field is listed in FIELDS below
    scenario.json         the scenario as run (after overrides)
    scenario.toml         the same, every field written: `bench run` takes it as it is
    endpoints.json        (with metrics) component -> the URL its metrics were served at
    metrics.om            the series above as OpenMetrics, each sample at its own time:
                          `promtool tsdb create-blocks-from openmetrics` loads it
    series/
      visits.csv          visit, due_s, alerts, acked, lateness_s, send_s, ack_s
      lag.csv             t_s, produced, end_offset, processed_offset, lag
      batches.csv         t_s, query, batch, rows, rows_per_s, batch_ms
      resources.csv       t_s, component, cpu_percent, rss_mb
      latency_raw.csv     alert_id, sent_s, latency_s
      latency_dist.csv    alert_id, topic, sent_s, latency_s
      topics.csv          t_s, topic, messages (measured arrivals per second and output topic)
      steps.csv           (max-throughput) step, rate, seconds, produced_per_s,
                          processed_per_s, lag_start, lag_end, growth, allowed_growth,
                          produced_share, processed_share, verdict, held, reason, extended,
                          cpu_ms_simulator, cpu_ms_kafka, cpu_ms_broker, cpu_ms_timing,
                          cpu_ms_total (CPU ms per alert of each component)
      ceiling_steps.csv   (max-throughput with ceiling) the same, for the null broker
      sweep.csv           (scaling) partitions, producers, cores, alerts,
                          alerts_per_s, p99_s
    report.html           self-contained report (plots inlined)
    logs/                 the broker's and Kafka's logs of the run

Times in the series are seconds since the run's ``started_at``
(``t_s``, ``due_s``, ``sent_s``); latencies are in seconds. A percentile
summary is ``{"count", "mean", "p50", "p95", "p99", "max"}`` and is null
when nothing was measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

#: Every documented field of results.json (dotted path -> meaning).
FIELDS: dict[str, str] = {
    "schema_version": "Version of this layout (1).",
    "run_id": "Name of the run directory.",
    "status": "passed, or failed when an integrity check or the run itself failed.",
    "failures": "Why the run failed (empty when passed).",
    "started_at": "Wall-clock start, ISO 8601 UTC.",
    "duration_s": "Seconds from start to the end of collection.",
    "scenario.name": "Scenario name.",
    "scenario.description": "What the scenario models.",
    "scenario.kind": "stream, max-throughput or scaling.",
    "config.kafka": "Kafka: version, nodes, bootstrap servers, embedded or external, "
    "security protocol and user (never a secret).",
    "config.broker": "Broker: kind (alertbench or external). alertbench's: master, mode "
    "(fused or staged), trigger, filters, cuts, science (the profile) and modules. Another: "
    "its command, output topics, group, input topic and how ids were read.",
    "config.simulator": "Simulator: schedule, alerts, visits, producers, partitions, wire.",
    "machine.cores": "Logical cores of the machine that ran the benchmark.",
    "machine.memory_gb": "Its memory.",
    "machine.platform": "OS and architecture.",
    "versions.alertbench": "alertbench version.",
    "versions.kafka": "Kafka version.",
    "versions.pyspark": "pyspark (Spark) version.",
    "versions.python": "Python version.",
    "versions.java": "Java runtime version.",
    "producer.alerts": "Alerts acknowledged by Kafka.",
    "producer.failed": "Alerts whose delivery failed.",
    "producer.mb": "Megabytes acknowledged.",
    "producer.seconds": "First send to last acknowledgement.",
    "producer.sending_s": "Seconds spent sending: each visit's first send to its last "
    "acknowledgement, without the gaps between visits.",
    "producer.alerts_per_s": "Producer throughput while sending, alerts/s (alerts / sending_s).",
    "producer.mb_per_s": "Producer throughput while sending, MB/s.",
    "producer.average_alerts_per_s": "Alerts / seconds: the average over the whole load, "
    "gaps between visits included.",
    "producer.average_mb_per_s": "MB / seconds, gaps included (what Kafka ingested on average).",
    "producer.visits": "Number of visits sent.",
    "producer.visit_send_s": "Percentiles of the time to send one visit.",
    "producer.lateness_s": "Percentiles of the visits' start lateness.",
    "kafka.topic": "Input topic.",
    "kafka.partitions": "Its partitions.",
    "kafka.end_offset": "Sum of its end offsets after the run.",
    "kafka.max_lag": "Largest consumer lag of the broker seen (messages).",
    "kafka.final_lag": "Lag when collection ended (0 when drained).",
    "spark.batches": "Micro-batches that read rows.",
    "spark.input_rows": "Rows they read.",
    "spark.rows_per_s": "Percentiles of the batches' processed rows/s.",
    "spark.batch_s": "Percentiles of the batches' durations.",
    "latency.raw": "Percentiles of send -> raw Parquet (batch committed), s.",
    "latency.distribution": "Percentiles of send -> arrival in a distribution topic, s.",
    "outputs": "Per output topic, its measured alerts' arrivals: messages, first_s, last_s "
    "and messages_per_s over that span.",
    "throughput.alerts_per_s": "Alerts in raw / (last raw commit - first send). Another "
    "broker: alerts sent (once drained) / (last output arrival - first send).",
    "throughput.drain_s": "Seconds from the last send to the last raw commit.",
    "resources": "Per component (kafka, broker, simulator, timing): cpu_mean, cpu_max "
    "(percent of one core) and rss_max_mb.",
    "integrity.ok": "Whether every check below holds.",
    "integrity.sent": "Alerts acknowledged by Kafka.",
    "integrity.in_kafka": "Messages in the input topic.",
    "integrity.in_raw": "Rows in the raw Parquet.",
    "integrity.distinct_in_raw": "Distinct alert ids in raw.",
    "integrity.quarantined": "Messages in quarantine.",
    "integrity.in_science": "Rows in the science Parquet.",
    "integrity.aged_out": "Input records that aged out of Kafka's retention before the broker "
    "read them, counted exactly from the broker's _data_loss/ records: records, and ranges "
    "(topic, partition, start, end, count); 0 and [] when none did.",
    "integrity.topics": "Per distribution topic: expected, received, missing, unexpected, "
    "duplicates. Another broker's: received, distinct, duplicates, unknown (ids never sent), "
    "unreadable (no id could be read).",
    "verdicts.rubin_visit": "Whether visits were held: each visit in raw before the next "
    "was due, and the lag did not grow; with the visit size and interval, and (visits "
    "scenarios) meaning: what held means here, for one visit before the next would be due.",
    "verdicts.rubin_latency": "Share of alerts distributed within Rubin's 60 s budget "
    "(requirement: 98%).",
    "verdicts.p99_target": "Whether the p99 send -> distribution latency is at most 10 s.",
    "clock": "Where arrivals were timed: timing_host (null: this machine, the same clock), "
    "method, and with another host offset_start_s/offset_end_s (its clock minus this one's) "
    "and the round trips they were measured within; offset_s is the larger.",
    "warnings": "What makes numbers doubtful without failing the run (a clock offset above 5% "
    "of the p50 latency).",
    "capacity": "The capacity model: measured rates per core, assumptions, and the cores "
    "and Kafka brokers each survey load needs.",
    "science.profile": "The science profile alertbench's broker ran: rules, fink, or custom "
    "(modules configured one by one).",
    "science.modules": "Per module, in the order they ran: rows (alerts given to it, after "
    "the cuts), processed (rows it computed; a new-object module computes each object "
    "once), seconds, ms_per_alert (seconds per row), ms_per_processed, failed_batches, "
    "setup_seconds (loading catalogues or models, once per worker).",
    "science.ms_per_alert": "The modules' ms per alert given to them, summed.",
    "science.ms_per_input_alert": "All modules' seconds per alert in raw, in ms: what the "
    "science costs per alert the broker reads.",
}

#: Fields only a run of alertbench's own broker has (another has no raw table, no Spark).
OWN_BROKER_ONLY = {
    "spark.batches",
    "spark.input_rows",
    "spark.rows_per_s",
    "spark.batch_s",
    "integrity.in_raw",
    "integrity.distinct_in_raw",
    "integrity.quarantined",
    "integrity.in_science",
    "integrity.aged_out",
    "science.profile",
    "science.modules",
    "science.ms_per_alert",
    "science.ms_per_input_alert",
}

#: Fields of a run of another broker, measured from outside (in place of OWN_BROKER_ONLY).
OTHER_BROKER_FIELDS: dict[str, str] = {
    "integrity.consumed": "Offsets of the input its consumer group had committed at the end "
    "(null without --broker-group).",
    "integrity.final_lag": "Its lag at the end (must be 0; null without --broker-group).",
    "verdicts.rubin_visit.measured_to": "raw (alertbench's broker) or first output (another: "
    "a visit is held when each alert first appears in an output topic in time).",
}


#: Fields of a max-throughput run (``ceiling`` only with ``ceiling = true``).
MAX_THROUGHPUT_FIELDS: dict[str, str] = {
    "steps": "Each step run, in order: step, rate (asked alerts/s), seconds, asked and sent "
    "(alerts), produced_per_s, processed_per_s (over its window), lag_start and lag_end (the "
    "backlog at the window's ends), growth, allowed_growth, produced_share, processed_share, "
    "verdict (held, not held or producer-limited), held, reason, extended (a step added after "
    "the scenario's, all of which held), window (t_start, t_end, "
    "produced, processed, lag_start, lag_end: between the lowest backlog near the step's start "
    "and near its end) and cpu_ms_per_alert ({component: CPU ms per alert sent, total}).",
    "max_held_rate": "The highest rate held before the first step not held (null: none).",
    "max_held_bound": "found (a step was not held) or lower bound (every step held, "
    "extend_steps included).",
    "held_rule": "The rule the verdicts follow, in words.",
    "settle": "The unmeasured part at the first rate before step 1: rate, seconds, parts, "
    "alerts, failures, steady (whether the broker kept up by its end).",
}

#: Optional max-throughput fields: the null broker's run of the same steps.
CEILING_FIELDS: dict[str, str] = {
    "ceiling.broker": "What the null broker does (reads the input and commits, nothing else).",
    "ceiling.steps": "Its steps, as steps.",
    "ceiling.settle": "Its settling part, as settle.",
    "ceiling.max_held_rate": "Its highest held rate: the harness's own ceiling here.",
    "ceiling.max_held_bound": "found or lower bound, as max_held_bound.",
    "ceiling.ratio": "max_held_rate over the null broker's (null when either is).",
    "ceiling.drained": "Whether it read everything by the end.",
}


#: Fields of a run with faults (``[[faults]]`` or ``--fault``).
FAULT_FIELDS: dict[str, str] = {
    "faults.pass_rules": "The rules the faults' verdict follows, in words.",
    "faults.faults": "Each fault: name, label, params, heal_after_s, error, did (what it did: "
    "node, pids, signal, counts written), heal_did, injected_s and healed_s, "
    "first_ack_after_s and first_commit_after_s (from the fault to the first producer "
    "acknowledgement and the first batch committed after it), first_commit_after_heal_s, "
    "largest_ack_stall_s and largest_commit_stall_s per phase (baseline, fault, recovery: the "
    "longest time no acknowledgement, or no batch commit, came while alerts waited for one), "
    "and "
    "with visits recovery (baseline_p99_s, limit_p99_s, back_at_visit, recovery_s from the "
    "heal to the first of two visits back within the limit, recovery_visits: the visits "
    "allowed, the scenario's, and back_in_time).",
    "faults.acked": "Alerts the producers had acknowledged during the measured load.",
    "faults.acked_lost": "Acknowledged alerts missing from raw (another broker: from every "
    "output).",
    "faults.lost_ids": "Their ids (at most 100).",
    "faults.never_acked": "Alerts whose delivery failed and were never acknowledged.",
    "faults.aged_out": "Input records that aged out of retention unread (records, the broker's "
    "count), the acknowledged alerts among them (acked, ids: told apart from lost ones by "
    "their partition and offset), and whether the scenario allowed it (allowed).",
    "faults.duplicates": "Duplicates per stage: raw, science (exactly-once), outputs per topic "
    "(at-least-once, counted).",
    "faults.quarantined": "Messages the broker quarantined.",
    "faults.quarantine_reasons": "Of those, how many per reason.",
    "faults.injected": "Malformed messages and duplicated alerts a fault wrote (null: none).",
    "faults.visits": "Each visit: visit (from 1, as a fault's visit counts), due_s, alerts, "
    "p99_s, share_within_60s.",
    "faults.visits_missing_98pct_in_60s": "Visits with under 98% of their alerts within 60 s.",
    "faults.ok": "Whether every pass rule held.",
}


def lookup(results: dict[str, Any], path: str) -> Any:
    """The value at dotted ``path``; raises KeyError when absent."""
    value: Any = results
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def missing_fields(results: dict[str, Any]) -> list[str]:
    """The documented fields absent from ``results`` (for the kind of broker it measured)."""
    other = results.get("config", {}).get("broker", {}).get("kind") == "external"
    paths = [p for p in FIELDS if not (other and p in OWN_BROKER_ONLY)]
    if other:
        paths += list(OTHER_BROKER_FIELDS)
    if results.get("scenario", {}).get("kind") == "max-throughput":
        paths += list(MAX_THROUGHPUT_FIELDS)
        if "ceiling" in results:
            paths += list(CEILING_FIELDS)
    if "faults" in results:
        paths += list(FAULT_FIELDS)
    missing = []
    for path in paths:
        try:
            lookup(results, path)
        except KeyError:
            missing.append(path)
    return missing


def load(run: Path) -> dict[str, Any]:
    """Read ``run/results.json``.

    Raises
    ------
    FileNotFoundError
        With the path and what to do, when ``run`` is not a run directory.
    """
    path = Path(run) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: give a run directory made by `alertbench bench run`."
        )
    return json.loads(path.read_text())
