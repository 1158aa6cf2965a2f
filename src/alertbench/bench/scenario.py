"""Benchmark scenarios: TOML files shipped with alertbench, or written by users.

A scenario says what load the simulator drives (a survey's visits, a rate,
a replay or flat out), how the broker runs, and, for the two sweeping kinds,
what to vary: ``max-throughput`` raises the rate step by step until the
broker's lag grows; ``scaling`` repeats a burst over partitions, producer
processes and Spark cores.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alertbench.bench.faults.spec import FaultSpec, check_time
from alertbench.config import MaxTriggerDelay, MinOffsetsPerTrigger, check_batch_bounds
from alertbench.errors import ConfigError


class Step(BaseModel):
    """One rate step of ``max-throughput``."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(gt=0, description="Alerts per second.")
    seconds: float = Field(gt=0, description="How long the rate is held.")


class Sweep(BaseModel):
    """What ``scaling`` varies, one parameter at a time around the scenario's values."""

    model_config = ConfigDict(extra="forbid")

    partitions: list[int] = Field(default_factory=list)
    producers: list[int] = Field(default_factory=list)
    cores: list[int] = Field(default_factory=list)


class OtherBrokerSpec(BaseModel):
    """A broker alertbench did not build, under test (a scenario's ``[broker]`` table)."""

    model_config = ConfigDict(extra="forbid")

    cmd: str | None = Field(
        None,
        description="Command that starts it, with {servers}, {input_topic} and {client_config} "
        "filled in; none: it already runs, reading input_topic.",
    )
    output_topics: str = Field(description="Its output topics: a regex a whole name matches.")
    group: str | None = Field(None, description="Its consumer group on the input, for its lag.")
    input_topic: str | None = Field(
        None, description="The topic it reads; default: a fresh topic per run segment."
    )
    id_format: Literal["header", "container", "schema-key", "confluent", "json"] = Field(
        "header",
        description="How its output carries the alert: alertbench's header (kept by a "
        "pass-through), an Avro container (ZTF), schemaless Avro with the schema in the key "
        "(Fink), the Confluent wire format (needs id_schemas), JSON (Lasair).",
    )
    id_field: str | None = Field(
        None, description="The id field, dotted if nested; default candid (ZTF), diaSourceId."
    )
    id_schemas: Path | None = Field(
        None, description="confluent id_format: folder of <id>.avsc its output's schemas."
    )
    start_timeout: float = Field(
        120.0, gt=0, description="Seconds it may take to read the warm-up, else: never consumed."
    )
    quiet_s: float = Field(
        10.0,
        gt=0,
        description="Without a group: it has finished once its outputs stop growing this long.",
    )

    @model_validator(mode="after")
    def _needs(self) -> OtherBrokerSpec:
        if self.cmd is None and self.input_topic is None:
            raise ValueError(
                "a broker that already runs (no cmd) reads a topic of its own: name it "
                "(input_topic, or --input-topic)"
            )
        if self.id_format == "confluent" and self.id_schemas is None:
            raise ValueError("id_format confluent needs id_schemas (a folder of <id>.avsc)")
        return self


