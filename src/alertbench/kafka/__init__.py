"""The alert system: fetch Kafka, render node configs, run clusters, manage topics."""
