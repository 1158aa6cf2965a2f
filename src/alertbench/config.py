"""One typed configuration for every part of alertbench.

Values are layered, later wins: built-in defaults < ``alertbench.toml`` (in the
working directory, or the file named by ``ALERTBENCH_CONFIG``) < ``ALERTBENCH_*``
environment variables (nested with ``__``, e.g. ``ALERTBENCH_KAFKA__VERSION``)
< command-line flags.

Every path is made absolute where it enters: a relative path in the TOML file
is relative to that file's folder, one from the environment, a flag or a
default to the working directory (``broker.output`` alone is relative to the
run dir). Child processes, state files and generated configs so only ever see
absolute paths, whatever folder they run in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import platformdirs
from pydantic import AfterValidator, BaseModel, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from alertbench.errors import ConfigError

CONFIG_FILE_ENV = "ALERTBENCH_CONFIG"
DEFAULT_CONFIG_FILE = "alertbench.toml"

KafkaMode = Literal["kraft", "zookeeper"]
Protocol = Literal["plaintext", "sasl_plaintext", "ssl", "sasl_ssl"]

# Paths that are not relative to the working directory or the TOML file's folder.
RUN_DIR_RELATIVE = {("broker", "output")}
# A folder, or a URL that is left as it is.
FOLDER_OR_URL = {("broker", "schema_registry")}


def _java_memory(value: str) -> str:
    # What a JVM's -Xmx takes: bytes, or a number and k, m, g or t.
    if not re.fullmatch(r"[1-9]\d*[kKmMgGtT]?", value):
        raise ValueError(f"{value!r} is not a JVM memory size; give one such as 512m or 2g")
    return value


def _spark_memory(value: str) -> str:
    # What Spark's memory settings take (JavaUtils.byteStringAsBytes' units).
    if not re.fullmatch(r"[1-9]\d*([kmgtp]b?|b)?", value, re.IGNORECASE):
        raise ValueError(f"{value!r} is not a Spark memory size; give one such as 1g or 512m")
    return value


def _release(value: str) -> str:
    if not re.fullmatch(r"\d+\.\d+\.\d+", value):
        raise ValueError(f"{value!r} is not a release version; give MAJOR.MINOR.PATCH, e.g. 4.3.1")
    return value


JavaMemory = Annotated[str, AfterValidator(_java_memory)]
SparkMemory = Annotated[str, AfterValidator(_spark_memory)]
Release = Annotated[str, AfterValidator(_release)]


def _major_minor(version: str) -> tuple[int, int]:
    major, minor, _ = version.split(".")
    return int(major), int(minor)


class KafkaSettings(BaseModel):
    """How the alert system's Kafka is obtained and run."""

    version: Release = Field(
        "4.3.1", description="Apache Kafka version fetched from Maven Central."
    )
    zookeeper_version: Release = Field(
        "3.9.2", description="Kafka version used in ZooKeeper mode (the 3.x line)."
    )
    mode: KafkaMode = Field("kraft", description="Cluster mode: kraft or zookeeper.")
    home: Path | None = Field(
        None, description="An unpacked official Kafka distribution to use instead of fetching."
    )
    bootstrap_servers: str | None = Field(
        None, description="An existing cluster to use instead of the embedded one."
    )
    nodes: int = Field(1, ge=1, le=9, description="Nodes started by `kafka up` on this machine.")
    host: str = Field("127.0.0.1", description="Address local nodes listen on.")
    base_port: int = Field(
        0, ge=0, le=65000, description="First port of local nodes; 0 picks free ports."
    )
    heap: JavaMemory = Field("512m", description="Heap of each Kafka broker/controller JVM.")
    zookeeper_heap: JavaMemory = Field("256m", description="Heap of each ZooKeeper JVM.")
    start_timeout: float = Field(90.0, gt=0, description="Seconds to wait for a cluster to form.")
    stop_timeout: float = Field(30.0, gt=0, description="Grace period before SIGKILL on stop.")
    maven_repository: str = Field(
        "https://repo1.maven.org/maven2", description="Maven repository to resolve Kafka from."
    )
    maven: Path | None = Field(
        None, description="`mvn` executable; found or bootstrapped if unset."
    )
    security: Protocol = Field(
        "plaintext",
        description="Security of the clusters `kafka up` starts: the main listener's protocol, "
        "used by alertbench's own clients and between brokers. SASL uses SCRAM-SHA-512; ACLs "
        "decide what each user may do.",
    )
    listeners: list[Protocol] = Field(
        default_factory=list,
        description="More listeners, one per protocol, e.g. ['sasl_plaintext'] beside "
        "sasl_ssl for a distribution service.",
    )
    tls_ca_cert: Path | None = Field(
        None, description="A CA certificate (PEM) to use instead of the one alertbench makes."
    )
    tls_ca_key: Path | None = Field(
        None, description="Its key, so alertbench can issue host and user certificates."
    )
    client_config: Path | None = Field(
        None,
        description="Client properties file (librdkafka names) every alertbench client uses, "
        "e.g. one `kafka user add` wrote; default: the admin's of the cluster `kafka up` "
        "started.",
    )
    client: dict[str, str] = Field(
        default_factory=dict,
        description="Client properties (librdkafka names), applied over client_config.",
    )
    jmx_exporter: bool = Field(
        True,
        description="Start every Kafka and ZooKeeper node `kafka up` starts with the "
        "Prometheus JMX exporter agent (its metrics on the host's metrics_port).",
    )
    jmx_exporter_version: Release = Field(
        "1.0.1",
        description="Version of io.prometheus.jmx:jmx_prometheus_javaagent fetched from Maven.",
    )

    @model_validator(mode="after")
    def _versions_fit_modes(self) -> KafkaSettings:
        # Refused here, not by a cluster that fails to start: Kafka 4 has no ZooKeeper
        # mode, and KRaft is production-ready from 3.3.
        if _major_minor(self.zookeeper_version) >= (4, 0):
            raise ValueError(
                f"zookeeper_version {self.zookeeper_version} has no ZooKeeper mode (Kafka 4 "
                "removed it); give a 3.x release, e.g. 3.9.2"
            )
        if self.mode == "kraft" and _major_minor(self.version) < (3, 3):
            raise ValueError(
                f"version {self.version} predates production KRaft (3.3); give 3.3 or later, "
                "e.g. 4.3.1, or mode = 'zookeeper'"
            )
        return self


