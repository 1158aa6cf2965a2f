"""max-throughput's held rule, its windows between backlog troughs, and CPU per alert."""

from __future__ import annotations

import pytest

from alertbench.bench.steps import (
    HELD,
    NOT_HELD,
    PRODUCER_LIMITED,
    StepWindow,
    cpu_per_alert,
    judge,
    max_held,
    window,
)

# series/steps.csv of the run in issue 26 (pass-through broker, 40 s steps, 2 cores):
# rate, produced_per_s, processed_per_s, lag_start, lag_end; the old rule held all four.
ISSUE_26 = [
    (600.0, 522.2, 516.0, 0, 285),
    (1000.0, 867.6, 851.3, 285, 1035),
    (1500.0, 1299.8, 806.5, 0, 22755),
    (2000.0, 1650.8, 1417.1, 22755, 34045),
]


def _judged(rows: list[tuple], sent_share: float | None = None) -> list[dict]:
    out = []
    for rate, produced, processed, lag_start, lag_end in rows:
        sent = round((rate if sent_share is not None else produced) * 40 * (sent_share or 1))
        win = StepWindow(0.0, 40.0, round(produced * 40), round(processed * 40), lag_start, lag_end)
        out.append({"rate": rate, **judge(rate, 40.0, sent, win, growth_s=5.0)})
    return out


def test_issue_26s_steps_3_and_4_are_not_held_and_its_producers_fell_short() -> None:
    judged = _judged(ISSUE_26)
    assert [j["held"] for j in judged] == [False, False, False, False]
    # Every step's producers sent under 95% of the asked alerts (522 of 600 a second...).
    assert [j["verdict"] for j in judged] == [PRODUCER_LIMITED] * 4
    assert [j["produced_share"] for j in judged] == [0.8703, 0.8676, 0.8665, 0.8254]
    # Steps 3 and 4 also fail on the broker's side, and say so.
    assert "the broker processed 62.0% of the 51,992 alerts produced" in judged[2]["reason"]
    assert "its backlog grew by 22,755 (allowed: 7,500, 5 s of input)" in judged[2]["reason"]
    assert "the broker processed 85.8%" in judged[3]["reason"]
    assert "backlog grew by 11,290" in judged[3]["reason"]
    assert "the broker processed" not in judged[0]["reason"]
    assert max_held([{"rate": j["rate"], "held": j["held"]} for j in judged]) is None


def test_with_producers_on_rate_the_broker_alone_decides() -> None:
    judged = _judged(ISSUE_26, sent_share=1.0)
    assert [j["verdict"] for j in judged] == [HELD, HELD, NOT_HELD, NOT_HELD]
    assert judged[0]["reason"] == "processed 98.8% of what was produced; backlog grew by 285 " \
        "(allowed 3,000)"  # fmt: skip
    assert max_held([{"rate": j["rate"], "held": j["held"]} for j in judged]) == 1000.0


def test_a_backlog_growing_past_the_allowance_is_not_held_even_at_95_percent() -> None:
    win = StepWindow(0.0, 45.0, produced=45_000, processed=43_000, lag_start=100, lag_end=6_100)
    verdict = judge(1000.0, 45.0, 45_000, win, growth_s=5.0)
    assert verdict["verdict"] == NOT_HELD
    assert verdict["processed_share"] == pytest.approx(0.9556, abs=1e-4)
    assert verdict["reason"] == "its backlog grew by 6,000 (allowed: 5,000, 5 s of input)"


def test_unknown_progress_never_holds() -> None:
    verdict = judge(100.0, 10.0, 1000, None, growth_s=5.0)
    assert (verdict["verdict"], verdict["reason"]) == (
        NOT_HELD,
        "the broker's progress over the step is not known",
    )


def _sawtooth(rate: float, capacity: float, batch_s: int, seconds: int) -> list[tuple]:
    """Lag rows of a micro-batching broker: each batch reads what was there when it started."""
    rows, end, done, started_at, taken = [], 0, 0, 0, 0
    for t in range(seconds + 1):
        end = int(rate * t)
        if t - started_at >= batch_s:  # the batch in flight commits; the next takes it all
            done = min(taken, int(capacity * t))
            started_at, taken = t, end
        rows.append((float(t), end, end, done, end - done))
    return rows


def test_a_broker_that_keeps_up_is_held_whatever_the_batch_phase() -> None:
    rows = _sawtooth(rate=500, capacity=10**9, batch_s=4, seconds=70)
    for start, stop in ((20, 65), (21, 63), (23, 62), (22, 65)):
        win = window(rows, start, stop)
        assert win is not None
        # Two troughs, both just after a commit: the same phase of the saw-tooth.
        assert win.lag_end - win.lag_start == 0
        assert judge(500, stop - start, 500 * (stop - start), win, growth_s=5.0)["held"]
    # Instants picked blindly (the step's start and end) see a tooth of 1,000 instead.
    assert [rows[t][4] for t in (21, 63)] == [2500, 3500]


def test_a_broker_that_falls_behind_is_not_held() -> None:
    rows = _sawtooth(rate=1000, capacity=700, batch_s=2, seconds=45)
    win = window(rows, 0, 45)
    assert win is not None
    verdict = judge(1000, 45, 45_000, win, growth_s=5.0)
    assert verdict["verdict"] == NOT_HELD
    assert verdict["processed_share"] < 0.75
    assert verdict["growth"] > 5000


def test_window_needs_two_samples_with_a_lag() -> None:
    assert window([(1.0, 0, 10, None, None), (2.0, 0, 20, None, None)], 0, 5) is None
    assert window([(1.0, 0, 10, 5, 5)], 0, 5) is None


def test_cpu_per_alert_counts_each_sample_over_the_time_since_the_previous() -> None:
    rows = []
    for t in range(0, 11):
        rows.append((float(t), "broker", 150.0, 900.0))  # 1.5 cores
        rows.append((float(t), "kafka", 50.0, 400.0))
    rows.append((12.0, "broker", 100.0, 900.0))  # 2 s since the last: 2 cpu-seconds
    per = cpu_per_alert(rows, 0.0, 12.0, alerts=1000)
    # broker: 10 samples x 1.5 s + 2 s = 17 cpu-s; kafka: 10 x 0.5 = 5 cpu-s.
    assert per == {"broker": 17.0, "kafka": 5.0, "total": 22.0}
    assert cpu_per_alert(rows, 0.0, 5.0, alerts=0) == {"broker": None, "kafka": None, "total": None}


def test_max_held_stops_at_the_first_step_not_held() -> None:
    steps = [
        {"rate": 200, "held": True},
        {"rate": 400, "held": False},
        {"rate": 600, "held": True},
    ]
    assert max_held(steps) == 200
    assert max_held([]) is None


def test_steps_added_after_the_scenarios_are_a_quarter_faster_to_50_alerts_a_second() -> None:
    from alertbench.bench.load import faster

    assert [faster(r) for r in (40, 200, 600, 1000, 2200)] == [90, 250, 750, 1250, 2750]
