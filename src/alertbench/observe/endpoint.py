"""A ``/metrics`` endpoint over HTTP for one registry, on a port of the caller's or a free one."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from alertbench.errors import ConfigError


@dataclass
class Endpoint:
    """A running endpoint: where it listens; :meth:`stop` closes it.

    Attributes
    ----------
    address, port : str, int
        Where it listens.
    """

    address: str
    port: int
    _server: Any = field(repr=False, default=None)
    _thread: threading.Thread | None = field(repr=False, default=None)

    @property
    def url(self) -> str:
        """``http://HOST:PORT/metrics``, with this machine's name for a wildcard address."""
        host = socket.gethostname() if self.address in ("0.0.0.0", "::") else self.address
        return f"http://{host}:{self.port}/metrics"

    @property
    def target(self) -> str:
        """``HOST:PORT`` as a Prometheus scrape config lists it."""
        return self.url.removeprefix("http://").removesuffix("/metrics")

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def serve(registry: CollectorRegistry, port: int = 0, address: str = "0.0.0.0") -> Endpoint:
    """Serve ``registry`` at ``/metrics`` on ``port`` (0: a free one) in a daemon thread.

    Raises
    ------
    ConfigError
        When the port cannot be listened on (taken, or privileged), naming it.
    """
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}; choose another "
            "--metrics-port (0 picks a free one)"
        ) from None
    return Endpoint(address, server.server_address[1], server, thread)
