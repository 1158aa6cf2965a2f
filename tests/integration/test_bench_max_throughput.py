"""max-throughput's verdicts on a broker that cannot keep up, and the null broker's ceiling.

The broker is the README's pass-through (``examples/passthrough.py``) capped
at 120 alerts a second with its ``--max-rate``: it holds 40 alerts/s and
cannot hold 300. The run must stop at that step, say why, and then run the
same steps against the null broker, which holds them all and one more.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

from others import passthrough, run_scenario, running

pytestmark = [pytest.mark.kafka]


def test_a_broker_that_cannot_sustain_a_rate_stops_there_beside_its_ceiling(
    cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    output = f"slow-{uuid.uuid4().hex[:8]}"
    scenario = tmp_path / "slow.toml"
    scenario.write_text(
        'name = "slow"\nkind = "max-throughput"\nschedule = "rate"\npartitions = 2\n'
        "producers = 1\nwarmup_alerts = 20\nsettle_s = 20\nceiling = true\nextend_steps = 1\n"
        "steps = [{rate = 40, seconds = 10}, {rate = 300, seconds = 8}, "
        "{rate = 600, seconds = 8}]\n"
        f'[broker]\ncmd = "{passthrough(output, "slow")} --max-rate 120"\n'
        f'output_topics = "{output}"\ngroup = "slow"\nid_format = "container"\n'
    )
    r, stdout, run = run_scenario(cli, scenario, alerts_dir, tmp_path)
    assert r["status"] == "passed", r["failures"]
    # Settled at the first rate before step 1, unmeasured.
    assert r["settle"]["rate"] == 40
    assert r["settle"]["steady"] is True
    steps = r["steps"]
    # It held 40/s, could not hold 300/s, and the run stopped there: no step 3.
    assert [(s["rate"], s["verdict"]) for s in steps] == [(40, "held"), (300, "not held")]
    assert steps[1]["reason"].startswith("the broker processed ")
    assert steps[1]["processed_share"] < 0.6  # at most 120 + 1 s of credit, of 300 a second
    assert steps[1]["produced_share"] >= 0.95  # the producers did offer the rate
    assert steps[1]["lag_end"] > steps[1]["lag_start"]
    assert r["max_held_rate"] == 40
    # Each component's CPU per alert, per step.
    for s in steps:
        cpu = s["cpu_ms_per_alert"]
        assert {"simulator", "kafka", "broker", "timing", "total"} <= set(cpu)
        assert cpu["total"] == pytest.approx(
            sum(v for k, v in cpu.items() if k != "total"), abs=1e-3
        )
        assert cpu["broker"] > 0
        assert cpu["kafka"] > 0
    # The null broker on the same steps: it holds them all, on the same machine, same run.
    ceiling = r["ceiling"]
    # All the scenario's steps held, so one more (extend_steps = 1), 25% faster, was run.
    assert [(s["rate"], s["verdict"], s["extended"]) for s in ceiling["steps"]] == [
        (40, "held", False),
        (300, "held", False),
        (600, "held", False),
        (750, "held", True),
    ]
    assert (ceiling["max_held_rate"], ceiling["max_held_bound"]) == (750, "lower bound")
    assert (r["max_held_rate"], r["max_held_bound"]) == (40, "found")
    assert ceiling["ratio"] == round(40 / 750, 4)
    # Both in the series and the report; nothing of either broker left running.
    table = pd.read_csv(run / "series" / "steps.csv")
    assert list(table["verdict"]) == ["held", "not held"]
    assert list(pd.read_csv(run / "series" / "ceiling_steps.csv")["verdict"]) == ["held"] * 4
    assert "producer-limited" in r["held_rule"]
    assert "null broker" in stdout
    assert "not held" in stdout
    assert "Null broker&#x27;s max held rate" in (run / "report.html").read_text()
    assert running(output) == []
    assert running("alertbench.bench.nullbroker") == []