class Scenario(BaseModel):
    """One benchmark scenario (the fields of its TOML file)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    kind: Literal["stream", "max-throughput", "scaling"] = "stream"
    # The load.
    schedule: Literal["visits", "rate", "replay", "max"] = "visits"
    visit_alerts: int = Field(10_000, ge=1, description="Alerts per visit.")
    visit_interval: float = Field(37.0, gt=0, description="Seconds between visit starts.")
    visits: int | None = Field(None, ge=1, description="Visits to send (visits schedule).")
    rate: float = Field(1000.0, gt=0, description="Alerts/s (rate schedule).")
    replay_speed: float = Field(1.0, gt=0, description="Replay speed-up (replay schedule).")
    alerts: int | None = Field(None, ge=1, description="Alerts to send (rate, replay, max).")
    synthesize: bool = Field(True, description="Unique clones of the source alerts.")
    producers: int = Field(1, ge=1)
    partitions: int = Field(2, ge=1, description="Partitions of the input topic.")
    wire: Literal["ztf", "confluent"] = Field(
        "ztf",
        description="How alerts are sent: an Avro container per alert (ZTF) or the Confluent "
        "wire format with a schema id (Rubin; needs schema_registry).",
    )
    schema_registry: str | None = Field(
        None, description="confluent wire: a folder of <id>.avsc files or a registry URL."
    )
    warmup_alerts: int = Field(
        2000,
        ge=1,
        description="Sent and processed before the measured load, not timed: a fresh JVM "
        "runs its first batches several times slower than a warm one.",
    )
    # The broker.
    fused: bool = Field(True, description="One query per batch (lowest latency) or 3 stages.")
    cores: int = Field(2, ge=1, description="Spark cores: local[N] (ignored with --master).")
    trigger: str = "1 second"
    max_offsets_per_trigger: int | None = None
    min_offsets_per_trigger: MinOffsetsPerTrigger
    max_trigger_delay_s: MaxTriggerDelay
    filters: dict[str, str] = Field(
        default_factory=dict, description="Topic -> filter; the broker's defaults when empty."
    )
    science: Literal["rules", "fink"] | None = Field(
        None,
        description="Science profile of alertbench's broker: rules or fink; default: the "
        "broker's setting (broker.science).",
    )
    # Sweeping kinds.
    steps: list[Step] = Field(default_factory=list)
    held_growth_s: float = Field(
        5.0,
        gt=0,
        description="max-throughput: a step is held if the broker processed 95% of what was "
        "produced and its backlog grew by at most this many seconds of input.",
    )
    settle_s: float = Field(
        30.0,
        ge=0,
        description="max-throughput: seconds at most at the first rate, unmeasured, for the "
        "broker to keep up before the first step (0: none).",
    )
    extend_steps: int = Field(
        8,
        ge=0,
        description="max-throughput: while every step holds, add up to this many more, each "
        "25% faster, so the highest held rate is found, not capped by the last step.",
    )
    ceiling: bool = Field(
        False,
        description="max-throughput: run the same steps against a null broker (consume and "
        "commit only) in the same run: the harness's own ceiling on this machine.",
    )
    sweep: Sweep = Field(default_factory=Sweep)
    drain_timeout: float = Field(300.0, gt=0, description="Seconds to wait for the broker.")
    broker: OtherBrokerSpec | None = Field(
        None, description="A broker alertbench did not build, measured instead of its own."
    )
    kafka_nodes: int = Field(
        1,
        ge=1,
        le=5,
        description="Nodes of the embedded Kafka (3 or more: replication 3, min ISR 2, as "
        "Rubin's alert topic runs).",
    )
    faults: list[FaultSpec] = Field(
        default_factory=list,
        description="Faults injected during the measured load ([[faults]]: name, visit, "
        "after_s, heal_after_s and the kind's own keys).",
    )
    fail_on_data_loss: bool | None = Field(
        None,
        description="alertbench's broker stops when input records aged out of retention "
        "before it read them (true) or skips them (false); default: broker.fail_on_data_loss. "
        "Either way they are counted exactly.",
    )
    allow_aged_out: bool = Field(
        False,
        description="Input records that aged out of retention before the broker read them "
        "are counted without failing the run (else they fail it).",
    )
    recovery_visits: int = Field(
        2,
        ge=1,
        description="Visits after a fault's heal within which the broker must be back (two "
        "visits in a row within 1.5x the baseline p99); a broker that restarts takes a "
        "Spark start, 20-35 s on 2 cores.",
    )
    security: Literal["plaintext", "sasl_plaintext", "ssl", "sasl_ssl"] = Field(
        "plaintext",
        description="Security of the embedded Kafka: every client (simulator, broker, timing) "
        "then authenticates and, with ssl, encrypts.",
    )

    @model_validator(mode="after")
    def _kind_needs(self) -> Scenario:
        if self.kind == "max-throughput" and not self.steps:
            raise ValueError("a max-throughput scenario needs [[steps]] (rate, seconds)")
        if self.ceiling and self.kind != "max-throughput":
            raise ValueError("ceiling is max-throughput's: the null broker runs its steps")
        if self.kind == "scaling" and not (
            self.sweep.partitions or self.sweep.producers or self.sweep.cores
        ):
            raise ValueError("a scaling scenario needs [sweep] partitions, producers or cores")
        if self.kind == "stream" and self.schedule == "visits" and self.visits is None:
            raise ValueError("a visits schedule needs visits = N")
        check_batch_bounds(self.min_offsets_per_trigger, self.max_offsets_per_trigger)
        if self.kind == "max-throughput" and self.broker and not self.broker.group:
            raise ValueError(
                "max-throughput measures the broker's lag at each step: name the other "
                "broker's consumer group (group, or --broker-group)"
            )
        if self.wire == "confluent" and not self.schema_registry:
            raise ValueError("the confluent wire needs schema_registry (folder or URL)")
        if self.faults and self.kind == "scaling":
            raise ValueError("faults strike one broker's run: a stream or max-throughput scenario")
        visits = self.visits if self.schedule == "visits" and self.kind == "stream" else None
        for fault in self.faults:
            check_time(fault, visits=visits, interval=self.visit_interval, load_s=self.load_s)
        return self

    @property
    def load_s(self) -> float | None:
        """The measured load's length in seconds, where the scenario fixes it."""
        if self.kind == "max-throughput":
            return sum(s.seconds for s in self.steps)
        if self.schedule == "visits" and self.visits:
            return self.visits * self.visit_interval
        if self.schedule == "rate" and self.alerts:
            return self.alerts / self.rate
        return None


