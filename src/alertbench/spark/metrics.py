"""Spark's own metrics for Prometheus, the standard way: its built-in ``PrometheusServlet``.

No extra jar: a metrics sink in Spark itself serves Prometheus' text format
on each process's web UI. The driver serves its own (streaming queries'
rates and latency among them) and, with ``spark.ui.prometheus.enabled``, its
executors'; a standalone master serves the master's and its applications',
and each worker its own.
"""

from __future__ import annotations

#: Spark's built-in Prometheus sink.
PROMETHEUS_SERVLET = "org.apache.spark.metrics.sink.PrometheusServlet"
#: Where a driver or a worker serves it on its UI.
SPARK_METRICS_PATH = "/metrics/prometheus"
#: Where a driver serves its executors' (spark.ui.prometheus.enabled).
SPARK_EXECUTOR_METRICS_PATH = "/metrics/executors/prometheus"
#: Where a standalone master serves its own and its applications'.
MASTER_METRICS_PATH = "/metrics/master/prometheus"
APPLICATIONS_METRICS_PATH = "/metrics/applications/prometheus"

_SINK = "spark.metrics.conf.{}.sink.prometheusServlet.{}"


def session_metrics_conf() -> dict[str, str]:
    """A driver's Spark settings that serve its and its executors' metrics."""
    return {
        "spark.ui.prometheus.enabled": "true",
        _SINK.format("*", "class"): PROMETHEUS_SERVLET,
        _SINK.format("*", "path"): SPARK_METRICS_PATH,
        "spark.sql.streaming.metricsEnabled": "true",
    }


def daemon_java_opts() -> str:
    """``SPARK_DAEMON_JAVA_OPTS`` that make a standalone master and worker serve theirs.

    The daemons read ``spark.*`` system properties into their configuration, and
    their metrics system takes ``spark.metrics.conf.*`` from it: no
    ``metrics.properties`` file to ship to every host.
    """
    conf = {
        _SINK.format("*", "class"): PROMETHEUS_SERVLET,
        _SINK.format("*", "path"): SPARK_METRICS_PATH,
        # The master serves two metrics systems on one UI: each needs its own path.
        _SINK.format("master", "path"): MASTER_METRICS_PATH,
        _SINK.format("applications", "path"): APPLICATIONS_METRICS_PATH,
    }
    return " ".join(f"-D{k}={v}" for k, v in conf.items())


def daemon_metrics_path(name: str) -> str:
    """Where the standalone daemon ``name`` (``master`` or ``worker-...``) serves its metrics."""
    # With the slash: without it the UI answers with a redirect.
    return (MASTER_METRICS_PATH if name == "master" else SPARK_METRICS_PATH) + "/"
