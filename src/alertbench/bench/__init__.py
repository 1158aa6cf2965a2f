"""Benchmarks: scenarios, metrics, latency, reports; and the demo."""
