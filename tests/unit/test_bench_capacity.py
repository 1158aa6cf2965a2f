"""The capacity model: survey loads sized from a run's measured rates per core."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from alertbench.bench import capacity
from alertbench.bench.capacity import capacity_model


def measured_run(alerts_per_s: float = 100.0, broker_cpu: float = 200.0) -> dict[str, Any]:
    """A run that processed ``alerts_per_s`` on ``broker_cpu`` percent of a core."""
    return {
        "run_id": "r1",
        "machine": {"cores": 2},
        "producer": {"alerts": 10_000, "mb": 820.0, "average_mb_per_s": 8.2, "mb_per_s": 41.0},
        "throughput": {"alerts_per_s": alerts_per_s},
        "resources": {
            "broker": {"cpu_mean": broker_cpu, "cpu_max": 250.0, "rss_max_mb": 900.0},
            "kafka": {"cpu_mean": 50.0, "cpu_max": 80.0, "rss_max_mb": 600.0},
        },
    }


def load_named(model: dict[str, Any], name: str) -> dict[str, Any]:
    return next(load for load in model["loads"] if load["name"] == name)


def test_rates_per_core_follow_from_throughput_and_cpu() -> None:
    measured = capacity_model(measured_run())["measured"]
    # 100 alerts/s on 2 cores; 8.2 MB/s on half a core; 820 MB over 10,000 alerts.
    assert measured["broker_cores"] == 2.0
    assert measured["spark_alerts_per_s_per_core"] == 50.0
    assert measured["kafka_mb_per_s_per_core"] == 16.4
    assert measured["mean_alert_kb"] == 82.0
    assert measured["machine_cores"] == 2


def test_rubin_nominal_needs_the_expected_cores_and_brokers() -> None:
    nominal = load_named(capacity_model(measured_run()), "Rubin nominal")
    rate = 10_000 / 37
    assert nominal["alerts_per_s"] == pytest.approx(rate, abs=1e-3)
    assert nominal["mb_per_s"] == pytest.approx(rate * 82 / 1000, abs=1e-3)
    # 270.3 alerts/s at 50 per core and 70% busy: 7.7 -> 8 cores.
    assert nominal["spark_cores"] == 8
    # 22.2 MB/s written 3 times at 16.4 MB/s per core and 70% busy: 5.8 -> 6 cores.
    assert nominal["kafka_cores"] == 6
    # Far below one broker's disk and network budgets: replication's minimum decides.
    assert nominal["kafka_brokers"] == 3
    assert nominal["kafka_brokers_by"] == {"replication": 3, "disk": 1, "network": 1}
    assert nominal["egress_mb_per_s"] == pytest.approx(nominal["mb_per_s"] * 7, abs=1e-2)


def test_every_load_is_sized_and_peak_needs_four_times_nominal() -> None:
    model = capacity_model(measured_run())
    assert [load["name"] for load in model["loads"]] == ["Rubin nominal", "Rubin peak", "ZTF"]
    peak = load_named(model, "Rubin peak")
    assert peak["alerts_per_s"] == pytest.approx(40_000 / 37, abs=1e-3)
    assert peak["spark_cores"] == math.ceil(40_000 / 37 / 50 / 0.7) == 31
    ztf = load_named(model, "ZTF")
    assert ztf["spark_cores"] == math.ceil(2_000 / 38 / 50 / 0.7) == 2
    assert "ssumption" in ztf["source"]


def test_a_faster_broker_needs_fewer_cores() -> None:
    slow = capacity_model(measured_run(alerts_per_s=100.0))
    fast = capacity_model(measured_run(alerts_per_s=400.0))
    for before, after in zip(slow["loads"], fast["loads"], strict=True):
        assert after["spark_cores"] <= before["spark_cores"]
    assert (
        load_named(fast, "Rubin peak")["spark_cores"]
        < load_named(slow, "Rubin peak")["spark_cores"]
    )
    # The same speed for more CPU is a slower broker.
    hungry = capacity_model(measured_run(alerts_per_s=100.0, broker_cpu=400.0))
    assert load_named(hungry, "Rubin nominal")["spark_cores"] == 16


def test_brokers_grow_with_disk_and_network_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    huge = {
        "name": "huge",
        "alerts_per_visit": 100_000,
        "visit_interval_s": 10.0,
        "alert_kb": 100.0,
        "source": "test",
    }
    monkeypatch.setattr(capacity, "LOADS", [huge])
    (load,) = capacity_model(measured_run())["loads"]
    # 1,000 MB/s: written 3x at 200 MB/s per broker -> 15; sent 7x at 1,000 MB/s -> 7.
    assert load["mb_per_s"] == 1000.0
    assert load["kafka_brokers_by"] == {"replication": 3, "disk": 15, "network": 7}
    assert load["kafka_brokers"] == 15


def test_missing_inputs_are_reported_not_crashed_on() -> None:
    model = capacity_model({"run_id": "empty"})
    assert set(model["missing"]) == {
        "throughput.alerts_per_s",
        "resources.broker.cpu_mean",
        "producer.average_mb_per_s",
        "resources.kafka.cpu_mean",
        "producer.mb",
        "producer.alerts",
    }
    assert model["measured"]["spark_alerts_per_s_per_core"] is None
    notes = " ".join(model["notes"])
    assert "Spark cores not computed" in notes
    assert "Kafka cores not computed" in notes
    assert "Mean alert size not computed" in notes
    for load in model["loads"]:
        assert load["spark_cores"] is None
        assert load["kafka_cores"] is None
        # Brokers depend only on the load and the stated budgets.
        assert load["kafka_brokers"] == 3


def test_nulls_zeros_and_partial_inputs() -> None:
    results = measured_run()
    results["throughput"]["alerts_per_s"] = None
    results["resources"]["kafka"] = None
    results["producer"]["alerts"] = 0
    model = capacity_model(results)
    assert model["missing"] == [
        "throughput.alerts_per_s",
        "resources.kafka.cpu_mean",
        "producer.alerts",
    ]
    assert model["measured"]["broker_cores"] == 2.0
    assert model["measured"]["mean_alert_kb"] is None
    assert all(load["spark_cores"] is None for load in model["loads"])


def test_near_idle_cpu_is_floored_and_said_so() -> None:
    model = capacity_model(measured_run(alerts_per_s=10.0, broker_cpu=1.0))
    assert model["measured"]["broker_cores"] == 0.05
    assert model["measured"]["spark_alerts_per_s_per_core"] == 200.0
    assert any("Broker CPU was below" in note for note in model["notes"])


def test_the_section_is_plain_json_and_states_its_assumptions() -> None:
    model = capacity_model(measured_run())
    assert json.loads(json.dumps(model)) == model
    assumptions = model["assumptions"]
    assert assumptions["utilisation"]["value"] == 0.7
    assert assumptions["replication_factor"]["value"] == 3
    assert assumptions["full_stream_consumers"]["value"] == 5
    assert assumptions["broker_disk_write_mb_per_s"]["value"] == 200.0
    assert assumptions["broker_network_mb_per_s"]["value"] == 1000.0
    assert all(a["why"] for a in assumptions.values())


COSTS = {
    "measured": {"date": "2026-12-02", "machine": {"cores": 2}, "command": "science.py"},
    "surveys": {
        "lsst": {
            "rules": {"alerts": 100, "modules": {}, "ms_per_alert": 0.0},
            "fink": {
                "alerts": 100,
                "modules": {"vsx": 0.5, "ad_features": 1.0},
                "ms_per_alert": 1.5,
            },
        },
        "ztf": {"fink": {"alerts": 100, "modules": {"roid": 2.0}, "ms_per_alert": 2.0}},
    },
}


def test_each_load_is_sized_for_each_science_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "science_costs", lambda: COSTS)
    # 50 alerts/s per core = 20 ms per alert, 0.5 of them the run's own science.
    run = measured_run()
    run["science"] = {"profile": "rules", "ms_per_input_alert": 0.5}
    model = capacity_model(run)
    nominal = load_named(model, "Rubin nominal")
    rate = 10_000 / 37.0
    fink = nominal["profiles"]["fink"]
    assert fink["science_ms_per_alert"] == 1.5
    assert fink["science_cores"] == math.ceil(rate * 1.5 / 1e3 / capacity.UTILISATION)
    assert fink["spark_cores"] == math.ceil(rate * (20.0 - 0.5 + 1.5) / 1e3 / capacity.UTILISATION)
    assert fink["modules"] == {"vsx": 0.5, "ad_features": 1.0}
    rules = nominal["profiles"]["rules"]
    assert rules["science_cores"] == 0
    assert rules["spark_cores"] == math.ceil(rate * 19.5 / 1e3 / capacity.UTILISATION)
    # The ZTF load takes ZTF's costs: only the profiles measured there.
    assert list(load_named(model, "ZTF")["profiles"]) == ["fink"]
    assert "measured 2026-12-02" in model["assumptions"]["science_costs"]["value"]


def test_without_a_measured_rate_profiles_still_give_their_science_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(capacity, "science_costs", lambda: COSTS)
    peak = load_named(capacity_model({}), "Rubin peak")
    assert peak["profiles"]["fink"]["spark_cores"] is None
    assert peak["profiles"]["fink"]["science_cores"] == math.ceil(
        40_000 / 37.0 * 1.5 / 1e3 / capacity.UTILISATION
    )


def test_the_shipped_science_costs_name_both_profiles_on_both_surveys() -> None:
    costs = capacity.science_costs()
    assert costs["measured"]["date"]
    assert costs["measured"]["machine"]["cores"] >= 1
    for survey in ("ztf", "lsst"):
        assert set(costs["surveys"][survey]) == {"rules", "fink"}
    fink = costs["surveys"]["ztf"]["fink"]
    assert {"vsx", "gcvs", "mangrove", "brightstar", "roid", "ad_features", "anomaly_score"} <= set(
        fink["modules"]
    )
    assert fink["ms_per_alert"] == pytest.approx(sum(fink["modules"].values()), abs=1e-4)


def test_max_throughput_sizes_spark_from_its_highest_held_step() -> None:
    run = measured_run()
    cpu = {"simulator": 0.9, "kafka": 0.4, "timing": 0.1}
    run["steps"] = [
        {"rate": 200, "held": True, "cpu_ms_per_alert": {**cpu, "broker": 2.5}},
        {"rate": 400, "held": True, "cpu_ms_per_alert": {**cpu, "broker": 1.25}},
        {"rate": 600, "held": False, "cpu_ms_per_alert": {**cpu, "broker": 1.0}},
    ]
    model = capacity_model(run)
    # 1.25 ms of broker CPU per alert at 400 alerts/s, the highest held: 800 alerts/s a core,
    # not the 50 of the whole run's mean CPU (cold start, drain and the step not held).
    assert model["measured"]["spark_alerts_per_s_per_core"] == 800.0
    assert any("highest held step (400 alerts/s)" in n for n in model["notes"])
    nominal = load_named(model, "Rubin nominal")
    assert nominal["spark_cores"] == math.ceil(10_000 / 37 / 800 / capacity.UTILISATION)
