"""The resource sampler measures live processes and gives no sample for ended ones."""

from __future__ import annotations

import os
import subprocess
import sys

from alertbench.bench.sampler import ResourceSampler


def test_a_component_whose_processes_ended_gives_no_sample():
    code = "import time; print('up', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "up\n"  # running Python, not still exec'ing
        # The child is also this process' descendant: it counts for the
        # component listed first only, as the broker does before the simulator.
        sampler = ResourceSampler(lambda: {"consumer": [child.pid], "bench": [os.getpid()]}, 0.0)
        sampler.sample()
        sampler.sample()
        assert [r[1] for r in sampler.rows] == ["consumer", "bench"] * 2
        assert all(r[3] > 1 for r in sampler.rows), sampler.rows  # resident MiB
        assert set(sampler.latest) == {"bench", "consumer"}
        child.kill()
        child.wait()
        before = len(sampler.rows)
        sampler.sample()
        assert [r[1] for r in sampler.rows[before:]] == ["bench"]
        assert set(sampler.latest) == {"bench"}
    finally:
        child.kill()
        child.wait()
