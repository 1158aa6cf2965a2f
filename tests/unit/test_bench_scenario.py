"""Scenarios, segments, the broker's config file and progress parsing: pure logic."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from alertbench.bench.brokers import to_toml
from alertbench.bench.sampler import processed_offsets
from alertbench.bench.scenario import builtin_names, load_scenario
from alertbench.bench.session import segments_of
from alertbench.bench.stats import share_within, summary
from alertbench.errors import ConfigError


def test_every_shipped_scenario_loads() -> None:
    names = builtin_names()
    assert {"smoke", "ztf-night", "lsst-nominal", "lsst-peak", "max-throughput", "scaling"} <= set(
        names
    )
    for name in names:
        assert load_scenario(name).name == name


def test_lsst_nominal_is_rubins_cadence() -> None:
    s = load_scenario("lsst-nominal")
    assert (s.schedule, s.visit_alerts, s.visit_interval) == ("visits", 10_000, 37.0)
    peak = load_scenario("lsst-peak")
    assert (peak.visit_alerts, peak.visits) == (40_000, 1)
    # The broker takes each visit in one micro-batch.
    assert s.min_offsets_per_trigger == s.visit_alerts


def test_overrides_apply_and_none_leaves_the_file_value() -> None:
    assert load_scenario("lsst-nominal", visits=2).visits == 2
    assert load_scenario("lsst-nominal", visits=None).visits == 5


def test_unknown_scenario_lists_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown scenario 'nope'.*smoke"):
        load_scenario("nope")


def test_bad_field_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nvisits = 3\nproducers = 0\n')
    with pytest.raises(ConfigError, match=r"mine\.toml: producers: .*greater than or equal to 1"):
        load_scenario(str(path))


def test_batch_bounds_that_cross_are_refused_in_the_scenario(tmp_path: Path) -> None:
    # Refused when the scenario loads, not later in the broker's log.
    path = tmp_path / "cross.toml"
    path.write_text(
        'name = "cross"\nvisits = 1\nmin_offsets_per_trigger = 500\nmax_offsets_per_trigger = 100\n'
    )
    with pytest.raises(ConfigError, match=r"cross\.toml: .*min_offsets_per_trigger \(500\)"):
        load_scenario(str(path))
    assert load_scenario("lsst-nominal").max_trigger_delay_s == 10.0


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('name = "typo"\nvisits = 1\nvisit_size = 10\n')
    with pytest.raises(ConfigError, match="visit_size"):
        load_scenario(str(path))


def test_kinds_need_their_sections(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('name = "m"\nkind = "max-throughput"\n')
    with pytest.raises(ConfigError, match="steps"):
        load_scenario(str(path))


def test_invalid_toml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_scenario(str(path))


def test_scaling_varies_one_parameter_at_a_time_without_repeats() -> None:
    segs = segments_of(load_scenario("scaling"))
    combos = [(s.partitions, s.producers, s.cores) for s in segs]
    assert combos[0] == (2, 1, 2)  # the base first
    assert sorted(combos) == sorted({(1, 1, 2), (2, 1, 2), (4, 1, 2), (2, 2, 2), (2, 1, 1)})
    assert len({s.tag for s in segs}) == len(segs)


def test_other_kinds_have_one_segment() -> None:
    assert [s.tag for s in segments_of(load_scenario("smoke"))] == ["main"]


def test_broker_config_round_trips_through_toml() -> None:
    config = {
        "run_dir": "/runs/a b",
        "kafka": {"bootstrap_servers": "127.0.0.1:9092"},
        "broker": {
            "topics": ["t-1"],
            "filters": {"ab-bright": 'magpsf <= 17.5 AND name = "x\\y"'},
            "distribution_partitions": 2,
            "fused": True,
        },
    }
    assert tomllib.loads(to_toml(config)) == config


def test_processed_offsets_takes_the_latest_end_of_the_topic(tmp_path: Path) -> None:
    progress = tmp_path / "progress.jsonl"
    lines = [
        {"query": "fused", "batch": 0, "sources": [{"end": json.dumps({"t": {"0": 5, "1": 7}})}]},
        {"query": "fused", "batch": 1, "sources": [{"end": {"t": {"0": 10, "1": 12}}}]},
        {"query": "fused", "batch": 2, "sources": [{"end": {"other": {"0": 99}}}]},
    ]
    progress.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json")
    assert processed_offsets(progress, "t") == 22
    assert processed_offsets(tmp_path / "absent.jsonl", "t") == 0


def test_summary_percentiles() -> None:
    s = summary(range(1, 101))
    assert s == {"count": 100, "mean": 50.5, "p50": 50.5, "p95": 95.05, "p99": 99.01, "max": 100.0}
    assert summary([]) is None
    assert share_within([1, 2, 61, 70], 60) == 0.5
    assert share_within([], 60) is None


def test_another_broker_from_the_file_and_the_flags(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text(
        'name = "other"\nvisits = 1\n[broker]\ncmd = "mybroker {servers}"\n'
        'output_topics = "out-.*"\nid_format = "confluent"\nid_schemas = "schemas"\n'
    )
    s = load_scenario(str(path))
    assert s.broker is not None
    assert s.broker.cmd == "mybroker {servers}"
    assert s.broker.id_schemas == tmp_path / "schemas"  # from the file's folder
    assert s.broker.group is None
    # Flags override the table's keys; the others stay.
    s = load_scenario(str(path), broker={"group": "g", "output_topics": "o", "cmd": None})
    assert s.broker is not None
    assert s.broker.cmd == "mybroker {servers}"
    assert (s.broker.group, s.broker.output_topics) == ("g", "o")
    # Flags alone make the table.
    s = load_scenario("smoke", broker={"output_topics": "o", "input_topic": "in"})
    assert s.broker is not None
    assert (s.broker.cmd, s.broker.input_topic, s.broker.id_format) == (None, "in", "header")
    assert load_scenario("smoke", broker={"cmd": None}).broker is None


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ('output_topics = "o"\n', "already runs .* name it"),
        ('cmd = "b"\n', r"broker\.output_topics: Field required"),
        ('cmd = "b"\noutput_topics = "o"\nid_format = "confluent"\n', "needs id_schemas"),
        ('cmd = "b"\noutput_topics = "o"\nid_format = "avro"\n', "id_format"),
    ],
)
def test_another_broker_that_cannot_be_measured_is_refused(
    tmp_path: Path, table: str, why: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "bad"\nvisits = 1\n[broker]\n{table}')
    with pytest.raises(ConfigError, match=rf"bad\.toml: .*{why}"):
        load_scenario(str(path))


def test_max_throughput_of_another_broker_needs_its_group() -> None:
    with pytest.raises(ConfigError, match="consumer group"):
        load_scenario("max-throughput", broker={"cmd": "b", "output_topics": "o"})
    s = load_scenario("max-throughput", broker={"cmd": "b", "output_topics": "o", "group": "g"})
    assert s.broker is not None


def test_the_confluent_wire_needs_its_schema_ids(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="schema_registry"):
        load_scenario("smoke", wire="confluent")
    path = tmp_path / "rubin.toml"
    path.write_text('name = "r"\nvisits = 1\nwire = "confluent"\nschema_registry = "ids"\n')
    assert load_scenario(str(path)).schema_registry == str(tmp_path / "ids")


def test_max_throughput_runs_the_null_broker_after_its_own_on_the_same_steps() -> None:
    s = load_scenario("max-throughput")
    assert (s.ceiling, s.held_growth_s, s.settle_s) == (True, 5.0, 30.0)
    segs = segments_of(s)
    assert [(g.tag, g.params) for g in segs] == [("main", {}), ("null", {"broker": "null"})]
    assert {(g.partitions, g.producers, g.cores) for g in segs} == {(4, 2, 2)}
    assert [g.tag for g in segments_of(load_scenario("max-throughput", ceiling=False))] == ["main"]


def test_a_ceiling_belongs_to_max_throughput_and_the_old_held_rule_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('name = "c"\nvisits = 1\nceiling = true\n')
    with pytest.raises(ConfigError, match="ceiling is max-throughput's"):
        load_scenario(str(path))
    path.write_text('name = "c"\nkind = "max-throughput"\nsteps = [{rate = 1, seconds = 1}]\n'
                    "held_lag_s = 20\n")  # fmt: skip
    with pytest.raises(ConfigError, match="held_lag_s"):
        load_scenario(str(path))


@pytest.mark.parametrize("name", builtin_names())
def test_a_runs_scenario_toml_loads_back_as_the_same_scenario(name: str, tmp_path: Path) -> None:
    from alertbench.bench.scenario import scenario_toml

    extra = [{"name": "kafka-pause", "visit": 1, "after_s": 1}] if name == "smoke" else None
    chosen = load_scenario(name, extra_faults=extra)
    path = tmp_path / "scenario.toml"
    path.write_text(scenario_toml(chosen))
    again = load_scenario(str(path))
    assert again == chosen
    assert scenario_toml(again) == path.read_text()
    # Every field is written, defaults too: what the run ran with, whatever defaults become.
    assert set(tomllib.loads(path.read_text())) >= {"name", "kind", "partitions", "faults"}
