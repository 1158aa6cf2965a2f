"""Where a run's metrics endpoints are, for people and for Prometheus' file service discovery.

A run lists its endpoints in its own ``endpoints.json``, and while it runs
also in ``prometheus-targets.json`` beside the run folders, a file that
Prometheus reads through ``file_sd_configs`` and re-reads when it changes:
one scrape configuration (``alertbench metrics prometheus-config``) finds
every run started into that folder, and stops scraping each when it ends.
The file is removed when no run is left in it, so that the folder holds
run folders only.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from alertbench.observe.endpoint import Endpoint

#: The file Prometheus' file service discovery reads, in a bench's output folder.
TARGETS_FILE = "prometheus-targets.json"
#: The file where a process alertbench started on a free port writes HOST:PORT once it serves.
METRICS_ENDPOINT_FILE = "metrics-endpoint"


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


class Endpoints:
    """A run's endpoints: its own, served in-process, and its helpers' (``HOST:PORT``).

    Parameters
    ----------
    run : Path
        The run's folder (its name labels every target).
    out : Path
        The folder of run folders, where ``prometheus-targets.json`` lives.
    """

    def __init__(self, run: Path, out: Path) -> None:
        self.run = run
        self.out = out
        self.urls: dict[str, str] = {}
        self._served: list[Endpoint] = []
        self._lock = threading.Lock()

    def add(self, component: str, endpoint: Endpoint | str, path: str = "/metrics") -> None:
        """List ``component``'s endpoint (one this process serves, or ``HOST:PORT`` and path)."""
        if isinstance(endpoint, Endpoint):
            self._served.append(endpoint)
            url = endpoint.url
        else:
            url = f"http://{endpoint}{path}"
        with self._lock:
            self.urls[component] = url
            self._write()

    def remove(self, component: str) -> None:
        """Stop listing ``component`` (its process has ended)."""
        with self._lock:
            self.urls.pop(component, None)
            self._write()

    def _groups(self) -> list[dict[str, object]]:
        groups: list[dict[str, object]] = []
        for name, url in sorted(self.urls.items()):
            target, _, path = url.removeprefix("http://").partition("/")
            labels = {"job": "alertbench", "component": name, "run": self.run.name}
            if path != "metrics":  # Prometheus' own default
                labels["__metrics_path__"] = f"/{path}"
            groups.append({"targets": [target], "labels": labels})
        return groups

    def _write(self, *, leaving: bool = False) -> None:
        """Write this run's endpoints.json and its groups in the shared targets (none: leaving)."""
        if not leaving:
            write_atomically(
                self.run / "endpoints.json", json.dumps(self.urls, indent=2, sort_keys=True) + "\n"
            )
        shared = self.out / TARGETS_FILE
        others: list[dict[str, object]] = []
        if shared.exists():
            try:
                found = json.loads(shared.read_text())
            except json.JSONDecodeError:
                found = []
            # Another run's targets stay (each removes its own as it ends).
            others = [
                g
                for g in found
                if isinstance(g, dict) and (g.get("labels") or {}).get("run") != self.run.name
            ]
        groups = [*others, *([] if leaving else self._groups())]
        if groups:
            write_atomically(shared, json.dumps(groups, indent=2) + "\n")
        else:  # no run is going: the results folder holds runs only
            shared.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop serving, and take this run off the shared targets (its endpoints.json stays)."""
        for endpoint in self._served:
            endpoint.stop()
        with self._lock:
            self._write(leaving=True)
