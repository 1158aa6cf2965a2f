"""Run the broker's stages together or apart, until stopped or idle."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alertbench.broker.batch.decode import make_plan
from alertbench.broker.batch.filters import parse_filters
from alertbench.broker.batch.raw import raw_schema
from alertbench.broker.batch.route import Routing, default_cuts, science_schema
from alertbench.broker.batch.science import profile_modules, resolve_modules, usable
from alertbench.broker.stream import distribute, raw2science, stream2raw
from alertbench.broker.stream.source import KafkaInput
from alertbench.config import Settings
from alertbench.errors import AlertbenchError, ConfigError
from alertbench.kafka.security import Connection
from alertbench.spark.session import build_session, resolve_master

STAGES = ("stream2raw", "raw2science", "distribute")
#: The broker output that names the science profile and the modules that ran.
SCIENCE_FILE = "science.json"
DEFAULT_FILTERS = {
    "ztf": {
        "early-sn": "early_sn_score >= 0.7",
        "sso": "sso_candidate",
        "bright": "magpsf <= 17.5 AND NOT coalesce(near_star, false)",
    },
    "lsst": {"high-snr": "snr >= 20"},
}
#: The fink profile's topics, on its own columns: Fink's Solar System stream (a known
#: asteroid), variable stars, and bright alerts away from bright stars.
FINK_FILTERS = {
    "ztf": {
        "sso": "roid = 3",
        "variable-star": "vsx <> 'Unknown' OR gcvs <> 'Unknown'",
        "bright": "magpsf <= 17.5 AND NOT coalesce(near_brightstar, false)",
    },
    "lsst": {"high-snr": "snr >= 20", "sso": "is_sso"},
}


def default_filters(survey: str, profile: str) -> dict[str, str]:
    """The distribution filters used when none are configured, for a survey and profile."""
    chosen = FINK_FILTERS if profile == "fink" else DEFAULT_FILTERS
    return dict(chosen.get(survey, {}))


class BrokerError(AlertbenchError):
    """A streaming query failed."""


@dataclass
class BrokerResult:
    """What a broker run did."""

    out: Path
    stages: list[str]
    rows: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    filters: dict[str, str] = field(default_factory=dict)


def science_profile(broker) -> str:
    """The science profile a broker's settings run: its ``science``, or ``custom`` modules."""
    return broker.science if broker.modules is None else "custom"


def broker_output(settings: Settings) -> Path:
    """Folder of the broker's Parquet, checkpoints, schemas and progress."""
    out = settings.broker.output
    return (out if out.is_absolute() else settings.run_dir / out).resolve()


