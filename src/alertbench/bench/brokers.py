"""The broker under test, as the run loop drives it: alertbench's own, or any other.

The runner knows a broker by one small interface (:class:`BrokerUnderTest`):
start it on a segment's input topic, ask how far it has read, wait for it to
read (failing when it dies or never reads), name its output topics and how
to read an alert's id from them, list its processes for the resource
sampler, and stop it. :class:`OwnBroker` is
alertbench's Spark broker, started with a config file of the run's own;
:class:`OtherBroker` is a command alertbench did not build (or one already
running), seen from outside through Kafka (:mod:`alertbench.bench.external`);
:class:`NullBroker` reads and commits only, max-throughput's ceiling.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from alertbench.bench.external import (
    BrokerUnderTestError,
    ExternalBroker,
    group_partition_offsets,
)
from alertbench.bench.sampler import partition_offsets
from alertbench.errors import ClusterError
from alertbench.procs import LocalTransport, ProcessRecord, stop_processes

if TYPE_CHECKING:
    from alertbench.bench.scenario import OtherBrokerSpec
    from alertbench.bench.session import Bench, Segment

# [broker] settings a bench run hands on to the broker it starts; the input topic, wire
# format, trigger, filters and outputs are the run's own.
INHERITED_BROKER_SETTINGS = {
    "science",
    "modules",
    "cuts",
    "catalogue",
    "check_crcs",
    "fail_on_data_loss",
    "kafka_reader",
    "parquet_compression",
    "driver_memory",
    "arrow_batch_rows",
    "executor_memory",
    "driver_host",
    "shuffle_partitions",
    "distribution_partitions",
    "distribution_key",
    "distribution_retention_ms",
    "spark_version",
}


@dataclass
class Wiring:
    """Where one segment's broker reads and writes."""

    topic: str
    partitions: int
    prefix: str  # of the segment's topic names
    dir: Path  # the segment's working folder
    log: Path  # where the broker's output goes


class BrokerUnderTest(Protocol):
    """What the run loop needs of a broker."""

    kind: str  # "alertbench" or "external", for results.json

    def start(self, bench: Bench, seg: Segment, wiring: Wiring) -> None:
        """Start it on ``wiring.topic`` (or note that it already runs)."""

    @property
    def group(self) -> str | None:
        """Its consumer group, or the name its progress is shown under (None: not known)."""

    def processed(self) -> int | None:
        """Offsets of the input topic it has read (summed), or None if it cannot be known."""

    def read_offsets(self) -> dict[int, int] | None:
        """The next offset it will read per input partition, or None if it cannot be known."""

    def wait(self, target: int, timeout: float, *, fail: bool = True) -> bool:
        """Wait until it has read ``target`` offsets of its input; False if it timed out.

        Raises
        ------
        BrokerUnderTestError
            If a process alertbench started for it exits, or (with ``fail``) it
            never consumes or stops short of ``target``.
        """

    def outputs(self) -> dict[str, str | None]:
        """Its output topics now, each with the filter that feeds it (None: not known)."""

    def timing_args(self) -> list[str]:
        """Arguments of the timing consumer that say which topics to time and how to read ids."""

    def procs(self) -> list[ProcessRecord]:
        """Root processes alertbench started for it (each counts with its descendants)."""

    def stop(self) -> None:
        """Stop whatever alertbench started for it, by PID."""

    def expected(self) -> Path | None:
        """A CSV of (topic, alert_id) it should have written, when that can be known."""


def _tail(log: Path, lines: int = 15) -> str:
    return LocalTransport().tail(log, lines)


