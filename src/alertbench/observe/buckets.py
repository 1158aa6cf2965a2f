"""Histogram buckets shared by every latency alertbench serves or writes."""

from __future__ import annotations

#: Latency buckets (s): fine below a second, and Rubin's 60 s among them.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600)
