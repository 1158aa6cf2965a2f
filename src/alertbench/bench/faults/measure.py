"""What each fault cost: loss per id, duplicates per stage, gaps, time to recover; and the verdict.

From a segment's records, as the anchors measure a fault (Kafka's
``validate_delivery``, Jepsen's history of every id, Spark's exactly-once
sink): every acknowledged alert must reach raw (its id, not a count);
raw and science hold no duplicate an injected fault did not write;
output topics are at-least-once, so their duplicates are counted, not
failed; and the broker must be back within two visits of the heal, where
back means a visit whose p99 is within 1.5 times that of the visits before
the fault.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alertbench.bench.outcome import SegmentOutcome
from alertbench.broker.batch import loss as data_loss

#: A visit after the heal is back when its p99 is within this factor of the baseline's.
RECOVERED_P99_FACTOR = 1.5
#: ... or within this many seconds of it, whichever is more: a p99 under a second moves by
#: a micro-batch trigger (1 s) from visit to visit without any fault.
RECOVERED_P99_FLOOR_S = 1.0
#: Visits after the heal within which the broker must be back (a scenario's recovery_visits).
RECOVERY_VISITS = 2
#: Rubin's rule, per visit: this share within this many seconds.
VISIT_SHARE, VISIT_BUDGET_S = 0.98, 60.0


def pass_rules(recovery_visits: int = RECOVERY_VISITS) -> str:
    """The faults' pass rules, in words."""
    return (
        "no acknowledged alert missing from raw (per id); no duplicate in raw or science that "
        "a fault did not write (exactly-once); output duplicates counted, not failed "
        "(at-least-once); every fault injected and healed; with visits, back within "
        f"{recovery_visits} visits of the heal (two consecutive visits with p99 within "
        f"{RECOVERED_P99_FACTOR}x, or {RECOVERED_P99_FLOOR_S:g} s of, the median p99 of the "
        "visits before the fault)"
    )


def read_acks(folder: Path) -> pd.DataFrame:
    """Every delivery report the producers recorded (``acks.J.csv``).

    Columns: alert_id, sent_us, ack_us, error, and the partition and offset
    it was written at (-1 when it was not).
    """
    names = ["alert_id", "sent_us", "ack_us", "error", "partition", "offset"]
    dtype = {"alert_id": str, "sent_us": np.int64, "ack_us": np.int64, "error": str}
    dtype |= {"partition": np.int64, "offset": np.int64}
    files = sorted(folder.glob("acks.*.csv"))
    if not files:
        return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in dtype.items()})
    frames = [pd.read_csv(f, names=names, dtype=dtype, keep_default_na=False) for f in files]
    return pd.concat(frames, ignore_index=True)


def _ids(folder: Path) -> pd.Series:
    """The alert ids of every Parquet row under ``folder`` (raw or science)."""
    import pyarrow.parquet as pq

    from alertbench.broker.batch.flatten import ALERT_ID_COLUMNS

    parts = []
    for f in sorted(folder.rglob("*.parquet")) if folder.exists() else []:
        names = pq.read_schema(f).names
        col = next((c for c in ALERT_ID_COLUMNS if c in names), None)
        if col is not None:
            parts.append(pq.read_table(f, columns=[col]).column(col).to_pandas().astype(str))
    return pd.concat(parts, ignore_index=True) if parts else pd.Series([], dtype=str)


