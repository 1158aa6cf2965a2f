"""Live metrics in Prometheus' exposition format, served by the processes alertbench runs.

Kafka's offsets and lag go out under Kafka Exporter's names, so the
dashboards written for it (Rubin's, BOOM's, grafana.com 7589) work on a run
unchanged; alertbench's own series are prefixed ``alertbench_``.
"""
