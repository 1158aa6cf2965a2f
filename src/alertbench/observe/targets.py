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
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alertbench.observe.endpoint import Endpoint

#: The file Prometheus' file service discovery reads, in a bench's output folder.
TARGETS_FILE = "prometheus-targets.json"
#: What each endpoint answered when the run scraped it (:meth:`Endpoints.check`).
CHECKED_FILE = "endpoints-checked.json"
#: The file where a process alertbench started on a free port writes HOST:PORT once it serves.
METRICS_ENDPOINT_FILE = "metrics-endpoint"


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def target_groups(urls: dict[str, str], labels: dict[str, str]) -> list[dict[str, object]]:
    """Prometheus' file service discovery groups: one per component's ``http://`` URL.

    Each group is labelled ``labels`` and ``component``, and says its path when it is
    not Prometheus' default ``/metrics``.
    """
    groups: list[dict[str, object]] = []
    for name, url in sorted(urls.items()):
        target, _, path = url.removeprefix("http://").partition("/")
        found = {**labels, "component": name}
        if path != "metrics":
            found["__metrics_path__"] = f"/{path}"
        groups.append({"targets": [target], "labels": found})
    return groups


def write_cluster_targets(folder: Path, job: str, urls: dict[str, str]) -> None:
    """List a cluster's metrics endpoints for Prometheus in ``folder/prometheus-targets.json``.

    A cluster alertbench runs (``kafka up``, ``spark up``) keeps this file
    beside its state file: one target group per running process, labelled
    ``job`` and ``component``. With no process running the file is removed.

    Parameters
    ----------
    folder : Path
        The cluster's state folder.
    job : str
        The scrape job's label, e.g. ``alertbench-kafka``.
    urls : dict of str to str
        ``http://HOST:PORT/PATH`` of each running process, by component.
    """
    path = folder / TARGETS_FILE
    groups = target_groups(urls, {"job": job})
    if groups:
        write_atomically(path, json.dumps(groups, indent=2) + "\n")
    else:
        path.unlink(missing_ok=True)


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
        self.add_urls({component: url})

    def add_urls(self, urls: dict[str, str]) -> None:
        """List endpoints given as ``http://`` URLs, by component (a cluster's)."""
        with self._lock:
            self.urls.update(urls)
            self._write()

    def remove(self, component: str) -> None:
        """Stop listing ``component`` (its process has ended)."""
        with self._lock:
            self.urls.pop(component, None)
            self._write()

    def _groups(self) -> list[dict[str, object]]:
        return target_groups(self.urls, {"job": "alertbench", "run": self.run.name})

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

    def check(self, timeout: float = 10.0) -> dict[str, dict[str, object]]:
        """Scrape every endpoint listed now once, and record what each answered.

        The record (``endpoints-checked.json`` in the run's folder, added to at
        every check) says for each component when it was scraped, at which URL,
        and how many series it served, or why it did not answer: proof that a
        Prometheus could have scraped it during the run.

        Returns
        -------
        dict
            This check's record, by component.
        """
        with self._lock:
            urls = dict(self.urls)

        def scrape(url: str) -> dict[str, object]:
            entry: dict[str, object] = {"url": url, "at": time.time()}
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    text = resp.read().decode("utf-8", "replace")
                entry["series"] = sum(
                    1 for line in text.splitlines() if line and not line.startswith("#")
                )
            except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
                entry["error"] = str(exc)
            return entry

        # All at once: the same instant of the run for every component.
        with ThreadPoolExecutor(max_workers=max(1, len(urls))) as pool:
            found = dict(zip(urls, pool.map(scrape, urls.values()), strict=True))
        path = self.run / CHECKED_FILE
        with self._lock:
            kept = json.loads(path.read_text()) if path.exists() else {}
            kept.update(found)
            write_atomically(path, json.dumps(kept, indent=2, sort_keys=True) + "\n")
        return found

    def close(self) -> None:
        """Stop serving, and take this run off the shared targets (its endpoints.json stays)."""
        for endpoint in self._served:
            endpoint.stop()
        with self._lock:
            self._write(leaving=True)
