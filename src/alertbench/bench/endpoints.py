"""A run's metrics endpoints: its clusters', and its timing consumers' and broker's as they come up.

The Kafka nodes alertbench started serve their JMX metrics through the JMX
exporter agent (:mod:`alertbench.kafka.jmx_exporter`), and a standalone Spark
cluster's master and workers through Spark's own sink
(:mod:`alertbench.spark.metrics`); a run lists those it uses.

Each serves on a free port it chooses and writes ``HOST:PORT`` to a file
(``metrics-endpoint``) once it listens; the bench reads it and lists the
endpoint for Prometheus (:class:`alertbench.observe.targets.Endpoints`).
alertbench's broker writes its Spark UI's address on a second line: Spark's
own metrics are served there (``spark.ui.prometheus.enabled`` and the
``PrometheusServlet`` sink).
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from alertbench.bench.session import Bench, Segment
from alertbench.kafka.state import ClusterState
from alertbench.spark import state as spark_state
from alertbench.spark.metrics import SPARK_EXECUTOR_METRICS_PATH, SPARK_METRICS_PATH
from alertbench.ssh import SSHTransport


def list_cluster_endpoints(bench: Bench, kafka: ClusterState | None, master: str) -> None:
    """List the metrics of the Kafka nodes and the Spark daemons the run uses.

    Parameters
    ----------
    bench : Bench
        Its endpoints receive them (``kafka-NODE``, ``spark-master``, ``spark-worker-N``).
    kafka : ClusterState or None
        The Kafka alertbench started that the run reads (embedded or ``kafka up``'s).
    master : str
        The broker's Spark master: a standalone cluster's daemons are listed
        when ``spark up`` started it.
    """
    assert bench.endpoints is not None
    if kafka is not None:
        bench.endpoints.add_urls(kafka.metrics_urls())
    spark = spark_state.read_state(bench.settings)
    if spark is not None and spark.master_url == master:
        bench.endpoints.add_urls(spark.metrics_urls())


def list_broker_endpoint(bench: Bench, seg: Segment, written: Path) -> threading.Event:
    """List alertbench's broker's endpoint whenever it serves anew; set the event to stop.

    The broker writes HOST:PORT once Spark is up, and again after a restart (a
    fault's), on a new free port.
    """
    stop = threading.Event()

    def watch() -> None:
        seen = ""
        while not stop.is_set() and bench.endpoints is not None:
            with contextlib.suppress(OSError):
                text = written.read_text().strip()
                if text and text != seen:
                    # Its own endpoint, then its Spark UI's (the driver's and the executors').
                    own, *ui = text.splitlines()
                    bench.endpoints.add(f"broker-{seg.tag}", own)
                    if ui:
                        bench.endpoints.add(f"spark-{seg.tag}", ui[0], SPARK_METRICS_PATH)
                        bench.endpoints.add(
                            f"spark-executors-{seg.tag}", ui[0], SPARK_EXECUTOR_METRICS_PATH
                        )
                    seen = text
            stop.wait(0.5)

    threading.Thread(target=watch, daemon=True, name=f"endpoint-broker-{seg.tag}").start()
    return stop


def list_timing_endpoint(bench: Bench, seg: Segment, written: Path) -> None:
    """List the timing consumer's metrics endpoint once it serves (it writes HOST:PORT)."""
    t = bench.timing.transport
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = t.run(["cat", str(written)], timeout=10)
        if done.returncode == 0 and done.stdout.strip():
            host, _, port = done.stdout.strip().rpartition(":")
            if isinstance(t, SSHTransport):  # its name there may mean nothing here
                host = t.target.address
            assert bench.endpoints is not None
            bench.endpoints.add(f"timing-{seg.tag}", f"{host}:{port}")
            bench.view.latency_url = bench.endpoints.urls[f"timing-{seg.tag}"]
            return
        time.sleep(0.2)
    bench.say(f"timing-{seg.tag} did not serve its metrics within 30 s (see its log)")
