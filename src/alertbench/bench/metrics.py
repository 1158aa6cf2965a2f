"""The numbers of one segment of a run: its latencies, integrity and throughput.

Latency to raw is measured to the moment the alert's micro-batch was
committed (its rows became visible): the commit marker's modification time.
Latency to a distribution topic is measured by the timing consumer, on the
same machine's clock as the simulator's send time.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from alertbench.bench.outcome import SegmentOutcome, parquet_rows, raw_alerts, recorded_arrivals
from alertbench.broker.batch import loss as data_loss


def _distribution(outcome: SegmentOutcome) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Arrivals in the distribution topics against what the filters select."""
    arrivals = recorded_arrivals(outcome)
    expected = (
        pd.read_csv(outcome.expected, dtype={"alert_id": str, "topic": str})
        if outcome.expected and outcome.expected.exists()
        else pd.DataFrame(columns=["topic", "alert_id"])
    )
    topics = {}
    for topic in outcome.distribution:
        got = arrivals.loc[arrivals["topic"] == topic, "alert_id"]
        want = set(expected.loc[expected["topic"] == topic, "alert_id"])
        have = set(got)
        topics[topic] = {
            "filter": outcome.distribution[topic],
            "expected": len(want),
            "received": len(got),
            "missing": len(want - have),
            "unexpected": len(have - want),
            "duplicates": len(got) - len(have),
        }
    return arrivals, topics


def _timed(arrivals: pd.DataFrame, since: float) -> tuple[pd.DataFrame, pd.Series]:
    """Arrivals of alerts sent since ``since`` (epoch s), and their latencies in seconds."""
    timed = arrivals[pd.to_numeric(arrivals["sent_us"], errors="coerce").notna()].copy()
    timed["sent_us"] = timed["sent_us"].astype("int64")
    timed = timed[timed["sent_us"] >= since * 1e6]
    return timed, (timed["arrival_us"] - timed["sent_us"]) / 1e6


def _delivery(outcome: SegmentOutcome, **found: Any) -> tuple[dict[str, Any], list[str]]:
    """Integrity's common part (sent, failed, drained, then ``found``) and its problems."""
    unmeasured = (outcome.warmup, outcome.settle)
    sent = sum(u.get("alerts", 0) for u in unmeasured) + sum(lo["alerts"] for lo in outcome.loads)
    failed = sum(u.get("failures", 0) for u in unmeasured) + sum(
        lo["failures"] for lo in outcome.loads
    )
    problems = []
    if failed:
        problems.append(f"{failed} alerts were not delivered to Kafka")
    if not outcome.drained:
        problems.append("the broker did not drain its input in time")
    return {"sent": sent, "failed": failed, "drained": outcome.drained, **found}, problems


def _throughput(
    outcome: SegmentOutcome, alerts: int, last: float | None
) -> dict[str, float | int | None]:
    """Measured alerts over the time from the first send to ``last`` (epoch s)."""
    first_send = min((lo["started"] for lo in outcome.loads), default=outcome.measured_from)
    return {
        "alerts": alerts,
        "alerts_per_s": round(alerts / (last - first_send), 1)
        if last and last > first_send
        else None,
        "drain_s": round(last - outcome.load_finished, 3) if last else None,
    }


def injected(faults: list[dict[str, Any]]) -> tuple[int, int]:
    """Malformed messages and duplicated alerts the run's faults wrote into the input."""
    malformed = again = 0
    for f in faults:
        done = f.get("inject") or {}
        malformed += sum((done.get("malformed") or {}).values())
        again += int(done.get("duplicates") or 0)
    return malformed, again


