"""Configuration layering: defaults < alertbench.toml < ALERTBENCH_* env < flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alertbench.config import Flags, load_settings
from alertbench.errors import ConfigError

pytestmark = pytest.mark.usefixtures("clean_env")


def test_defaults() -> None:
    s = load_settings()
    assert s.kafka.version == "4.3.1"
    assert s.kafka.zookeeper_version == "3.9.2"
    assert s.kafka.mode == "kraft"
    assert s.kafka.nodes == 1
    assert s.kafka.heap == "512m"
    assert s.kafka.maven_repository == "https://repo1.maven.org/maven2"
    assert s.run_dir == Path.cwd() / ".alertbench"
    assert s.kafka_state_dir == Path.cwd() / ".alertbench" / "kafka"
    assert s.alerts is None


def test_toml_in_working_directory_overrides_defaults(tmp_path: Path) -> None:
    (tmp_path / "alertbench.toml").write_text(
        'run_dir = "from-toml"\n[kafka]\nheap = "1g"\nnodes = 3\n'
    )
    s = load_settings()
    assert s.run_dir == Path.cwd() / "from-toml"
    assert s.kafka.heap == "1g"
    assert s.kafka.nodes == 3
    # Keys the file does not set keep their defaults.
    assert s.kafka.version == "4.3.1"


def test_toml_named_by_alertbench_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "conf" / "bench.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text('[kafka]\nversion = "3.9.2"\nmode = "zookeeper"\n')
    # A file in the working directory must be ignored when ALERTBENCH_CONFIG is set.
    (tmp_path / "alertbench.toml").write_text('[kafka]\nversion = "4.0.0"\n')
    monkeypatch.setenv("ALERTBENCH_CONFIG", str(elsewhere))
    s = load_settings()
    assert s.kafka.version == "3.9.2"
    assert s.kafka.mode == "zookeeper"


def test_env_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "alertbench.toml").write_text('run_dir = "from-toml"\n[kafka]\nheap = "1g"\n')
    monkeypatch.setenv("ALERTBENCH_KAFKA__HEAP", "2g")
    monkeypatch.setenv("ALERTBENCH_RUN_DIR", "from-env")
    s = load_settings()
    assert s.kafka.heap == "2g"
    assert s.run_dir == Path.cwd() / "from-env"


def test_env_nested_int_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTBENCH_KAFKA__NODES", "4")
    assert load_settings().kafka.nodes == 4


def test_flags_override_env_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "alertbench.toml").write_text('[kafka]\nheap = "1g"\nnodes = 3\n')
    monkeypatch.setenv("ALERTBENCH_KAFKA__HEAP", "2g")
    s = load_settings(kafka={"heap": "3g"})
    assert s.kafka.heap == "3g"
    # The flag layer is merged into the section, not replacing it.
    assert s.kafka.nodes == 3


def test_none_flag_does_not_override_lower_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "alertbench.toml").write_text('run_dir = "from-toml"\n[kafka]\nnodes = 3\n')
    monkeypatch.setenv("ALERTBENCH_KAFKA__HEAP", "2g")
    s = load_settings(run_dir=None, kafka={"heap": None, "nodes": None, "version": "3.9.2"})
    assert s.run_dir == Path.cwd() / "from-toml"
    assert s.kafka.heap == "2g"
    assert s.kafka.nodes == 3
    assert s.kafka.version == "3.9.2"


def test_bad_value_in_toml_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "alertbench.toml").write_text("[kafka]\nnodes = 0\n")
    with pytest.raises(ConfigError, match=r"kafka\.nodes") as info:
        load_settings()
    assert "greater than or equal to 1" in str(info.value)
    assert "alertbench.toml" in str(info.value)


def test_string_for_int_in_toml_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "alertbench.toml").write_text('[kafka]\nnodes = "three"\n')
    with pytest.raises(ConfigError, match=r"kafka\.nodes: Input should be a valid integer"):
        load_settings()


def test_bad_value_in_env_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTBENCH_KAFKA__BASE_PORT", "70000")
    with pytest.raises(ConfigError, match=r"kafka\.base_port"):
        load_settings()


def test_bad_flag_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.mode"):
        load_settings(kafka={"mode": "sharded"})


def test_unknown_key_in_toml_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "alertbench.toml").write_text("bogus = 1\n")
    with pytest.raises(ConfigError, match=r"bogus: Extra inputs are not permitted"):
        load_settings()


def test_invalid_toml_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\nnodes = 3\n")
    monkeypatch.setenv("ALERTBENCH_CONFIG", str(broken))
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"cannot read configuration file {broken}: ")
    assert "line 1" in message


def test_flags_merge_global_and_command_flags() -> None:
    flags = Flags(run_dir=Path("global-run"), kafka={"version": "3.9.2", "heap": "1g"})
    s = flags.settings(kafka={"heap": "2g", "nodes": 3})
    assert s.run_dir == Path.cwd() / "global-run"
    assert s.kafka.version == "3.9.2"  # from the global nested flags
    assert s.kafka.heap == "2g"  # the command's flag wins
    assert s.kafka.nodes == 3
    # The global flags are not modified by a command's settings() call.
    assert flags.flags == {
        "run_dir": Path("global-run"),
        "kafka": {"version": "3.9.2", "heap": "1g"},
    }


def test_flags_command_dict_on_top_of_no_global_section() -> None:
    s = Flags(cache_dir=Path("c")).settings(kafka={"mode": "zookeeper", "version": None})
    assert s.cache_dir == Path.cwd() / "c"
    assert s.kafka.mode == "zookeeper"
    assert s.kafka.version == "4.3.1"


def test_flags_command_none_keeps_global_flag() -> None:
    # None means "not given" (load_settings docstring), so a command that does not
    # set a flag must let the global one of the same name show through.
    s = Flags(run_dir=Path("global-run")).settings(run_dir=None)
    assert s.run_dir == Path.cwd() / "global-run"


def test_flags_command_nested_none_keeps_global_nested_flag() -> None:
    s = Flags(kafka={"heap": "5g"}).settings(kafka={"heap": None})
    assert s.kafka.heap == "5g"


def test_batch_bounds_reach_sparks_kafka_source() -> None:
    from alertbench.broker.stream.stream2raw import limit_options

    assert limit_options() == {}
    assert limit_options(max_offsets=40) == {"maxOffsetsPerTrigger": "40"}
    assert limit_options(None, 10_000, 2.5) == {
        "minOffsetsPerTrigger": "10000",
        "maxTriggerDelay": "2500ms",
    }
    s = load_settings(broker={"min_offsets_per_trigger": 10_000})
    assert s.broker.max_trigger_delay_s == 10.0


def test_batch_bounds_that_cross_are_refused() -> None:
    with pytest.raises(ConfigError, match="min_offsets_per_trigger"):
        load_settings(broker={"min_offsets_per_trigger": 500, "max_offsets_per_trigger": 100})


def test_paths_in_a_toml_file_are_relative_to_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "alertbench.toml").write_text(
        'run_dir = "state"\nalerts = "nights/20231018"\ninventory = "../hosts.toml"\n'
        '[broker]\ncatalogue = "cat.csv"\nschema_registry = "schemas"\noutput = "out"\n'
        '[kafka]\nhome = "~/kafka"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("ALERTBENCH_CONFIG", "../conf/alertbench.toml")
    s = load_settings()
    assert s.run_dir == conf / "state"
    assert s.alerts == conf / "nights" / "20231018"
    assert s.inventory == tmp_path / "hosts.toml"
    assert s.broker.catalogue == conf / "cat.csv"
    assert s.broker.schema_registry == str(conf / "schemas")
    assert s.kafka.home == Path.home() / "kafka"
    # The broker's output stays relative: it lives under the run dir, wherever that is.
    assert s.broker.output == Path("out")


def test_paths_from_env_and_flags_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTBENCH_ALERTS", "alerts")
    monkeypatch.setenv("ALERTBENCH_BROKER__CATALOGUE", "sub/cat.parquet")
    monkeypatch.setenv("ALERTBENCH_BROKER__SCHEMA_REGISTRY", "http://registry:8081")
    s = load_settings(run_dir=Path("runs/../run"), java_home="jdk")
    assert s.alerts == tmp_path / "alerts"
    assert s.broker.catalogue == tmp_path / "sub" / "cat.parquet"
    assert s.run_dir == tmp_path / "run"
    assert s.java_home == tmp_path / "jdk"
    assert s.broker.schema_registry == "http://registry:8081"  # a URL is not a path
    assert all(p.is_absolute() for p in (s.cache_dir, s.data_dir, s.kafka_state_dir))


def test_driver_memory_defaults_to_1g_unless_set() -> None:
    assert load_settings().broker.driver_memory == "1g"
    assert load_settings(broker={"driver_memory": "3g"}).broker.driver_memory == "3g"


@pytest.mark.parametrize(
    ("env", "value", "named", "example"),
    [
        ("KAFKA__HEAP", "banana", r"kafka\.heap", "512m"),
        ("KAFKA__HEAP", "512 m", r"kafka\.heap", "512m"),
        ("KAFKA__ZOOKEEPER_HEAP", "0m", r"kafka\.zookeeper_heap", "512m"),
        ("BROKER__DRIVER_MEMORY", "lots", r"broker\.driver_memory", "1g"),
        ("BROKER__EXECUTOR_MEMORY", "2 GB", r"broker\.executor_memory", "1g"),
        ("KAFKA__VERSION", "4.3", r"kafka\.version", "4.3.1"),
        ("BROKER__SPARK_VERSION", "latest", r"broker\.spark_version", "4.3.1"),
        ("KAFKA__ZOOKEEPER_VERSION", "4.0.0", "zookeeper_version 4.0.0", "3.9.2"),
        ("KAFKA__VERSION", "3.2.3", "version 3.2.3 predates", "4.3.1"),
        ("BROKER__METRICS_PORT", "65536", r"broker\.metrics_port", "65535"),
    ],
)
def test_settings_a_jvm_cannot_start_with_are_refused_naming_them(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str, example: str
) -> None:
    monkeypatch.setenv(f"ALERTBENCH_{env}", value)
    with pytest.raises(ConfigError, match=named) as caught:
        load_settings()
    assert example in str(caught.value)


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("KAFKA__HEAP", "2G"),
        ("KAFKA__HEAP", "1073741824"),
        ("BROKER__DRIVER_MEMORY", "1536mb"),
        ("KAFKA__VERSION", "3.9.2"),
    ],
)
def test_settings_a_jvm_takes_pass(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.setenv(f"ALERTBENCH_{env}", value)
    section, name = env.lower().split("__")
    assert getattr(getattr(load_settings(), section), name) == value


def test_kafka_up_with_a_heap_java_cannot_take_is_refused_before_java_starts(
    tmp_path: Path,
) -> None:
    # As the issue typed it: no "Could not create the Java Virtual Machine", and no
    # node recorded, since nothing started.
    run = Path(__file__).resolve().parents[2] / "run"
    env = {**os.environ, "ALERTBENCH_KAFKA__HEAP": "banana", "COLUMNS": "200", "NO_COLOR": "1"}
    if sys.prefix != sys.base_prefix:  # ./run uses the environment these tests run in
        env["ALERTBENCH_VENV"] = sys.prefix
    done = subprocess.run(
        [str(run), "kafka", "up"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    for named in ("kafka.heap", "banana", "512m"):
        assert named in said, said
    assert "Java Virtual Machine" not in said
    assert not (tmp_path / ".alertbench" / "kafka" / "state.json").exists()