# The size of a micro-batch, set in [broker] or by a benchmark scenario.
MinOffsetsPerTrigger = Annotated[
    int | None,
    Field(
        None,
        ge=1,
        description="A micro-batch waits for this many new Kafka records (e.g. a survey's "
        "visit), at most max_trigger_delay_s.",
    ),
]
MaxTriggerDelay = Annotated[
    float, Field(10.0, gt=0, description="Longest wait for min_offsets_per_trigger records.")
]


def check_batch_bounds(min_offsets: int | None, max_offsets: int | None) -> None:
    """Refuse a micro-batch minimum above its maximum (Spark's Kafka source would fail later).

    Raises
    ------
    ValueError
        If both are set and ``min_offsets > max_offsets``.
    """
    if min_offsets and max_offsets and min_offsets > max_offsets:
        raise ValueError(
            f"min_offsets_per_trigger ({min_offsets}) is above "
            f"max_offsets_per_trigger ({max_offsets})"
        )


class BrokerSettings(BaseModel):
    """The Spark alert broker."""

    master: str = Field("local[*]", description="Spark master: local[*] or spark://HOST:PORT.")
    driver_host: str | None = Field(
        None,
        description="Address executors reach the driver at (spark.driver.host) on a cluster; "
        "default: this machine's address on the route to the master.",
    )
    topics: list[str] = Field(["ztf-stream"], description="Kafka topics stream2raw reads.")
    format: str = Field("ztf", description="Wire format of the input: ztf, schemaless, confluent.")
    schema_file: Path | None = Field(None, description="Writer schema (.avsc) for schemaless.")
    schema_registry: str | None = Field(
        None, description="confluent: folder of <id>.avsc files or a Schema Registry URL."
    )
    output: Path = Field(Path("broker"), description="Broker outputs, under the run dir.")
    trigger: str = Field("1 second", description="Micro-batch trigger interval.")
    max_offsets_per_trigger: int | None = Field(
        None, description="Cap on Kafka records per micro-batch (back-pressure)."
    )
    min_offsets_per_trigger: MinOffsetsPerTrigger
    max_trigger_delay_s: MaxTriggerDelay
    kafka_reader: Literal["spark", "tasks"] = Field(
        "tasks",
        description="Who reads Kafka (stream2raw and fused mode): tasks (each task reads "
        "its offset range with confluent-kafka; a visit's batch 15% faster here) or spark "
        "(Spark's Kafka source, records handed to the tasks as Arrow).",
    )
    check_crcs: bool = Field(
        True,
        description="Let the Kafka consumer verify record batches' CRC32C, so a batch damaged "
        "on disk or in transit stops the query, naming it, instead of being decoded: 0.003 ms "
        "of CPU per alert with the task reader (benchmarks/check_crcs.py), about a quarter of "
        "Spark's own Kafka read.",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve the broker's metrics for Prometheus on this port (0: a free one, "
        "printed at start): micro-batches, rows and batch time per query, and its Kafka input's "
        "offsets and lag under Kafka Exporter's names. None: none.",
    )
    fail_on_data_loss: bool = Field(
        True,
        description="Stop the query, naming them, when input offsets the broker has still "
        "to read aged out of Kafka's retention (Spark's failOnDataLoss); false skips them. "
        "Either way each such range is counted exactly in the output's _data_loss/.",
    )
    cuts: str | None = Field(
        None, description="Quality cuts (SQL); default per survey (ZTF: rb >= 0.55 AND nbad = 0)."
    )
    science: Literal["rules", "fink"] = Field(
        "rules",
        description="Science profile: rules (four stated rules, ~0.05 ms per alert) or fink "
        "(Fink's own science: VSX, GCVS, Mangrove and bright-star cross-matches, Solar "
        "System flags, light-curve features and the anomaly score).",
    )
    modules: list[str] | None = Field(
        None,
        description="Science modules, by name or module:object, in order; default: the "
        "science profile's.",
    )
    catalogue: Path | None = Field(
        None, description="CSV or Parquet (ra, dec, name) for the crossmatch module."
    )
    filters: dict[str, str] = Field(
        default_factory=dict, description="Distribution topic -> SQL predicate or module:function."
    )
    distribution_partitions: int = Field(2, ge=1, description="Partitions of distribution topics.")
    distribution_key: Literal["id", "schema"] = Field(
        "id",
        description="Key of distributed messages: the alert's id (objectId), or the topic's "
        "Avro schema as JSON text, as Fink sends it (Fink's client then needs no schema).",
    )
    distribution_retention_ms: int = Field(
        7 * 24 * 3600 * 1000, description="Retention of distribution topics."
    )
    parquet_compression: str = Field(
        "none",
        description="Parquet codec of broker outputs; cutouts are gzipped FITS already, "
        "so the default spends no CPU compressing them again.",
    )
    driver_memory: SparkMemory = Field(
        "1g",
        description="Spark driver heap. The JVM only reads Kafka and hands Arrow batches to "
        "the tasks: 1g holds a 10,000-alert visit.",
    )
    arrow_batch_rows: int = Field(
        500,
        ge=10,
        description="Alerts per Arrow batch handed to a task's Python code. Memory per task "
        "grows with it (500 ZTF alerts are 37 MB); lsst-nominal's broker peaked at 2.9 GB "
        "RSS with 500, 3.2 GB with 1,000.",
    )
    executor_memory: SparkMemory = Field("2g", description="Spark executor heap (cluster mode).")
    shuffle_partitions: int = Field(4, ge=1, description="spark.sql.shuffle.partitions.")
    spark_version: Release = Field(
        "4.2.0", description="Version of the Kafka and Avro connectors (must match pyspark)."
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description="More Spark settings (name -> value), applied after alertbench's own: "
        "a cluster's, or a tuning of your own.",
    )

    @model_validator(mode="after")
    def _batch_bounds(self) -> BrokerSettings:
        check_batch_bounds(self.min_offsets_per_trigger, self.max_offsets_per_trigger)
        return self


