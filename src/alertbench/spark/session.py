"""The Spark session of the broker, with the Kafka and Avro connectors.

The connectors are resolved from Maven Central through Spark's own package
mechanism (``spark.jars.packages``, Ivy) into alertbench's cache. The jars it
resolved are then recorded, and later sessions pass them as ``spark.jars``:
no resolution, no network, and the driver ships them to standalone executors.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from alertbench.config import Settings
from alertbench.errors import ConfigError
from alertbench.java import find_java
from alertbench.spark.metrics import session_metrics_conf

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def connector_packages(version: str) -> list[str]:
    """Maven coordinates of the Kafka source/sink and the Avro functions."""
    return [
        f"org.apache.spark:spark-sql-kafka-0-10_2.13:{version}",
        f"org.apache.spark:spark-avro_2.13:{version}",
    ]


def _manifest(settings: Settings) -> Path:
    return settings.cache_dir / "spark-connectors" / f"{settings.broker.spark_version}.json"


def cached_connector_jars(settings: Settings) -> list[str] | None:
    """Jars of an earlier resolution, if every one is still there."""
    path = _manifest(settings)
    if not path.is_file():
        return None
    jars = json.loads(path.read_text()).get("jars", [])
    return jars if jars and all(Path(j).is_file() for j in jars) else None


def check_pyspark(settings: Settings) -> str:
    """The installed pyspark version, which must equal the connectors' version.

    Raises
    ------
    ConfigError
        If pyspark is missing or its version differs from ``broker.spark_version``.
    """
    try:
        import pyspark
    except ImportError as exc:
        raise ConfigError("pyspark is not installed; run ./run to set up alertbench") from exc
    if pyspark.__version__ != settings.broker.spark_version:
        raise ConfigError(
            f"pyspark {pyspark.__version__} is installed but the connectors are "
            f"{settings.broker.spark_version}; they must match (set broker.spark_version)."
        )
    return pyspark.__version__


def resolve_master(settings: Settings) -> str:
    """The Spark master the broker runs on.

    ``broker.master`` if it was set in any configuration layer, else the
    master of the configured inventory if it declares Spark hosts (the
    cluster `alertbench spark up --inventory` deploys), else the default
    ``broker.master`` (``local[*]``).

    Parameters
    ----------
    settings : Settings
        ``broker.master`` and ``inventory``.

    Returns
    -------
    str
        ``local[...]`` or ``spark://HOST:PORT``.
    """
    if "master" in settings.broker.model_fields_set:
        return settings.broker.master
    if settings.inventory is not None:
        # Imported here: the Kafka side is not needed to start a local session.
        from alertbench.kafka.local import inventory_of

        inv = inventory_of(settings)
        if inv is not None and inv.declares_spark:
            return inv.spark_master_url
    return settings.broker.master


def master_endpoint(master: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``spark://`` master (the first of an HA list), else None."""
    if not master.startswith("spark://"):
        return None
    first = master.removeprefix("spark://").split(",")[0]
    host, _, port = first.rpartition(":")
    if not host:
        return first, 7077
    return host.strip("[]"), int(port) if port.isdigit() else 7077


def route_address(host: str, port: int = 7077) -> str:
    """The address of this machine on the route to ``host``: where that host reaches us.

    A UDP socket's ``connect`` only asks the kernel for a route; no packet is sent.

    Raises
    ------
    ConfigError
        If ``host`` does not resolve or no route leads to it.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((host, port))
            return sock.getsockname()[0]
    except OSError as exc:
        raise ConfigError(
            f"cannot find this machine's address towards the Spark master {host}: {exc}. Set "
            "broker.driver_host (ALERTBENCH_BROKER__DRIVER_HOST) to an address of this machine "
            "that the Spark hosts can reach."
        ) from None


def driver_host(settings: Settings, master: str) -> str:
    """The address executors reach the driver at (``spark.driver.host``).

    ``127.0.0.1`` for a local master; else ``broker.driver_host`` if set; else
    this machine's address on the route to the master, since executors on
    other hosts cannot reach whatever this machine's host name resolves to.

    Raises
    ------
    ConfigError
        If no route to the master's host is found.
    """
    endpoint = master_endpoint(master)
    if endpoint is None:
        return "127.0.0.1"
    if settings.broker.driver_host:
        return settings.broker.driver_host
    return route_address(*endpoint)


CHECKPOINT_MANAGER = (
    "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"
)
#: Allocator settings of the Python workers. A micro-batch allocates and frees
#: hundreds of MB; by default both allocators hand freed memory back to the
#: system within a second, so every batch faulted in and zeroed fresh pages
#: again (a tenth of a worker's CPU in a 10,000-alert batch, ``perf``).
#: Memory is kept for the next batch instead: between batches a worker stays
#: at the size its largest batch needed.
WORKER_ENV = {
    # pyarrow's default pool (mimalloc): never purge freed pages.
    "MIMALLOC_PURGE_DELAY": "-1",
    # glibc (librdkafka, Python, DataFusion): keep freed heap, mmap only past 32 MB.
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
}


def _is_local_address(address: str) -> bool:
    """Whether this machine can listen on ``address``."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
        return True
    except OSError:
        return False