def quarantine_reasons(folder: Path) -> dict[str, int]:
    """How many messages the broker quarantined, per reason (the reason's first clause)."""
    import pyarrow.parquet as pq

    counts: dict[str, int] = {}
    for f in sorted(folder.rglob("*.parquet")) if folder.exists() else []:
        for reason in pq.read_table(f, columns=["error"]).column("error").to_pylist():
            key = str(reason).split(":")[0].strip()
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _stalls(start: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each wait between two completions while something waited: (its start, its end).

    ``start`` and ``done`` are when each item (an alert sent, or read into a
    batch) began to wait and completed (acknowledged, committed). Between
    two successive completions, the wait counts from the later of the first
    completion and the earliest start among what completed second: idle
    time between visits, with nothing outstanding, is no stall; the first
    completion counts from its own start.
    """
    if not len(done):
        return np.array([]), np.array([])
    frame = pd.DataFrame({"start": start, "done": done}).groupby("done")["start"].min()
    times, firsts = frame.index.to_numpy(dtype=float), frame.to_numpy(dtype=float)
    # The first completion waited from its own start.
    previous = np.concatenate([[-np.inf], times[:-1]])
    began = np.maximum(previous, firsts)
    keep = times > began
    return began[keep], times[keep]


def _phases(
    start: np.ndarray,
    done: np.ndarray,
    injected: float,
    healed: float,
    *,
    previous_heal: float = -np.inf,
    next_fault: float = np.inf,
) -> dict[str, float | None]:
    """The longest stall before the fault, across it, and after the heal (seconds).

    Baseline and recovery stop at the faults on either side (the previous
    one's heal, the next one's strike), so that no fault's stall is counted
    as another's baseline or recovery.
    """
    began, ended = _stalls(start, done)
    phases = {
        "baseline": (ended < injected) & (began >= previous_heal),
        # A stall that began before the heal and ended after the fault struck is the fault's.
        "fault": (began < healed) & (ended >= injected),
        "recovery": (began >= healed) & (ended < next_fault),
    }
    return {
        name: round(float((ended - began)[mask].max()), 3) if mask.any() else None
        for name, mask in phases.items()
    }


def _first_after(times: np.ndarray, at: float) -> float | None:
    later = times[times >= at]
    return round(float(later.min() - at), 3) if len(later) else None


def _visits(outcome: SegmentOutcome, measured: pd.DataFrame, interval: float) -> list[dict]:
    """Each visit's window, p99 and share within Rubin's 60 s, from its alerts' latencies."""
    found = []
    for v in sorted(
        (v for lo in outcome.loads for v in lo.get("visits", [])), key=lambda v: v["due"]
    ):
        due = v["due"]
        mask = (measured["sent_us"] >= due * 1e6) & (measured["sent_us"] < (due + interval) * 1e6)
        lat = (measured.loc[mask, "committed"] - measured.loc[mask, "sent_us"] / 1e6).dropna()
        found.append(
            {
                "visit": v["visit"] + 1,  # counted from 1, as a fault's visit is
                "due": due,
                "alerts": int(mask.sum()),
                "p99_s": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
                "share_within_60s": round(float((lat <= VISIT_BUDGET_S).mean()), 5)
                if len(lat)
                else None,
            }
        )
    return found


def _recovery(
    visits: list[dict],
    injected: float,
    healed: float,
    interval: float,
    *,
    first_fault: float,
    next_fault: float | None,
    within: int = RECOVERY_VISITS,
) -> dict:
    """Whether the broker was back within ``within`` visits of the heal.

    The baseline is the visits over before the run's first fault; the visits
    judged are those that start after this fault's heal and end before the
    next fault strikes, so one fault's recovery is not blamed on another.
    """
    before = [v for v in visits if v["due"] + interval <= first_fault and v["p99_s"] is not None]
    after = [
        v
        for v in visits
        if v["due"] >= healed and (next_fault is None or v["due"] + interval <= next_fault)
    ]
    if not before:
        return {"judged": False, "why": "no visit ended before the first fault: no baseline"}
    baseline = float(np.median([v["p99_s"] for v in before]))
    if len(after) < 2:
        return {
            "judged": False,
            "why": f"{len(after)} visit(s) between the heal and the next fault or the end: "
            "two are needed",
            "baseline_p99_s": round(baseline, 3),
        }
    limit = max(RECOVERED_P99_FACTOR * baseline, baseline + RECOVERED_P99_FLOOR_S)
    good = [v["p99_s"] is not None and v["p99_s"] <= limit for v in after]
    first = next((k for k in range(len(after) - 1) if good[k] and good[k + 1]), None)
    return {
        "judged": True,
        "baseline_p99_s": round(baseline, 3),
        "limit_p99_s": round(limit, 3),
        "visits_after_heal": [v["visit"] for v in after],
        "back_at_visit": after[first]["visit"] if first is not None else None,
        "recovery_s": round(after[first]["due"] - healed, 3) if first is not None else None,
        "recovery_visits": within,
        "back_in_time": first is not None and first < within,
    }


def fault_results(
    outcome: SegmentOutcome,
    metrics: dict[str, Any],
    *,
    t0: float,
    interval: float | None,
    allow_aged_out: bool = False,
    recovery_visits: int = RECOVERY_VISITS,
) -> tuple[dict[str, Any], list[str]]:
    """results.json's ``faults`` and the failures the pass rules find.

    Parameters
    ----------
    outcome : SegmentOutcome
        The faulted segment (its fault records, loads, acks and outputs).
    metrics : dict
        Its :func:`~alertbench.bench.metrics.segment_metrics`.
    t0 : float
        The run's start (times are reported in seconds since).
    interval : float or None
        Seconds between visits; None when the load is not visits.
    allow_aged_out : bool
        Acknowledged alerts that aged out of retention before the broker read
        them (told apart by their offsets) are counted, not failed; either way
        they are not counted as lost.
    recovery_visits : int
        Visits after a heal within which the broker must be back.
    """
    problems: list[str] = []
    acks = read_acks(outcome.dir)
    ok = acks[acks["error"] == ""]
    ack_times = ok["ack_us"].to_numpy(dtype=float) / 1e6
    ack_sent = ok["sent_us"].to_numpy(dtype=float) / 1e6
    own = outcome.broker_kind == "alertbench"
    seen_ids = metrics["raw"]["alert_id"] if own else metrics["measured"]["alert_id"]
    seen = set(seen_ids.astype(str))
    aged = data_loss.read(outcome.broker_out) if own else []
    in_aged = np.zeros(len(ok), dtype=bool)
    for r in aged:
        # Ack logs name no topic: the input is the segment's one topic.
        in_aged |= (
            (ok["partition"] == r.partition) & (ok["offset"] >= r.start) & (ok["offset"] < r.end)
        ).to_numpy()
    aged_ids = sorted(set(ok.loc[in_aged, "alert_id"]))
    read_anyway = sorted(set(aged_ids) & seen)
    if read_anyway:
        problems.append(
            f"{len(read_anyway)} alerts counted as aged out are in raw: "
            + ", ".join(read_anyway[:10])
        )
    lost = sorted(set(ok.loc[~in_aged, "alert_id"]) - seen)
    never = sorted(set(acks.loc[acks["error"] != "", "alert_id"]) - set(ok["alert_id"]))
    if lost:
        problems.append(
            f"{len(lost)} acknowledged alerts never reached {'raw' if own else 'any output'}: "
            + ", ".join(lost[:10])
            + (" ..." if len(lost) > 10 else "")
        )
    integrity = metrics["integrity"]
    injected_dups = (integrity.get("injected") or {}).get("duplicates", 0)
    stages: dict[str, Any] = {}
    if own:
        raw_ids = metrics["raw"]["alert_id"]
        science = _ids(outcome.broker_out / "science")
        stages["raw"] = int(len(raw_ids) - raw_ids.nunique())
        stages["science"] = int(len(science) - science.nunique())
        for stage in ("raw", "science"):
            if stages[stage] > injected_dups:
                problems.append(
                    f"{stages[stage] - injected_dups} duplicate alerts in {stage} that no "
                    "fault wrote (exactly-once broken)"
                )
    stages["outputs"] = {t: v.get("duplicates", 0) for t, v in integrity.get("topics", {}).items()}
    # The measured load's commits: the warm-up's wait for a cold broker is no stall.
    done = metrics["measured"].dropna(subset=["committed"])
    commits = done["committed"].to_numpy(dtype=float)
    commit_sent = done["sent_us"].to_numpy(dtype=float) / 1e6
    visits = _visits(outcome, metrics["measured"], interval) if interval else []
    records = []
    struck = sorted(r["injected"] for r in outcome.faults if r.get("injected") is not None)
    heals = sorted(
        r.get("healed") or r["injected"] for r in outcome.faults if r.get("injected") is not None
    )
    for rec in outcome.faults:
        out = {
            k: v for k, v in rec.items() if k not in ("due", "injected", "healed", "inject", "heal")
        }
        out["did"] = rec.get("inject")
        out["heal_did"] = rec.get("heal")
        injected, healed = rec.get("injected"), rec.get("healed")
        if rec.get("error"):
            problems.append(f"fault {rec['label']}: {rec['error']}")
        if injected is None:
            records.append(out)
            continue
        healed = healed or injected
        around = {
            "previous_heal": max((h for h in heals if h <= injected), default=-np.inf),
            "next_fault": min((t for t in struck if t > injected), default=np.inf),
        }
        out.update(
            injected_s=round(injected - t0, 3),
            healed_s=round(healed - t0, 3),
            first_ack_after_s=_first_after(ack_times, injected),
            first_commit_after_s=_first_after(commits, injected),
            first_commit_after_heal_s=_first_after(commits, healed),
            largest_ack_stall_s=_phases(ack_sent, ack_times, injected, healed, **around),
            largest_commit_stall_s=_phases(commit_sent, commits, injected, healed, **around),
        )
        if visits and interval:
            out["recovery"] = rec_ = _recovery(
                visits,
                injected,
                healed,
                interval,
                first_fault=struck[0],
                next_fault=next((t for t in struck if t > injected), None),
                within=recovery_visits,
            )
            if rec_["judged"] and not rec_["back_in_time"]:
                problems.append(
                    f"fault {rec['label']}: not back within {recovery_visits} visits of the "
                    f"heal (p99 limit {rec_['limit_p99_s']} s)"
                )
        records.append(out)
    missed = [
        v["visit"]
        for v in visits
        if v["share_within_60s"] is not None and v["share_within_60s"] < VISIT_SHARE
    ]
    section = {
        "pass_rules": pass_rules(recovery_visits),
        "faults": records,
        "acked": len(ok),
        "acked_lost": len(lost),
        "lost_ids": lost[:100],
        "never_acked": len(never),
        "aged_out": {
            "records": sum(r.count for r in aged),
            "acked": len(aged_ids),
            "ids": aged_ids[:100],
            "allowed": allow_aged_out,
        },
        "duplicates": stages,
        "quarantined": integrity.get("quarantined"),
        "quarantine_reasons": quarantine_reasons(outcome.broker_out / "quarantine")
        if own
        else None,
        "injected": integrity.get("injected"),
        "visits": [
            {**{k: x for k, x in v.items() if k != "due"}, "due_s": round(v["due"] - t0, 3)}
            for v in visits
        ],
        "visits_missing_98pct_in_60s": missed,
        "ok": not problems,
    }
    return section, problems
