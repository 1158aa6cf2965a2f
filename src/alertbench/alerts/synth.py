"""Turn a few thousand real alerts into any number of unique, valid ones.

Each clone of a template alert gets new alert and object ids, a jittered
position and shifted times; its history moves with it (same time shift, same
offset on the sky) and its cutouts are reused. Clone ``g`` depends only on the
seed and ``g``, so producer processes can each make their share and the stream
is the same whoever makes it.

Speed: re-encoding a ZTF alert (thirty history entries of a hundred fields)
costs about a millisecond. Every field a clone changes has a fixed-width
encoding (doubles; ids and names chosen with the template's encoded length),
so a clone is the template's encoded body with those bytes overwritten. The
offsets are found once per template by encoding it with sentinel values.
:meth:`Cloner.record` builds the same clone the slow way, for checking.
"""

from __future__ import annotations

import copy
import math
import random
import string
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from alertbench.alerts.ids import ID_PATHS
from alertbench.alerts.reader import alert_key
from alertbench.alerts.schema import Schema, zigzag

Path_ = tuple[str | int, ...]

JITTER_DEG = 0.5  # positions move by up to half a degree
SHIFT_DAYS = 1.0  # times move forward by up to a day


@dataclass(frozen=True)
class Slot:
    """One field a clone changes: where it is in the record and how it is encoded."""

    path: Path_
    kind: str  # "double", "long" or "string"
    role: str  # "time", "ra", "dec", "id", "object"


class SynthesisError(ValueError):
    """Alerts of this schema cannot be cloned."""


def _get(record: Any, path: Path_) -> Any:
    for key in path:
        record = record[key]
    return record


def _set(record: Any, path: Path_, value: Any) -> None:
    for key in path[:-1]:
        record = record[key]
    record[path[-1]] = value


def _object_name(g: int) -> str:
    letters = []
    for _ in range(7):
        g, r = divmod(g, 26)
        letters.append(string.ascii_lowercase[r])
    return "ZTF" + "26" + "".join(reversed(letters))


def _slots_ztf(rec: dict[str, Any]) -> list[Slot]:
    slots = [Slot(("objectId",), "string", "object"), Slot(("candid",), "long", "id")]
    slots.append(Slot(("candidate", "candid"), "long", "id"))
    for f in ("jd", "jdstarthist", "jdendhist"):
        if rec["candidate"].get(f) is not None:
            slots.append(Slot(("candidate", f), "double", "time"))
    slots += [
        Slot(("candidate", "ra"), "double", "ra"),
        Slot(("candidate", "dec"), "double", "dec"),
    ]
    for i, prv in enumerate(rec.get("prv_candidates") or []):
        slots.append(Slot(("prv_candidates", i, "jd"), "double", "time"))
        for f in ("ra", "dec"):
            if prv.get(f) is not None:
                slots.append(Slot(("prv_candidates", i, f), "double", f))
    for i, fp in enumerate(rec.get("fp_hists") or []):
        if fp.get("jd") is not None:
            slots.append(Slot(("fp_hists", i, "jd"), "double", "time"))
    return slots


def _source_slots(src: dict[str, Any], prefix: Path_) -> list[Slot]:
    """Slots of one Rubin source-like record; field names changed across schema versions."""
    slots = []
    for f in ("midpointMjdTai", "midPointTai"):
        if src.get(f) is not None:
            slots.append(Slot((*prefix, f), "double", "time"))
    if src.get("ra") is not None:
        slots.append(Slot((*prefix, "ra"), "double", "ra"))
    for f in ("dec", "decl"):
        if src.get(f) is not None:
            slots.append(Slot((*prefix, f), "double", "dec"))
    # 0 means "no diaObject" (a solar-system source is linked to an ssObject instead).
    if src.get("diaObjectId"):
        slots.append(Slot((*prefix, "diaObjectId"), "long", "object"))
    return slots


