"""The capacity model: what a survey's alert stream needs, scaled from one measured run.

A run measures how many alerts/s the broker processed and how much CPU it
used for them, and likewise how many MB/s Kafka took in for its CPU. Dividing
gives rates per core; a survey load (alerts per visit, visit interval, alert
size) divided by those rates, with headroom, gives the Spark cores and Kafka
cores it needs. The Kafka broker count comes from stated per-broker disk and
network budgets instead, because one machine's run cannot measure a cluster's
disks and network. Every assumption is returned with the numbers so a report
can print them beside the result.

The science a broker runs sets much of its cost, so each load is also sized
for every science profile: the run's cost per alert without its own
profile's science, plus each profile's measured science cost on that
survey's alerts (``science_costs.json``, made by ``benchmarks/science.py``).
"""

from __future__ import annotations

import json
import math
from importlib.resources import files
from typing import Any

#: Survey loads the model sizes for. Sizes are decimal: 1 KB = 1,000 bytes.
LOADS: list[dict[str, Any]] = [
    {
        "name": "Rubin nominal",
        "survey": "lsst",
        "alerts_per_visit": 10_000,
        "visit_interval_s": 37.0,
        "alert_kb": 82.0,
        "source": "Rubin requirements: 10,000 alerts per visit on average, a visit every "
        "~37 s; ~82 KB per alert packet (sizing estimate).",
    },
    {
        "name": "Rubin peak",
        "survey": "lsst",
        "alerts_per_visit": 40_000,
        "visit_interval_s": 37.0,
        "alert_kb": 82.0,
        "source": "Rubin requirements: up to 40,000 alerts in one visit (crowded fields), "
        "same interval and packet size as nominal.",
    },
    {
        "name": "ZTF",
        "survey": "ztf",
        "alerts_per_visit": 2_000,
        "visit_interval_s": 38.0,
        "alert_kb": 75.0,
        "source": "Assumption: a typical busy ZTF exposure gives ~2,000 alerts every ~38 s "
        "(30 s exposure + overheads), ~75 KB per Avro packet with cutouts.",
    },
]

#: Target CPU utilisation: headroom for bursts, GC pauses and recovery after a stall.
UTILISATION = 0.7
#: Kafka replication factor in production; also the fewest brokers that can hold it.
REPLICATION_FACTOR = 3
#: Community brokers each reading the full stream (Rubin distributes to several).
FULL_STREAM_CONSUMERS = 5
#: Sustained write budget of one Kafka broker's disks, MB/s.
BROKER_DISK_WRITE_MB_S = 200.0
#: Network budget of one Kafka broker: 10 GbE (1,250 MB/s) used at 80%.
BROKER_NETWORK_MB_S = 1_000.0
#: Latency budgets (s) a visit must be distributed within: Rubin's 60 s, and 10 s.
LATENCY_BUDGETS_S = (60.0, 10.0)
#: Least CPU (in cores) a component is counted as using, so a near-idle reading
#: does not give an unbounded rate per core.
MIN_CORES = 0.05


#: The science profiles' measured costs per survey (benchmarks/science.py --costs).
SCIENCE_COSTS = "science_costs.json"