def run_broker(
    settings: Settings,
    *,
    servers: str | Connection,
    stages: list[str] | None = None,
    until_idle: float | None = None,
    timeout: float | None = None,
    stop_after_rows: int | None = None,
    fused: bool = False,
    echo: Callable[[dict[str, Any]], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> BrokerResult:
    """Start the chosen stages and run until Ctrl-C, ``until_idle`` or ``timeout``.

    Parameters
    ----------
    settings : Settings
        ``broker`` section: format, topics, modules, filters, trigger, master.
    servers : str or Connection
        The Kafka cluster (input and distribution), with the broker's credentials.
    stages : list of str, optional
        Some of stream2raw, raw2science, distribute; all by default.
    until_idle : float, optional
        Stop once no stage has read a row for this many seconds (after the
        first rows arrived).
    timeout : float, optional
        Stop after this many seconds whatever happens.
    stop_after_rows : int, optional
        Stop once the first stage has read this many rows (a mid-stream stop).
    fused : bool
        Run all stages as one query per micro-batch (``stages`` is ignored).
    echo : callable, optional
        Receives every batch record.
    say : callable, optional
        Receives messages for people.

    Returns
    -------
    BrokerResult
    """
    from alertbench.broker.stream.listener import ProgressListener

    say = say or (lambda _m: None)
    stages = list(stages or STAGES)
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ConfigError(
            f"unknown stage(s) {', '.join(sorted(unknown))}; stages: {', '.join(STAGES)}"
        )
    b = settings.broker
    out = broker_output(settings)
    out.mkdir(parents=True, exist_ok=True)
    say(f"starting Spark ({resolve_master(settings)})")
    spark = build_session(settings)
    say(f"learning the stream's schema ({b.format}) from {', '.join(b.topics)}")
    plan = make_plan(
        b.format,
        servers=servers,
        topics=b.topics,
        schema_file=str(b.schema_file) if b.schema_file else None,
        registry=b.schema_registry,
    )
    survey = plan.schema.survey.survey
    say(f"stream: {plan.schema.name} ({plan.schema.survey})")
    raw = raw_schema(plan.schema)
    names = b.modules if b.modules is not None else profile_modules(b.science)
    catalogue = str(b.catalogue) if b.catalogue else None
    modules = resolve_modules(names, catalogue=catalogue, survey=survey)
    modules, notes = usable(modules, raw.names, survey)
    profile = science_profile(b)
    say(f"science: {profile} ({', '.join(m.name for m in modules) or 'no module'})")
    # What ran, for whoever reads the outputs (the bench names the profile of every figure).
    (out / SCIENCE_FILE).write_text(
        json.dumps({"profile": profile, "modules": [m.name for m in modules], "notes": notes})
        + "\n"
    )
    science = science_schema(raw, modules)
    cuts = b.cuts or default_cuts(survey)
    filter_spec = b.filters or default_filters(survey, profile)
    filters = parse_filters(filter_spec)
    result = BrokerResult(out=out, stages=stages, filters=dict(filter_spec), notes=notes)

    endpoint = None
    if b.metrics_port is not None:
        from alertbench.observe.targets import METRICS_ENDPOINT_FILE, write_atomically

        metrics, endpoint = _serve_metrics(servers, b.topics, b.metrics_port, out)
        say(f"metrics for Prometheus: {endpoint.url}")
        # For whoever started it on a free port (the bench lists it for Prometheus), with
        # Spark's own endpoint, on its UI (alertbench.spark.metrics.SPARK_METRICS_PATH).
        ui = spark.sparkContext.uiWebUrl
        write_atomically(
            out / METRICS_ENDPOINT_FILE,
            endpoint.target + (f"\n{ui.removeprefix('http://')}" if ui else ""),
        )
        shown = echo

        def echo(record: dict[str, Any]) -> None:
            metrics.observe(record)
            if shown is not None:
                shown(record)

    listener = ProgressListener(out / "progress.jsonl", echo)
    spark.streams.addListener(listener)
    queries = []
    # The Kafka query of either mode reads the same source the same way.
    kafka_query = KafkaInput(
        servers=servers,
        topics=b.topics,
        out=out,
        trigger=b.trigger,
        max_offsets=b.max_offsets_per_trigger,
        min_offsets=b.min_offsets_per_trigger,
        max_trigger_delay_s=b.max_trigger_delay_s,
        check_crcs=b.check_crcs,
        fail_on_data_loss=b.fail_on_data_loss,
    )
    if fused:
        result.stages = ["fused"]
    try:
        published, tail = distribute.distribution_schema(spark, science, plan.schema)
        schema_key = (
            json.dumps(published, separators=(",", ":")).encode()
            if b.distribution_key == "schema"
            else None
        )
        routing = Routing(filters, tail, servers, schema_key)
        distributes = fused or "distribute" in stages
        check_predicates(raw, science, cuts, filters if distributes else [])
        if distributes:
            distribute.create_topics(
                servers,
                filters,
                partitions=b.distribution_partitions,
                retention_ms=b.distribution_retention_ms,
            )
            distribute.publish_schema(out, published, filters)
        if fused:
            from alertbench.broker.stream import fused as fused_mode

            queries.append(
                fused_mode.start(
                    spark,
                    plan,
                    kafka_query,
                    cuts=cuts,
                    modules=modules,
                    routing=routing,
                    reader=b.kafka_reader,
                )
            )
            stages = []
        if "stream2raw" in stages:
            queries.append(stream2raw.start(spark, plan, kafka_query, reader=b.kafka_reader))
        if "raw2science" in stages:
            queries.append(
                raw2science.start(spark, cuts=cuts, modules=modules, out=out, trigger=b.trigger)
            )
        if "distribute" in stages and filters:
            queries.append(
                distribute.start(
                    spark, routing=routing, schema=plan.schema, out=out, trigger=b.trigger
                )
            )
        say(f"running {', '.join(q.name for q in queries)}; output in {out}")
        _wait(queries, listener, until_idle=until_idle, timeout=timeout, rows=stop_after_rows)
    finally:
        for q in queries:
            if q.isActive:
                q.stop()
        # Let the listener receive the last events before the session goes.
        time.sleep(0.5)
        spark.streams.removeListener(listener)
        if endpoint is not None:
            endpoint.stop()
    result.rows = dict(listener.rows)
    result.batches = dict(listener.batches)
    return result


def _serve_metrics(servers: str | Connection, topics: list[str], port: int, out: Path):
    """The broker's metrics (:mod:`alertbench.broker.stream.metrics`), served on ``port``."""
    from alertbench.broker.stream.metrics import BrokerMetrics
    from alertbench.kafka.admin import list_topics
    from alertbench.kafka.client import Watermarks
    from alertbench.observe.endpoint import serve

    marks = Watermarks(servers)
    counts = {t.name: len(t.partitions) for t in list_topics(servers) if t.name in topics}
    metrics = BrokerMetrics(list(topics), lambda t: marks.end_offsets(t, counts.get(t, 0)), out)
    return metrics, serve(metrics.registry, port)


def check_predicates(raw, science, cuts: str, filters) -> None:
    """Refuse, before the stream starts, cuts or SQL filters that cannot be evaluated.

    Parameters
    ----------
    raw, science : pyarrow.Schema
        The columns the cuts and the filters see.

    Raises
    ------
    ConfigError
        Naming the predicate and why.
    """
    from alertbench.broker.batch.sql import check_predicates as check

    check(raw, {"broker.cuts": cuts})
    check(science, {f"filter {f.topic}": f.sql for f in filters if f.sql is not None})


def _wait(
    queries, listener, *, until_idle: float | None, timeout: float | None, rows: int | None
) -> None:
    start = time.time()
    names = [q.name for q in queries]
    while True:
        if rows is not None and names and listener.rows.get(names[0], 0) >= rows:
            return
        for q in queries:
            exc = q.exception()
            if exc is not None:
                raise BrokerError(f"query {q.name} failed: {exc}")
        if timeout is not None and time.time() - start > timeout:
            return
        if until_idle is not None:
            idle = listener.idle_for(names)
            ran = all(listener.batches.get(n, 0) > 0 for n in names)
            if ran and idle != float("inf") and idle >= until_idle:
                return
        time.sleep(0.5)