def _slots_lsst(rec: dict[str, Any]) -> list[Slot]:
    slots = [Slot((f,), "long", "id") for f in ("diaSourceId", "alertId") if rec.get(f) is not None]
    source = rec.get("diaSource") or {}
    if source.get("diaSourceId") is not None:
        slots.append(Slot(("diaSource", "diaSourceId"), "long", "id"))
    if not slots:
        raise SynthesisError("Rubin alert without diaSourceId/alertId: cannot make unique ids")
    slots += _source_slots(source, ("diaSource",))
    if rec.get("diaObject") is not None:
        slots += _source_slots(rec["diaObject"], ("diaObject",))
    for hist in ("prvDiaSources", "prvDiaForcedSources"):
        for i, src in enumerate(rec.get(hist) or []):
            slots += _source_slots(src, (hist, i))
    return slots


def _clone_id(old: int, g: int) -> int:
    """Id of clone ``g`` for a template id ``old``: unique, and as long as ``old`` once encoded.

    Avro longs are zig-zag varints; ids drawn from the upper quarter of the
    template id's length class keep the encoded length (so clones can be
    patched in place) and stay clear of the real ids below them.
    """
    width = len(zigzag(old))
    lo = 0 if width == 1 else 1 << (7 * (width - 1) - 1)
    hi = 1 << (7 * width - 1)
    return lo + 3 * (hi - lo) // 4 + g


def _encoded(kind: str, value: Any) -> bytes:
    if kind == "double":
        return struct.pack("<d", value)
    if kind == "long":
        return zigzag(value)
    data = value.encode()
    return zigzag(len(data)) + data


class Clone(NamedTuple):
    """One clone: its encoded body, object id (Kafka key) and alert id."""

    body: bytes
    key: str
    alert_id: str | None