@dataclass
class OwnBroker:
    """alertbench's Spark broker, with the scenario's set-up and its filters as outputs."""

    kind: str = field(default="alertbench", init=False)
    bench: Bench | None = None
    wiring: Wiring | None = None
    distribution: dict[str, str] = field(default_factory=dict)
    proc: ProcessRecord | None = None

    def _wired(self) -> Wiring:
        if self.wiring is None:
            raise RuntimeError("the broker under test has not been started")
        return self.wiring

    @property
    def out(self) -> Path:
        """The broker's output folder (Parquet, progress, commits)."""
        return self._wired().dir / "broker"

    def start(self, bench: Bench, seg: Segment, wiring: Wiring) -> None:  # noqa: D102
        self.bench, self.wiring = bench, wiring
        self.distribution = {f"{wiring.prefix}-{n}": e for n, e in bench.filters.items()}
        s = bench.scenario
        # The user's broker settings that do not depend on the run (paths are absolute
        # already), then what the scenario and this segment decide.
        inherited = bench.settings.broker.model_dump(
            mode="json", include=INHERITED_BROKER_SETTINGS, exclude_none=True
        )
        broker: dict[str, Any] = {
            **inherited,
            "master": bench.master or f"local[{seg.cores}]",
            "topics": [wiring.topic],
            "trigger": s.trigger,
            "output": "broker",
            "filters": self.distribution,
            "format": s.wire,
        }
        if s.schema_registry:
            broker["schema_registry"] = s.schema_registry
        if s.science is not None:  # the scenario's profile, whatever modules were configured
            broker["science"] = s.science
            broker.pop("modules", None)
        if s.fail_on_data_loss is not None:
            broker["fail_on_data_loss"] = s.fail_on_data_loss
        if bench.endpoints is not None:  # its metrics on a free port, listed once it serves
            broker["metrics_port"] = 0
        if s.max_offsets_per_trigger:
            broker["max_offsets_per_trigger"] = s.max_offsets_per_trigger
        if s.min_offsets_per_trigger:
            broker["min_offsets_per_trigger"] = s.min_offsets_per_trigger
            broker["max_trigger_delay_s"] = s.max_trigger_delay_s
        config: dict[str, Any] = {
            "run_dir": str(wiring.dir),
            "cache_dir": str(bench.settings.cache_dir),
            "kafka": {"bootstrap_servers": bench.servers.servers, **bench.client_file()},
            "broker": broker,
        }
        if bench.settings.java_home:
            config["java_home"] = str(bench.settings.java_home)
        path = wiring.dir / "alertbench.toml"
        LocalTransport().write_text(path, to_toml(config))
        argv = [sys.executable, "-m", "alertbench", "broker", "run"]
        argv += ["--fused"] if s.fused else ["--stages", "stream2raw,raw2science,distribute"]
        # The environment outranks the config file: drop what would override the run's own.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ALERTBENCH_BROKER__", "ALERTBENCH_KAFKA__"))
            and k not in ("ALERTBENCH_RUN_DIR", "ALERTBENCH_CACHE_DIR")
        }
        env["ALERTBENCH_CONFIG"] = str(path)
        self.proc = LocalTransport().spawn(argv, log=wiring.log, cwd=wiring.dir, env=env)

    def processed(self) -> int:  # noqa: D102
        return sum(self.read_offsets().values())

    def read_offsets(self) -> dict[int, int]:  # noqa: D102
        return partition_offsets(self.out / "progress.jsonl", self._wired().topic)

    @property
    def group(self) -> str | None:
        """Spark keeps its offsets in its checkpoint: it is shown under its topics' prefix."""
        return self.wiring.prefix if self.wiring is not None else None

    def wait(self, target: int, timeout: float, *, fail: bool = True) -> bool:  # noqa: D102
        log = self._wired().log
        deadline = time.monotonic() + timeout
        local = LocalTransport()
        while time.monotonic() < deadline:
            if self.processed() >= target:
                return True
            if self.proc is not None and not local.is_running(self.proc):
                raise BrokerUnderTestError(
                    f"the broker stopped before processing {target} alerts; its log "
                    f"{log} ends with:\n{_tail(log)}"
                )
            time.sleep(0.25)
        if fail:
            raise BrokerUnderTestError(
                f"the broker processed {self.processed()} of {target} alerts in "
                f"{timeout:.0f} s; see {log}"
            )
        return False

    def outputs(self) -> dict[str, str | None]:  # noqa: D102
        return dict(self.distribution)

    def timing_args(self) -> list[str]:  # noqa: D102
        return ["--topics", ",".join(self.distribution)]

    def procs(self) -> list[ProcessRecord]:  # noqa: D102
        return [self.proc] if self.proc else []

    def stop(self) -> None:
        """Ctrl-C the broker (it stops its queries gracefully), then make sure it is gone."""
        if self.proc is None:
            return
        local = LocalTransport()
        local.send_signal(self.proc, signal.SIGINT)
        deadline = time.monotonic() + 60
        while local.is_running(self.proc) and time.monotonic() < deadline:
            time.sleep(0.2)
        stop_processes(local, [self.proc], grace=10)

    def expected(self) -> Path:
        """Run the filters over the science Parquet (in a Spark process of its own)."""
        out = self._wired().dir / "expected.csv"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "alertbench.bench.expected",
                "--science",
                str(self.out / "science"),
                "--filters",
                json.dumps(self.distribution),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            raise ClusterError(
                f"evaluating the filters over {self.out / 'science'} failed:\n{proc.stderr[-2000:]}"
            )
        return out


