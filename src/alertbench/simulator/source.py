"""The messages a stream is made of, encoded before the send path.

:class:`ReplaySource` holds the real alerts framed once in the chosen wire
format; :class:`SynthSource` makes unique clones on demand (a few tens of
microseconds each), so a 10-million-alert night needs no more memory than its
templates.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from alertbench.alerts.ids import alert_id
from alertbench.alerts.reader import Alert
from alertbench.alerts.synth import Cloner
from alertbench.alerts.wire import WireFormat

SECONDS_PER_DAY = 86400.0


@dataclass
class Message:
    """A Kafka message ready to send, and the id of the alert it carries."""

    key: bytes | None
    value: bytes
    alert_id: str | None = None


def in_observation_order(alerts: list[Alert]) -> list[Alert]:
    """Alerts sorted by observation time (ties by file and position, for a stable stream)."""
    return sorted(alerts, key=lambda a: (a.observed or 0.0, str(a.source), a.index))


class ReplaySource:
    """Real alerts, ordered by observation time, framed once.

    Parameters
    ----------
    alerts : list of Alert
        What to send.
    wire : WireFormat
        How to frame them.
    keyed : bool
        Key messages by object id (else no key).
    """

    def __init__(self, alerts: list[Alert], wire: WireFormat, *, keyed: bool = True) -> None:
        alerts = in_observation_order(alerts)
        self.messages = [
            Message(
                a.key.encode() if keyed else None, wire.frame(a.body, a.schema), alert_id(a.record)
            )
            for a in alerts
        ]
        self.observed = [a.observed for a in alerts]

    def __len__(self) -> int:
        return len(self.messages)

    def message(self, i: int) -> Message:
        """Message ``i`` of the stream (the source repeats when ``i`` passes its end)."""
        return self.messages[i % len(self.messages)]

    def replay_offsets(self) -> tuple[list[float], float]:
        """Seconds from the first observation to each alert's, and one pass's span."""
        return _offsets(self.observed)


class SynthSource:
    """Unique clones of template alerts, made on demand.

    Parameters
    ----------
    alerts : list of Alert
        The templates.
    wire : WireFormat
        How to frame clones.
    seed : int
        Same seed, same stream.
    keyed : bool
        Key messages by the clone's object id.
    first : int
        Number of the first clone: streams sent one after another with
        different ``first`` (warm-up, then load steps) never share an id.
    """

    def __init__(
        self,
        alerts: list[Alert],
        wire: WireFormat,
        *,
        seed: int = 0,
        keyed: bool = True,
        first: int = 0,
    ) -> None:
        alerts = in_observation_order(alerts)
        self.first = first
        self.cloner = Cloner([(a.schema, a.record) for a in alerts], seed=seed)
        self.wire = wire
        self.keyed = keyed
        self.observed = [a.observed for a in alerts]

    def __len__(self) -> int:
        return len(self.cloner.templates)

    def starting_at(self, first: int) -> SynthSource:
        """The same templates, numbering clones from ``first`` (shares the templates)."""
        other = copy.copy(self)
        other.first = first
        return other

    def message(self, i: int) -> Message:
        """Clone ``first + i``: unique for every ``i``."""
        g = self.first + i
        template = self.cloner.template_of(g)
        body, key, ident = template.clone(g, self.cloner.seed)
        return Message(
            key.encode() if self.keyed else None, self.wire.frame(body, template.schema), ident
        )

    def replay_offsets(self) -> tuple[list[float], float]:
        """Seconds from the first template's observation to each one's, and the span."""
        return _offsets(self.observed)


def _offsets(observed: list[float | None]) -> tuple[list[float], float]:
    known = [o for o in observed if o is not None]
    if not known:
        raise ValueError("no alert carries an observation time: replay is not possible")
    first = min(known)
    offsets = [((o if o is not None else first) - first) * SECONDS_PER_DAY for o in observed]
    # One pass spans the observations plus one mean gap, so loops do not overlap.
    span = max(offsets) + (max(offsets) / max(1, len(offsets) - 1))
    return offsets, span
