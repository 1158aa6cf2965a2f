"""When each alert is due: survey visits, a constant rate, real-time replay, or flat out.

Alert ``i`` of the stream has a due time (seconds after the stream's start)
and a visit number. Visits start on a wall-clock grid (visit ``v`` at
``v * interval``) whatever the previous visit took, as a survey's camera does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["visits", "rate", "replay", "max"]


@dataclass(frozen=True)
class Schedule:
    """How alerts are paced.

    Attributes
    ----------
    mode : {"visits", "rate", "replay", "max"}
        Visits of ``visit_size`` alerts every ``visit_interval`` s; ``rate``
        alerts per second; real observation times compressed ``replay_speed``
        times; or as fast as possible.
    visit_size : int
        Alerts per visit (Rubin: about 10,000).
    visit_interval : float
        Seconds between visit starts (Rubin: about 37).
    rate : float
        Alerts per second in ``rate`` mode.
    replay_speed : float
        Time compression in ``replay`` mode.
    """

    mode: Mode = "visits"
    visit_size: int = 10_000
    visit_interval: float = 37.0
    rate: float = 1000.0
    replay_speed: float = 1.0

    def __post_init__(self) -> None:
        if self.visit_size < 1:
            raise ValueError(f"visit size must be >= 1, not {self.visit_size}")
        if self.visit_interval <= 0 or self.rate <= 0 or self.replay_speed <= 0:
            raise ValueError("visit interval, rate and replay speed must be > 0")

    def visit(self, i: int) -> int:
        """Visit number of alert ``i`` (0 outside visit mode)."""
        return i // self.visit_size if self.mode == "visits" else 0

    def due(self, i: int, replay_offsets: list[float] | None = None, span: float = 0.0) -> float:
        """Seconds after the start at which alert ``i`` is due.

        Parameters
        ----------
        i : int
            Position in the stream.
        replay_offsets : list of float, optional
            For ``replay``: each source alert's observation time minus the
            first one's, in seconds, in stream order.
        span : float
            For ``replay``: seconds one pass over the source covers, so loops
            continue the timeline instead of starting over.
        """
        if self.mode == "visits":
            return self.visit(i) * self.visit_interval
        if self.mode == "rate":
            return i / self.rate
        if self.mode == "replay":
            if not replay_offsets:
                raise ValueError("replay needs the alerts' observation times")
            n = len(replay_offsets)
            return (replay_offsets[i % n] + (i // n) * span) / self.replay_speed
        return 0.0

    def describe(self) -> str:
        """One line for people."""
        if self.mode == "visits":
            return f"visits of {self.visit_size} alerts every {self.visit_interval:g} s"
        if self.mode == "rate":
            return f"{self.rate:g} alerts/s"
        if self.mode == "replay":
            return f"real observation times, {self.replay_speed:g}x faster"
        return "as fast as possible"