@dataclass
class OtherBroker:
    """A broker alertbench did not build: a command it starts, or one already running."""

    spec: OtherBrokerSpec
    kind: str = field(default="external", init=False)
    bench: Bench | None = None
    wiring: Wiring | None = None
    external: ExternalBroker | None = None

    def start(self, bench: Bench, seg: Segment, wiring: Wiring) -> None:  # noqa: D102
        self.bench, self.wiring = bench, wiring
        self.external = ExternalBroker(self.spec.output_topics, self.spec.cmd, self.spec.group)
        # The command runs where the user typed it, so its relative paths hold.
        self.external.start(
            wiring.log,
            bench.cwd,
            servers=bench.servers.servers,
            input_topic=wiring.topic,
            **bench.client_file(),
        )

    def processed(self) -> int | None:  # noqa: D102
        read = self.read_offsets()
        return None if read is None else sum(read.values())

    def read_offsets(self) -> dict[int, int] | None:  # noqa: D102
        if self.spec.group is None:
            return None
        bench, wiring, _ = self._started()
        return group_partition_offsets(
            bench.servers, self.spec.group, wiring.topic, wiring.partitions
        )

    @property
    def group(self) -> str | None:  # noqa: D102
        return self.spec.group

    def _started(self) -> tuple[Bench, Wiring, ExternalBroker]:
        if self.bench is None or self.wiring is None or self.external is None:
            raise RuntimeError("the broker under test has not been started")
        return self.bench, self.wiring, self.external

    def wait(self, target: int, timeout: float, *, fail: bool = True) -> bool:  # noqa: D102
        bench, wiring, external = self._started()
        kafka, topic = bench.servers, wiring.topic
        if self.spec.group is not None:
            return external.wait_consuming(
                kafka, topic, wiring.partitions, target, timeout, fail=fail
            )
        return external.wait_quiet(
            kafka, timeout, quiet=self.spec.quiet_s, exclude=topic, fail=fail
        )

    def outputs(self) -> dict[str, str | None]:  # noqa: D102
        bench, wiring, external = self._started()
        found = external.output_topics(bench.servers, exclude=wiring.topic)
        return dict.fromkeys(found)

    def timing_args(self) -> list[str]:  # noqa: D102
        _, wiring, _ = self._started()
        args = [
            "--topic-pattern",
            self.spec.output_topics,
            "--input-topic",
            wiring.topic,
            "--id-format",
            self.spec.id_format,
        ]
        if self.spec.id_field:
            args += ["--id-field", self.spec.id_field]
        if self.spec.id_schemas:
            args += ["--schemas", str(self.spec.id_schemas)]
        return args

    def procs(self) -> list[ProcessRecord]:  # noqa: D102
        return [self.external.proc] if self.external and self.external.proc else []

    def stop(self) -> None:  # noqa: D102
        if self.external is not None:
            self.external.stop()

    def expected(self) -> None:
        """Unknown from outside: what it should select is its own business."""
        return None


@dataclass
class NullBroker:
    """The harness's own ceiling: a consumer that reads the input and commits, nothing else.

    It is :mod:`alertbench.bench.nullbroker`, started and watched as another
    broker is (its group's committed offsets are its progress), with no
    output to time.
    """

    kind: str = field(default="null", init=False)
    other: OtherBroker | None = None

    def _inner(self) -> OtherBroker:
        if self.other is None:
            raise RuntimeError("the null broker has not been started")
        return self.other

    def start(self, bench: Bench, seg: Segment, wiring: Wiring) -> None:  # noqa: D102
        from alertbench.bench.scenario import OtherBrokerSpec

        group = f"{wiring.prefix}-null"
        cmd = (
            f"{shlex.quote(sys.executable)} -m alertbench.bench.nullbroker --servers {{servers}} "
            f"--topic {{input_topic}} --group {group} --client-config {{client_config}}"
        )
        # (?!) matches no topic: it writes none.
        spec = OtherBrokerSpec(cmd=cmd, output_topics="(?!)", group=group)
        self.other = OtherBroker(spec)
        self.other.start(bench, seg, wiring)

    def processed(self) -> int | None:  # noqa: D102
        return self._inner().processed()

    def read_offsets(self) -> dict[int, int] | None:  # noqa: D102
        return self._inner().read_offsets()

    @property
    def group(self) -> str | None:  # noqa: D102
        return self.other.spec.group if self.other is not None else None

    def wait(self, target: int, timeout: float, *, fail: bool = True) -> bool:  # noqa: D102
        return self._inner().wait(target, timeout, fail=fail)

    def outputs(self) -> dict[str, str | None]:  # noqa: D102
        return {}

    def timing_args(self) -> list[str]:  # noqa: D102
        return []

    def procs(self) -> list[ProcessRecord]:  # noqa: D102
        return self.other.procs() if self.other else []

    def stop(self) -> None:  # noqa: D102
        if self.other is not None:
            self.other.stop()

    def expected(self) -> None:
        """It writes nothing."""
        return None


def to_toml(config: dict[str, Any]) -> str:
    """TOML text for a config of scalars, lists and (one level of) tables."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(str(v))  # JSON string escapes are valid TOML basic strings

    top = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    tables = [
        f"\n[{k}]\n" + "\n".join(f"{kk} = {value(vv)}" for kk, vv in v.items())
        for k, v in config.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n" + "\n".join(tables) + "\n"