def segment_metrics(
    outcome: SegmentOutcome, t0: float, *, allow_aged_out: bool = False
) -> dict[str, Any]:
    """Every number of one segment (latencies, integrity, throughput) plus its series.

    Input records that aged out of Kafka's retention before the broker read
    them (the broker's ``_data_loss/`` records) are counted exactly and fail
    the run unless ``allow_aged_out``.
    """
    if outcome.broker_kind != "alertbench":
        return external_metrics(outcome)
    raw = raw_alerts(outcome.broker_out)
    measured = raw[raw["sent_us"] >= outcome.measured_from * 1e6]
    raw_lat = measured["committed"] - measured["sent_us"] / 1e6
    arrivals, topics = _distribution(outcome)
    timed, dist_lat = _timed(arrivals, outcome.measured_from)

    integrity, problems = _delivery(
        outcome,
        in_kafka=outcome.lag[-1][2] if outcome.lag else None,
        in_raw=len(raw),
        distinct_in_raw=int(raw["alert_id"].nunique()),
        quarantined=parquet_rows(outcome.broker_out / "quarantine"),
        in_science=parquet_rows(outcome.broker_out / "science"),
        topics=topics,
    )
    sent = integrity["sent"]
    # What a bad-input fault wrote on purpose: malformed messages the broker must
    # quarantine, and good alerts sent twice, which raw must hold twice.
    malformed, again = injected(outcome.faults)
    if malformed or again:
        integrity["injected"] = {"malformed": malformed, "duplicates": again}
    aged = data_loss.read(outcome.broker_out)
    gone = sum(r.count for r in aged)
    integrity["aged_out"] = {
        "records": gone,
        "ranges": [{**asdict(r), "count": r.count} for r in aged],
    }
    if aged and not allow_aged_out:
        problems.append(
            f"{gone:,} input records aged out of Kafka's retention before the broker read "
            "them: " + "; ".join(r.describe() for r in aged[:5]) + " (allow_aged_out = "
            "true in the scenario counts them without failing the run)"
        )
    if len(raw) != sent + again - gone:
        problems.append(
            f"{sent} alerts sent (+{again} sent twice"
            + (f", {gone} aged out" if gone else "")
            + f") but {len(raw)} rows in raw"
        )
    if len(raw) - integrity["distinct_in_raw"] != again:
        problems.append(
            f"{len(raw) - integrity['distinct_in_raw']} duplicate rows in raw"
            + (f" ({again} alerts were sent twice)" if again else "")
        )
    if integrity["quarantined"] != malformed:
        problems.append(
            f"{integrity['quarantined']} messages quarantined"
            + (f" ({malformed} malformed ones were written)" if malformed else "")
        )
    # Under faults an output topic is at-least-once: its duplicates are counted, not failed.
    faulted = bool(outcome.faults)
    for topic, t in topics.items():
        if t["missing"] or t["unexpected"] or (t["duplicates"] and not faulted):
            problems.append(
                f"topic {topic}: {t['missing']} missing, {t['unexpected']} unexpected, "
                f"{t['duplicates']} duplicated of {t['expected']} expected"
            )
    integrity["ok"] = not problems
    last_commit = float(measured["committed"].max()) if len(measured) else None
    return {
        "raw": raw,
        "measured": measured,
        "raw_latency": raw_lat,
        "dist": timed,
        "dist_latency": dist_lat,
        "integrity": integrity,
        "problems": problems,
        "throughput": _throughput(outcome, len(measured), last_commit),
    }


def external_metrics(outcome: SegmentOutcome) -> dict[str, Any]:
    """The numbers of a broker seen from outside: its outputs, timed by the ids they carry.

    There is no raw table: an alert counts as processed when it first
    appears in any output topic (``measured`` holds that first arrival as
    ``committed``). Integrity is what can be known from outside: every output
    id was sent and readable, and the broker's lag came back to zero;
    duplicates are counted, not failed.
    """
    arrivals = recorded_arrivals(outcome)
    timed, dist_lat = _timed(arrivals, outcome.measured_from)
    first = timed.groupby("alert_id", as_index=False).agg(
        sent_us=("sent_us", "first"), arrival_us=("arrival_us", "min")
    )
    measured = pd.DataFrame(
        {
            "alert_id": first["alert_id"],
            "sent_us": first["sent_us"],
            "committed": first["arrival_us"] / 1e6,
        }
    )
    topics: dict[str, dict[str, Any]] = {}
    for topic in outcome.distribution:
        rows = arrivals[arrivals["topic"] == topic]
        ids = rows["alert_id"].dropna()
        distinct = int(ids.nunique())
        topics[topic] = {
            "filter": outcome.distribution[topic],
            "received": len(rows),
            "distinct": distinct,
            "duplicates": len(ids) - distinct,
            # An id read, but never sent: no send time was found for it.
            "unknown": int(rows.loc[ids.index, "sent_us"].isna().sum()),
            "unreadable": len(rows) - len(ids),
        }
    last = outcome.lag[-1] if outcome.lag else None
    integrity, problems = _delivery(
        outcome,
        in_kafka=last[2] if last else None,
        consumed=last[3] if last else None,
        final_lag=last[4] if last else None,
        topics=topics,
    )
    if last is not None and last[4]:
        problems.append(f"the broker's lag ended at {last[4]}, not 0")
    if not topics:
        problems.append("the broker under test wrote no output topic")
    for topic, t in topics.items():
        if t["unknown"]:
            problems.append(f"topic {topic}: {t['unknown']} messages carry ids never sent")
        if t["unreadable"]:
            problems.append(
                f"topic {topic}: {t['unreadable']} messages whose alert id could not be read "
                "(check --id-format and --id-field; the timing log says why)"
            )
    integrity["ok"] = not problems
    last_arrival = float(measured["committed"].max()) if len(measured) else None
    # A broker that filters writes a few of the alerts it read: once it has drained its
    # input, it processed every measured alert by its last output.
    processed = sum(lo["alerts"] for lo in outcome.loads) if outcome.drained else len(measured)
    return {
        "raw": measured.iloc[0:0],
        "measured": measured,
        "raw_latency": pd.Series(dtype=float),
        "dist": timed,
        "dist_latency": dist_lat,
        "integrity": integrity,
        "problems": problems,
        "throughput": _throughput(outcome, processed, last_arrival),
    }
