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
    # Sweeping kinds.
    steps: list[Step] = Field(default_factory=list)
    held_lag_s: float = Field(
        20.0,
        gt=0,
        description="max-throughput: a step is held if its final lag is below "
        "this many seconds of input.",
    )
    sweep: Sweep = Field(default_factory=Sweep)
    drain_timeout: float = Field(300.0, gt=0, description="Seconds to wait for the broker.")
    security: Literal["plaintext", "sasl_plaintext", "ssl", "sasl_ssl"] = Field(
        "plaintext",
        description="Security of the embedded Kafka: every client (simulator, broker, timing) "
        "then authenticates and, with ssl, encrypts.",
    )

    @model_validator(mode="after")
    def _kind_needs(self) -> Scenario:
        if self.kind == "max-throughput" and not self.steps:
            raise ValueError("a max-throughput scenario needs [[steps]] (rate, seconds)")
        if self.kind == "scaling" and not (
            self.sweep.partitions or self.sweep.producers or self.sweep.cores
        ):
            raise ValueError("a scaling scenario needs [sweep] partitions, producers or cores")
        if self.kind == "stream" and self.schedule == "visits" and self.visits is None:
            raise ValueError("a visits schedule needs visits = N")
        check_batch_bounds(self.min_offsets_per_trigger, self.max_offsets_per_trigger)
        return self


def builtin_names() -> list[str]:
    """Names of the scenarios shipped with alertbench."""
    folder = resources.files("alertbench.bench") / "scenarios"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_scenario(name_or_path: str, **overrides: object) -> Scenario:
    """A shipped scenario by name, or a TOML file by path, with ``overrides`` applied.

    Raises
    ------
    ConfigError
        Naming the file and the field, for an unknown scenario or a bad field.
    """
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"scenario file {path} not found.")
        text, where = path.read_text(), str(path)
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
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Scenario(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'scenario'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None