def build_session(
    settings: Settings, *, app_name: str = "alertbench-broker", master: str | None = None
) -> SparkSession:
    """Start (or get) the broker's SparkSession.

    Parameters
    ----------
    settings : Settings
        Master, memory, partitions, connector version, cache.
    app_name : str
        Spark application name.
    master : str, optional
        Overrides :func:`resolve_master`.

    Returns
    -------
    SparkSession
    """
    check_pyspark(settings)
    java = find_java(settings.java_home)
    # pyspark launches the JVM from JAVA_HOME; Python workers must be this
    # interpreter, or executors import a system Python without our packages.
    os.environ["JAVA_HOME"] = str(java.home)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    master = master or resolve_master(settings)
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master != master:
        # getOrCreate would hand back the session of another master.
        active.stop()

    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.driver.memory", settings.broker.driver_memory)
        .config("spark.executor.memory", settings.broker.executor_memory)
        .config("spark.sql.shuffle.partitions", str(settings.broker.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.compression.codec", settings.broker.parquet_compression)
        # Dictionary pages do not pay for 75 KB alerts (cutouts, long histories):
        # writing raw Parquet without them is ~20% faster here.
        .config("spark.hadoop.parquet.enable.dictionary", "false")
        .config("spark.sql.types.framework.enabled", "false")
        # Reading alerts back from Parquet, a vectorised batch of the default
        # 4,096 rows holds ~300 MB per task: a 10,000-alert batch in files
        # of 5,000 ran a 2 GB driver out of heap.
        .config("spark.sql.parquet.columnarReaderBatchSize", "256")
        # night=20231018 is a name, not a number: keep partition values strings.
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Spark's own metrics for Prometheus, the standard way (no extra jar), on its UI:
        # the driver's at /metrics/prometheus (streaming queries' rates and latency among
        # them), its executors' at /metrics/executors/prometheus.
        .config(map=session_metrics_conf())
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
        # Alerts are 50-150 KB: smaller Arrow batches keep Python memory flat.
        .config(
            "spark.sql.execution.arrow.maxRecordsPerBatch", str(settings.broker.arrow_batch_rows)
        )
        .config("spark.executorEnv.PYSPARK_PYTHON", sys.executable)
        # The default manager renames through Hadoop's FileContext, which on a
        # local disk starts a `readlink` process per file: eight per
        # micro-batch, a fifth of a 10-alert batch here. Renames through the
        # FileSystem API are as atomic on a local or HDFS checkpoint, and one
        # query writes each checkpoint.
        .config("spark.sql.streaming.checkpointFileManagerClass", CHECKPOINT_MANAGER)
    )
    for key, value in WORKER_ENV.items():
        # Local mode's workers inherit the driver's environment; executors get executorEnv.
        os.environ.setdefault(key, value)
        builder = builder.config(f"spark.executorEnv.{key}", os.environ[key])
    if master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    else:
        host = driver_host(settings, master)
        # An address of another machine (a NAT's) is advertised, but cannot be bound here.
        bind = host if _is_local_address(host) else "0.0.0.0"
        builder = builder.config("spark.driver.host", host).config("spark.driver.bindAddress", bind)
        # The UI (and its metrics) binds to SPARK_LOCAL_IP, not to the driver's address: a
        # loopback one (a local session's, inherited) would hide it from what it advertises.
        if bind != "0.0.0.0":
            os.environ["SPARK_LOCAL_IP"] = bind
        else:
            os.environ.pop("SPARK_LOCAL_IP", None)
    for key, value in settings.broker.spark_conf.items():
        builder = builder.config(key, value)
    jars = cached_connector_jars(settings)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    else:
        ivy = settings.cache_dir / "spark-ivy"
        builder = builder.config(
            "spark.jars.packages", ",".join(connector_packages(settings.broker.spark_version))
        ).config("spark.jars.ivy", str(ivy))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if not jars:
        resolved = [
            j.removeprefix("file://").removeprefix("file:")
            for j in spark.sparkContext.getConf().get("spark.jars", "").split(",")
            if j
        ]
        if resolved:
            path = _manifest(settings)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"jars": resolved}, indent=2) + "\n")
    return spark