def science_costs() -> dict[str, Any]:
    """The measured ms per alert of each science profile's modules, by survey.

    Returns
    -------
    dict
        ``{"measured": {date, machine, command}, "surveys": {survey: {profile:
        {"alerts", "modules": {name: ms}, "ms_per_alert"}}}}``; empty when the
        package has no such file.
    """
    path = files("alertbench.bench").joinpath(SCIENCE_COSTS)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _assumptions(measured_costs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    costs = measured_costs.get("measured") or {}
    return {
        "utilisation": {
            "value": UTILISATION,
            "why": "Spark and Kafka cores are sized to run at 70% busy, leaving headroom "
            "for bursts and catching up after a stall.",
        },
        "replication_factor": {
            "value": REPLICATION_FACTOR,
            "why": "Production Kafka keeps 3 replicas, so every MB in is written 3 times "
            "and at least 3 brokers are needed.",
        },
        "full_stream_consumers": {
            "value": FULL_STREAM_CONSUMERS,
            "why": "Community brokers that each read the whole stream; egress is "
            "ingress × (consumers + replication factor − 1 follower fetches).",
        },
        "broker_disk_write_mb_per_s": {
            "value": BROKER_DISK_WRITE_MB_S,
            "why": "Sustained disk write budget of one Kafka broker.",
        },
        "broker_network_mb_per_s": {
            "value": BROKER_NETWORK_MB_S,
            "why": "Outgoing network budget of one Kafka broker: 10 GbE at 80%.",
        },
        "min_cores": {
            "value": MIN_CORES,
            "why": "A component's measured CPU is counted as at least this many cores, so "
            "a near-idle reading does not give an unbounded per-core rate.",
        },
        "latency_budgets_s": {
            "value": list(LATENCY_BUDGETS_S),
            "why": "spark_cores_for_latency: cores so that a whole visit is processed "
            "within each budget (Rubin: 60 s; 10 s is ZTF's own distribution time), "
            "with all cores working on the visit at the measured rate per core.",
        },
        "linear_scaling": {
            "value": True,
            "why": "Rates per core are assumed to scale linearly with cores; the scaling "
            "scenario measures how far that holds.",
        },
        "units": {
            "value": "MB = 10^6 bytes, KB = 10^3 bytes; CPU in percent of one core",
            "why": "As in results.json.",
        },
        "science_costs": {
            "value": f"{SCIENCE_COSTS}, measured {costs.get('date', 'never')}",
            "why": "Each profile's ms per alert on that survey's real alerts "
            f"({costs.get('command', 'benchmarks/science.py --costs')}); a load's Spark "
            "cores per profile are the run's cost per alert without its own science plus "
            "the profile's, at the same utilisation.",
        },
    }


def _number(results: dict[str, Any], path: str) -> float | None:
    """The positive number at dotted ``path``, or None when absent, null, zero or not a number."""
    value: Any = results
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _cores(cpu_percent: float | None) -> float | None:
    return None if cpu_percent is None else max(cpu_percent / 100.0, MIN_CORES)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None:
        return None
    return numerator / denominator


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _per_core(
    notes: list[str],
    inputs: dict[str, float | None],
    rate_path: str,
    cpu_path: str,
    what: str,
    component: str,
) -> tuple[float | None, float | None]:
    """(cores used, rate per core) of one component, noting what could not be computed."""
    cpu = inputs[cpu_path]
    cores = _cores(cpu)
    per_core = _ratio(inputs[rate_path], cores)
    if per_core is None:
        notes.append(f"{what} cores not computed: needs {rate_path} and {cpu_path}.")
    elif cpu is not None and cpu / 100.0 < MIN_CORES:
        notes.append(f"{component} CPU was below {MIN_CORES} cores; counted as {MIN_CORES}.")
    return cores, per_core


def _measured(results: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Per-core rates from the run; the absent inputs; and notes on what they prevent."""
    inputs = {
        path: _number(results, path)
        for path in (
            "throughput.alerts_per_s",
            "resources.broker.cpu_mean",
            "producer.average_mb_per_s",
            "resources.kafka.cpu_mean",
            "producer.mb",
            "producer.alerts",
        )
    }
    missing = [path for path, value in inputs.items() if value is None]
    notes = []

    broker_cores, spark_per_core = _per_core(
        notes, inputs, "throughput.alerts_per_s", "resources.broker.cpu_mean", "Spark", "Broker"
    )
    top = _highest_held(results)
    if top is not None:
        # The broker's own CPU per alert at the highest rate it held, measured over that
        # step alone: no idle polling, no drain, no cold start in it.
        spark_per_core = 1e3 / top["cpu_ms_per_alert"]["broker"]
        notes.append(
            f"Spark rate per core from max-throughput's highest held step ({top['rate']:g} "
            f"alerts/s): {top['cpu_ms_per_alert']['broker']} broker CPU ms per alert."
        )
    kafka_cores, kafka_per_core = _per_core(
        notes, inputs, "producer.average_mb_per_s", "resources.kafka.cpu_mean", "Kafka", "Kafka"
    )

    # MB -> KB: both decimal, as the producer counts them.
    alert_kb = _ratio(inputs["producer.mb"], inputs["producer.alerts"])
    if alert_kb is None:
        notes.append("Mean alert size not computed: needs producer.mb and producer.alerts.")
    else:
        alert_kb *= 1_000.0

    measured = {
        "alerts_per_s": _rounded(inputs["throughput.alerts_per_s"]),
        "broker_cpu_mean": _rounded(inputs["resources.broker.cpu_mean"]),
        "broker_cores": _rounded(broker_cores),
        "spark_alerts_per_s_per_core": _rounded(spark_per_core),
        "producer_mb_per_s": _rounded(inputs["producer.average_mb_per_s"]),
        "kafka_cpu_mean": _rounded(inputs["resources.kafka.cpu_mean"]),
        "kafka_cores": _rounded(kafka_cores),
        "kafka_mb_per_s_per_core": _rounded(kafka_per_core),
        "mean_alert_kb": _rounded(alert_kb),
        "machine_cores": (results.get("machine") or {}).get("cores"),
        "science_profile": (results.get("science") or {}).get("profile"),
        "science_ms_per_alert": _number(results, "science.ms_per_input_alert"),
    }
    return measured, missing, notes


def _highest_held(results: dict[str, Any]) -> dict[str, Any] | None:
    """Max-throughput's highest held step, when it measured the broker's CPU per alert."""
    held = [
        st
        for st in results.get("steps") or []
        if st.get("held") and ((st.get("cpu_ms_per_alert") or {}).get("broker") or 0) > 0
    ]
    return max(held, key=lambda st: st["rate"], default=None)


def _profiles(
    load: dict[str, Any], alerts_per_s: float, base_ms: float | None, costs: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per science profile: its measured science cost on the load's survey and the cores it needs.

    ``base_ms``: a core's milliseconds per alert for everything but the science;
    ``costs``: :func:`science_costs`.
    """
    out = {}
    surveys = costs.get("surveys") or {}
    for profile, cost in (surveys.get(load.get("survey", "")) or {}).items():
        ms = float(cost.get("ms_per_alert") or 0.0)
        spark = None
        if base_ms is not None:
            spark = math.ceil(alerts_per_s * (base_ms + ms) / 1e3 / UTILISATION)
        out[profile] = {
            "science_ms_per_alert": round(ms, 5),
            "science_cores": math.ceil(alerts_per_s * ms / 1e3 / UTILISATION),
            "spark_cores": spark,
            "modules": dict(cost.get("modules") or {}),
        }
    return out


def _load(
    load: dict[str, Any],
    spark_per_core: float | None,
    kafka_per_core: float | None,
    science_ms: float | None = None,
    costs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What one survey load needs, given the measured rates per core (None when unknown).

    ``science_ms``: the science modules' measured milliseconds per alert read;
    ``costs``: each profile's measured costs (:func:`science_costs`).
    """
    alerts_per_s = load["alerts_per_visit"] / load["visit_interval_s"]
    mb_per_s = alerts_per_s * load["alert_kb"] / 1_000.0
    disk_write = mb_per_s * REPLICATION_FACTOR
    egress = mb_per_s * (FULL_STREAM_CONSUMERS + REPLICATION_FACTOR - 1)
    by_disk = math.ceil(disk_write / BROKER_DISK_WRITE_MB_S)
    by_network = math.ceil(egress / BROKER_NETWORK_MB_S)

    spark_cores = None
    for_latency: dict[str, int] | None = None
    if spark_per_core is not None:
        spark_cores = math.ceil(alerts_per_s / spark_per_core / UTILISATION)
        # Keeping up on average is not enough: a whole visit must be out
        # within the latency budget, so the burst sets a second bound.
        for_latency = {
            f"{budget:g}": math.ceil(load["alerts_per_visit"] / (spark_per_core * budget))
            for budget in LATENCY_BUDGETS_S
        }
    kafka_cores = None
    if kafka_per_core is not None:
        # Replicas are written too: each costs a broker about what the first write does.
        kafka_cores = math.ceil(disk_write / kafka_per_core / UTILISATION)

    # The science alone, from its modules' measured costs: the cores a profile needs
    # before decoding, writing and sending, at the same utilisation.
    science_cores = math.ceil(alerts_per_s * science_ms / 1e3 / UTILISATION) if science_ms else None
    # A core's time per alert for everything but the run's own science.
    base_ms = None
    if spark_per_core is not None:
        base_ms = max(1e3 / spark_per_core - (science_ms or 0.0), 0.0)
    return {
        **load,
        "alerts_per_s": round(alerts_per_s, 3),
        "mb_per_s": round(mb_per_s, 3),
        "science_cores": science_cores,
        "spark_cores": spark_cores,
        "spark_cores_for_latency": for_latency,
        "kafka_cores": kafka_cores,
        "kafka_brokers": max(REPLICATION_FACTOR, by_disk, by_network),
        "kafka_brokers_by": {
            "replication": REPLICATION_FACTOR,
            "disk": by_disk,
            "network": by_network,
        },
        "disk_write_mb_per_s": round(disk_write, 3),
        "egress_mb_per_s": round(egress, 3),
        "profiles": _profiles(load, alerts_per_s, base_ms, costs or {}),
    }


def capacity_model(results: dict[str, Any]) -> dict[str, Any]:
    """The ``capacity`` section of results.json: what each survey load needs.

    Parameters
    ----------
    results : dict
        A results.json dict (its ``capacity`` section, if any, is ignored). Read:
        ``throughput.alerts_per_s``, ``resources.broker.cpu_mean``,
        ``producer.mb_per_s``, ``resources.kafka.cpu_mean``, ``producer.mb``,
        ``producer.alerts`` and ``machine.cores``; any may be absent or null.

    Returns
    -------
    dict
        Plain JSON values:

        ``measured``
            The inputs and the rates per core derived from them:
            ``spark_alerts_per_s_per_core`` = alerts/s ÷ broker cores used, and
            ``kafka_mb_per_s_per_core`` = producer MB/s ÷ Kafka cores used (CPU
            percent ÷ 100, at least ``min_cores``); ``mean_alert_kb``. None when
            an input is missing.
        ``assumptions``
            Name -> ``{"value", "why"}`` for every constant the model uses.
        ``loads``
            One dict per entry of `LOADS`, with its fields and ``alerts_per_s``,
            ``mb_per_s``, ``science_cores`` (ceil(rate × the science profile's
            measured ms per alert ÷ utilisation)), ``spark_cores`` (ceil(rate ÷ rate per core ÷
            utilisation)), ``kafka_cores`` (ceil(MB/s × replication ÷ MB/s per core
            ÷ utilisation)), ``kafka_brokers`` (the largest of the replication
            factor, ceil(MB/s × replication ÷ disk budget) and ceil(egress ÷
            network budget)), ``kafka_brokers_by`` (those three),
            ``disk_write_mb_per_s``, ``egress_mb_per_s``, and ``profiles``:
            per science profile, its measured ``science_ms_per_alert`` on the
            load's survey, ``science_cores`` and ``spark_cores`` (ceil(rate ×
            (1,000 ÷ rate per core − the run's science ms + the profile's ms)
            ÷ 1,000 ÷ utilisation)) and its ``modules``' ms. Cores are None when
            the measured rate they need is missing.
        ``missing``
            Dotted paths of the inputs that were absent, null or not positive.
        ``notes``
            Sentences on what could not be computed and on floors applied.
    """
    measured, missing, notes = _measured(results)
    costs = science_costs()  # read once for every load and the assumptions
    loads = [
        _load(
            load,
            measured["spark_alerts_per_s_per_core"],
            measured["kafka_mb_per_s_per_core"],
            measured["science_ms_per_alert"],
            costs,
        )
        for load in LOADS
    ]
    if measured["science_profile"] is not None:
        notes.append(
            f"science_cores: the {measured['science_profile']} profile's modules alone, "
            f"{measured['science_ms_per_alert']} ms per alert as measured in this run; "
            "spark_cores already include them."
        )
    notes.append(
        "A paced run's CPU includes idle polling, so its rates per core are lower bounds; "
        "a max-throughput run gives tighter ones."
    )
    return {
        "measured": measured,
        "assumptions": _assumptions(costs),
        "loads": loads,
        "missing": missing,
        "notes": notes,
    }