class Settings(BaseSettings):
    """The whole alertbench configuration.

    Build it with :func:`load_settings`, which applies the layering and turns
    validation failures into a :class:`~alertbench.errors.ConfigError`.
    """

    model_config = SettingsConfigDict(
        env_prefix="ALERTBENCH_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    run_dir: Path = Field(
        Path(".alertbench"), description="Runtime state: node data, logs, PID state files."
    )
    cache_dir: Path = Field(
        Path(platformdirs.user_cache_dir("alertbench")),
        description="Downloads kept across runs: Kafka jars, Maven.",
    )
    alerts: Path | None = Field(None, description="Folder, file or glob of alert packets.")
    data_dir: Path = Field(
        Path(platformdirs.user_data_dir("alertbench")),
        description="Where `data fetch` puts downloaded alerts.",
    )
    ztf_archive_url: str = Field(
        "https://ztf.uw.edu/alerts/public",
        description="Base URL of the public ZTF nightly archives (ztf_public_YYYYMMDD.tar.gz).",
    )
    java_home: Path | None = Field(
        None, description="JDK to use; else JAVA_HOME, else `java` on PATH."
    )
    inventory: Path | None = Field(
        None,
        description="Inventory of the cluster's hosts (TOML or 'IP NAME' lines): `kafka up` and "
        "`spark up` deploy to it over SSH; `simulate`, `broker run` and `bench run` take its "
        "Kafka brokers and, if it names a spark-master, its Spark master.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        # The TOML source anchored its own paths already; the rest are the cwd's.
        _anchor_model(self, Path.cwd())
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: flags > environment > TOML file > defaults."""
        toml_file = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
        return (init_settings, env_settings, _TomlFileSource(settings_cls, toml_file=toml_file))

    @property
    def kafka_state_dir(self) -> Path:
        """Folder holding the local Kafka cluster's nodes and state file."""
        return self.run_dir / "kafka"

    @property
    def spark_state_dir(self) -> Path:
        """Folder holding the standalone Spark cluster's state, logs and work dirs."""
        return self.run_dir / "spark"


def _anchor(value: Any, base: Path, where: tuple[str, ...]) -> Any:
    """``value`` made absolute against ``base`` if it is a relative path of field ``where``."""
    if value is None or where in RUN_DIR_RELATIVE:
        return value
    if where in FOLDER_OR_URL:
        if "://" in str(value):
            return value
        return os.path.abspath(base / Path(str(value)).expanduser())
    if isinstance(value, str | Path):
        return Path(os.path.abspath(base / Path(value).expanduser()))
    return value


def _is_path(annotation: Any) -> bool:
    return annotation is Path or Path in get_args(annotation)


def _anchor_model(model: BaseModel, base: Path, where: tuple[str, ...] = ()) -> None:
    """Make every path field of ``model`` (and of its sections) absolute against ``base``."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        here = (*where, name)
        if isinstance(value, BaseModel):
            _anchor_model(value, base, here)
        elif _is_path(field.annotation) or here in FOLDER_OR_URL:
            anchored = _anchor(value, base, here)
            if anchored != value:
                object.__setattr__(model, name, anchored)


def _anchor_data(model: type[BaseModel], data: dict[str, Any], base: Path, where=()) -> dict:
    """Raw TOML data with the path fields of ``model`` made absolute against ``base``."""
    out = dict(data)
    for name, field in model.model_fields.items():
        if name not in out:
            continue
        here = (*where, name)
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            if isinstance(out[name], dict):
                out[name] = _anchor_data(nested, out[name], base, here)
        elif _is_path(nested) or here in FOLDER_OR_URL:
            out[name] = _anchor(out[name], base, here)
    return out


class _TomlFileSource(TomlConfigSettingsSource):
    """The TOML layer, with relative paths taken from the file's own folder."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        folder = Path(os.path.abspath(Path(self.toml_file_path).parent))  # type: ignore[arg-type]
        return _anchor_data(self.settings_cls, data, folder)


def load_settings(**flags: Any) -> Settings:
    """Build the configuration from every layer.

    Parameters
    ----------
    **flags
        Values given on the command line; ``None`` means "not given" so that
        lower layers show through. Nested sections are dicts, e.g.
        ``kafka={"version": "3.9.2"}``.

    Returns
    -------
    Settings
        The validated configuration.

    Raises
    ------
    ConfigError
        When the TOML file cannot be parsed or a value is invalid; the message
        names the file or variable and the field.
    """
    given = {k: v for k, v in flags.items() if v is not None}
    for key, value in list(given.items()):
        if isinstance(value, dict):
            given[key] = {k: v for k, v in value.items() if v is not None}
    toml_file = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
    if CONFIG_FILE_ENV in os.environ and not toml_file.is_file():
        raise ConfigError(
            f"{CONFIG_FILE_ENV}={toml_file} names no file; point it at an alertbench.toml "
            "or unset it."
        )
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"invalid configuration ({problems}). Check {toml_file} if it exists, "
            "the ALERTBENCH_* environment variables and the command-line flags."
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read configuration file {toml_file}: {exc}") from exc


class Flags:
    """Command-line flags gathered on the way down the command tree.

    The root command stores the global flags here; each subcommand adds its
    own and asks for :meth:`settings`.
    """

    def __init__(self, **flags: Any) -> None:
        self.flags = flags

    def settings(self, **flags: Any) -> Settings:
        """Settings from every layer, with these flags on top of the global ones."""
        merged = dict(self.flags)
        for key, value in flags.items():
            if value is None:
                continue  # not given: the global flag (or a lower layer) stands
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                given = {k: v for k, v in value.items() if v is not None}
                merged[key] = {**merged[key], **given}
            else:
                merged[key] = value
        return load_settings(**merged)