class Template:
    """One real alert prepared for cloning.

    Parameters
    ----------
    schema : Schema
        Its writer schema.
    record : dict
        The decoded alert.
    """

    def __init__(self, schema: Schema, record: dict[str, Any]) -> None:
        self.schema = schema
        self.record = record
        survey = schema.survey.survey
        if survey == "ztf":
            self.slots = _slots_ztf(record)
        elif survey == "lsst":
            self.slots = _slots_lsst(record)
        else:
            raise SynthesisError(f"cannot synthesise alerts of schema {schema.name}")
        self.body = schema.encode(record)
        self.offsets = self._find_offsets()

    def _sentinel(self, slot: Slot, rng: random.Random, g: int) -> Any:
        # A value of the same encoded length as every clone's value for this slot.
        if slot.kind == "double":
            return rng.uniform(1e200, 1e300)
        if slot.kind == "string":
            return _object_name(rng.randrange(26**7))
        return _clone_id(_get(self.record, slot.path), g + rng.randrange(1 << 20))

    def _find_offsets(self) -> list[int] | None:
        """Byte offset of each slot in ``body``, or None if they cannot be patched."""
        rng = random.Random(0x5E7)
        marked = copy.deepcopy(self.record)
        marks = []
        for slot in self.slots:
            value = self._sentinel(slot, rng, 0)
            _set(marked, slot.path, value)
            marks.append(_encoded(slot.kind, value))
        for slot in self.slots:
            old = _get(self.record, slot.path)
            if slot.kind != "double" and len(_encoded(slot.kind, old)) != len(
                _encoded(slot.kind, _get(marked, slot.path))
            ):
                return None  # length would change: clones take the slow path
        body = self.schema.encode(marked)
        if len(body) != len(self.body):
            return None
        offsets = []
        for mark in marks:
            at = body.find(mark)
            if at < 0 or body.find(mark, at + 1) >= 0:
                return None
            offsets.append(at)
        self.widths = [len(m) for m in marks]
        return offsets

    def _primary_dec(self) -> float:
        """Declination of the alert's own detection: the one every position moves with."""
        detection = self.record.get("candidate") or self.record.get("diaSource") or {}
        dec = detection.get("dec", detection.get("decl"))
        return float(dec) if dec is not None else 0.0

    def clone_values(self, g: int, seed: int) -> list[Any]:
        """The new value of every slot for clone number ``g``."""
        rng = random.Random(seed * 1_000_003 + g)
        shift = rng.uniform(0.0, SHIFT_DAYS)
        ddec = rng.uniform(-JITTER_DEG, JITTER_DEG)
        # One RA offset for the detection and its whole history, scaled at the
        # detection's declination, so the history moves with it exactly.
        dra = rng.uniform(-JITTER_DEG, JITTER_DEG) / math.cos(
            math.radians(max(-89.0, min(89.0, self._primary_dec())))
        )
        out = []
        for slot in self.slots:
            old = _get(self.record, slot.path)
            if slot.role == "time":
                out.append(old + shift)
            elif slot.role == "dec":
                out.append(max(-90.0, min(90.0, old + ddec)))
            elif slot.role == "ra":
                out.append((old + dra) % 360.0)
            elif slot.kind == "string":
                out.append(_object_name(g))
            else:
                out.append(_clone_id(old, g))
        return out

    def body_of(self, g: int, seed: int) -> bytes:
        """The encoded body of clone ``g``."""
        return self.clone(g, seed)[0]

    def clone(self, g: int, seed: int) -> Clone:
        """Clone ``g``: its encoded body, object id (its natural Kafka key) and alert id."""
        values = self.clone_values(g, seed)
        key = next(
            (str(v) for slot, v in zip(self.slots, values, strict=True) if slot.role == "object"),
            None,
        )
        if key is None:
            # No object id of its own (a solar-system source keeps its ssObjectId):
            # the template's key, unless that was one of the ids every clone renews.
            key = alert_key(self.record)
            renewed = {str(_get(self.record, s.path)) for s in self.slots if s.role == "id"}
            if key in renewed:
                key = str(values[0])
        ids = {s.path: v for s, v in zip(self.slots, values, strict=True) if s.role == "id"}
        # The same rule as alerts.ids.alert_id applies to the clone's record.
        ident = next((str(ids[p]) for p in ID_PATHS if p in ids), None)
        return Clone(self._body(values), key, ident)

    def _body(self, values: list[Any]) -> bytes:
        if self.offsets is None:
            return self.schema.encode(self._apply(values))
        buf = bytearray(self.body)
        for slot, at, width, value in zip(
            self.slots, self.offsets, self.widths, values, strict=True
        ):
            enc = _encoded(slot.kind, value)
            if len(enc) != width:  # an id outgrew its class: encode this clone in full
                return self.schema.encode(self._apply(values))
            buf[at : at + width] = enc
        return bytes(buf)

    def _apply(self, values: list[Any]) -> dict[str, Any]:
        rec = copy.deepcopy(self.record)
        for slot, value in zip(self.slots, values, strict=True):
            _set(rec, slot.path, value)
        return rec

    def record_of(self, g: int, seed: int) -> dict[str, Any]:
        """Clone ``g`` as a record, built field by field (the reference for ``body_of``)."""
        return self._apply(self.clone_values(g, seed))


class Cloner:
    """Makes unique alerts from templates, deterministically.

    Parameters
    ----------
    templates : list of (Schema, dict)
        Real alerts and their schemas.
    seed : int
        Same seed, same stream.

    Clone ``g`` is made from template ``g % len(templates)``.
    """

    def __init__(self, templates: list[tuple[Schema, dict[str, Any]]], seed: int = 0) -> None:
        if not templates:
            raise SynthesisError("no template alerts to synthesise from")
        self.templates = [Template(s, r) for s, r in templates]
        self.seed = seed

    def template_of(self, g: int) -> Template:
        """The template clone ``g`` is made from."""
        return self.templates[g % len(self.templates)]

    def body(self, g: int) -> bytes:
        """Encoded body of clone ``g``."""
        return self.template_of(g).body_of(g, self.seed)

    def clone(self, g: int) -> Clone:
        """Clone ``g``: encoded body, object id and alert id."""
        return self.template_of(g).clone(g, self.seed)

    def record(self, g: int) -> dict[str, Any]:
        """Clone ``g`` as a record."""
        return self.template_of(g).record_of(g, self.seed)

    def bodies(self, start: int, stop: int, step: int = 1) -> Iterator[tuple[int, bytes]]:
        """``(g, body)`` for clones ``start, start+step, ...`` below ``stop``."""
        for g in range(start, stop, step):
            yield g, self.body(g)