def builtin_names() -> list[str]:
    """Names of the scenarios shipped with alertbench."""
    folder = resources.files("alertbench.bench") / "scenarios"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_scenario(
    name_or_path: str,
    *,
    broker: dict[str, object] | None = None,
    extra_faults: list[dict[str, object]] | None = None,
    no_faults: bool = False,
    **overrides: object,
) -> Scenario:
    """A shipped scenario by name, or a TOML file by path, with ``overrides`` applied.

    ``broker`` overrides keys of the ``[broker]`` table (the command line's
    broker flags); ``no_faults`` drops its ``[[faults]]`` (the same load without
    them, to compare against) and ``extra_faults`` are added. Relative paths
    in a file are taken from the file's folder.

    Raises
    ------
    ConfigError
        Naming the file and the field, for an unknown scenario or a bad field.
    """
    path = Path(name_or_path)
    base: Path | None = None
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"scenario file {path} not found.")
        text, where, base = path.read_text(), str(path), path.resolve().parent
    else:
        res = resources.files("alertbench.bench") / "scenarios" / f"{name_or_path}.toml"
        if not res.is_file():
            raise ConfigError(
                f"unknown scenario {name_or_path!r}: the shipped ones are "
                f"{', '.join(builtin_names())}, or give a path to a .toml file."
            )
        text, where = res.read_text(), f"scenario {name_or_path}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    if base is not None:
        _absolute(data, base)
    data.update({k: v for k, v in overrides.items() if v is not None})
    if no_faults:
        data.pop("faults", None)
    if extra_faults:
        data["faults"] = [*(data.get("faults") or []), *extra_faults]
    flags = {k: v for k, v in (broker or {}).items() if v is not None}
    if flags:
        table = data.get("broker")
        data["broker"] = {**(table if isinstance(table, dict) else {}), **flags}
    try:
        return Scenario(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'scenario'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None


def _absolute(data: dict[str, object], base: Path) -> None:
    """Make the file's relative folders absolute, from ``base`` (the file's folder)."""
    registry = data.get("schema_registry")
    if isinstance(registry, str) and not registry.startswith(("http://", "https://")):
        data["schema_registry"] = str(base / registry)
    table = data.get("broker")
    if isinstance(table, dict) and isinstance(table.get("id_schemas"), str):
        table["id_schemas"] = str(base / table["id_schemas"])


def scenario_toml(scenario: Scenario) -> str:
    """``scenario`` as a TOML file that :func:`load_scenario` reads back into the same scenario.

    Every field is written, defaults included, so that a run's ``scenario.toml``
    says everything it ran with, whatever the defaults become later.
    """
    import tomli_w

    data = scenario.model_dump(mode="json", exclude_none=True)
    head = "# The scenario of a run, as it ran: alertbench bench run THIS_FILE repeats it.\n"
    return head + tomli_w.dumps(data)
