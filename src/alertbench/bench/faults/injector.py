"""Faults struck on time during the measured load, healed on time, and recorded.

Each fault runs in a thread of its own: it waits for its moment (its
visit's start plus ``after_s``, on the simulator's own clock), acts, waits
``heal_after_s`` and heals. Every act is recorded with the PIDs it touched,
in results and, while the fault is live, in the bench's state file; a run
that ends early heals whatever is still live (a paused node is resumed, a
killed one restarted), so nothing is left stopped.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from alertbench.bench.faults.kinds import ACTS
from alertbench.bench.faults.spec import FaultSpec
from alertbench.bench.faults.target import Act, Target


class Injector:
    """The scenario's faults against one segment.

    Parameters
    ----------
    specs : list of FaultSpec
        The faults.
    target : Target
        What they act on.
    """

    def __init__(self, specs: list[FaultSpec], target: Target) -> None:
        self.specs = specs
        self.target = target
        self.records: list[dict[str, Any]] = []
        self._live: dict[int, Act] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, load_t0: float, interval: float) -> None:
        """Strike each fault relative to ``load_t0``, the measured load's first due send.

        ``interval`` is the time between visits (a fault in visit k strikes at
        ``load_t0 + (k - 1) * interval + after_s``).
        """
        for k, spec in enumerate(self.specs):
            at = load_t0 + ((spec.visit or 1) - 1) * interval + spec.after_s
            record: dict[str, Any] = {
                "name": spec.name,
                "label": spec.label(),
                "params": {key: spec.value(key) for key in spec.kind.keys},
                "due": at,
                "heal_after_s": spec.heal_s,
                "injected": None,
                "healed": None,
                "error": None,
            }
            self.records.append(record)
            thread = threading.Thread(
                target=self._run, args=(k, spec, record), daemon=True, name=f"fault-{spec.name}"
            )
            self._threads.append(thread)
            thread.start()

    def _save(self) -> None:
        bench = self.target.bench
        with self._lock:
            bench.faults = [dict(r) for r in self.records]
        bench.save_state()

    def _run(self, k: int, spec: FaultSpec, record: dict[str, Any]) -> None:
        if self._stop.wait(max(0.0, record["due"] - time.time())):
            record["error"] = "not injected: the run ended first"
            return
        act = ACTS[spec.name](spec, self.target)
        self.target.bench.say(f"fault: {spec.label()}")
        try:
            record["injected"] = time.time()
            with self._lock:
                self._live[k] = act
            record["inject"] = act.inject()
        except Exception as exc:  # recorded, and the run fails on it
            record["error"] = f"injecting failed: {exc}"
            self._heal(k, record)
            return
        self._save()
        if spec.heal_s is None:
            with self._lock:
                self._live.pop(k, None)
            # A one-act fault lasts as long as its act (a rolling restart, minutes).
            record["healed"] = time.time()
            return
        self._stop.wait(spec.heal_s)
        self._heal(k, record)

    def _heal(self, k: int, record: dict[str, Any]) -> None:
        with self._lock:
            act = self._live.pop(k, None)
        if act is None:
            return
        try:
            record["heal"] = act.heal()
            record["healed"] = time.time()
            # An act that knows better when its fault began and ended (a helper on another
            # host, which did both on its own clock) says so; the window is then its.
            for key, at in (("injected", "struck_at"), ("healed", "healed_at")):
                if record["heal"].get(at) is not None:
                    record[key] = record["heal"][at]
            self.target.bench.say(f"healed: {record['label']}")
        except Exception as exc:
            record["error"] = f"healing failed: {exc}"
        self._save()

    def finish(self, timeout: float = 600.0) -> list[dict[str, Any]]:
        """Wait for every fault to strike and heal; returns their records."""
        for thread in self._threads:
            thread.join(timeout)
        return self.records

    def abort(self) -> list[dict[str, Any]]:
        """Heal at once whatever is live (the run is ending) and stop waiting."""
        self._stop.set()
        for thread in self._threads:
            thread.join(180)
        for k in list(self._live):
            record = self.records[k]
            self._heal(k, record)
        return self.records
