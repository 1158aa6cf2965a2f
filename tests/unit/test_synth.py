"""Synthesising unique, valid alerts from real ones (Cloner)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import fastavro
import pytest

from alertbench.alerts.reader import alert_key
from alertbench.alerts.schema import Schema
from alertbench.alerts.synth import Cloner, SynthesisError

Templates = list[tuple[Schema, dict[str, Any]]]

N_CLONES = 2000
# 300 clone numbers spread over 0..1999 (every template, many times each).
SPREAD = [round(i * (N_CLONES - 1) / 299) for i in range(300)]
ZTF_CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
RUBIN_CUTOUTS = ("cutoutDifference", "cutoutScience", "cutoutTemplate")


def _templates(files: list[Path]) -> Templates:
    out: Templates = []
    schemas: dict[str, Schema] = {}
    for path in files:
        with path.open("rb") as fo:
            reader = fastavro.reader(fo)
            records = list(reader)
        schema = Schema(reader.writer_schema)
        schema = schemas.setdefault(schema.fingerprint + schema.survey.version, schema)
        out += [(schema, record) for record in records]
    return out


@pytest.fixture(scope="module")
def ztf_templates(alert_files: list[Path]) -> Templates:
    templates = _templates(alert_files[:100])
    assert len(templates) == 100
    return templates


@pytest.fixture(scope="module")
def rubin_templates(shared_data: Path) -> Templates:
    templates = _templates(sorted((shared_data / "lsst" / "lsstcam-20250906-v9.0").glob("*.avro")))
    assert len(templates) == 100
    return templates


@pytest.fixture(scope="module")
def simulated_templates(shared_data: Path) -> Templates:
    """Simulated Rubin v9.0 alerts: unlike early LSSTCam ones, many carry a history."""
    files = sorted((shared_data / "lsst" / "simulated-v9.0").glob("*.avro"))[:100]
    return _templates(files)


@pytest.fixture(scope="module")
def ztf_cloner(ztf_templates: Templates) -> Cloner:
    return Cloner(ztf_templates, seed=7)


@pytest.fixture(scope="module")
def rubin_cloner(rubin_templates: Templates) -> Cloner:
    return Cloner(rubin_templates, seed=7)


@pytest.fixture(scope="module")
def simulated_cloner(simulated_templates: Templates) -> Cloner:
    return Cloner(simulated_templates, seed=7)


@pytest.fixture(scope="module")
def ztf_records(ztf_cloner: Cloner) -> dict[int, dict[str, Any]]:
    """Clones of SPREAD built field by field (Cloner.record), made once."""
    return {g: ztf_cloner.record(g) for g in SPREAD}


@pytest.fixture(scope="module")
def rubin_records(rubin_cloner: Cloner) -> dict[int, dict[str, Any]]:
    return {g: rubin_cloner.record(g) for g in SPREAD}


@pytest.fixture(scope="module")
def simulated_records(simulated_cloner: Cloner) -> dict[int, dict[str, Any]]:
    return {g: simulated_cloner.record(g) for g in SPREAD}


@pytest.fixture(scope="module")
def ztf_clones(ztf_cloner: Cloner) -> list[tuple[bytes, str]]:
    return [ztf_cloner.clone(g) for g in range(N_CLONES)]


@pytest.fixture(scope="module")
def rubin_clones(rubin_cloner: Cloner) -> list[tuple[bytes, str]]:
    return [rubin_cloner.clone(g) for g in range(N_CLONES)]


def _same(a: Any, b: Any) -> bool:
    """Equal records, NaN included (Rubin alerts hold NaNs; NaN != NaN)."""
    return a == b or repr(a) == repr(b)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """An Avro long (zig-zag varint) at ``at``: its value and the next offset."""
    shift = n = 0
    while True:
        byte = data[at]
        at += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (n >> 1) ^ -(n & 1), at


def _string(data: bytes, at: int) -> tuple[str, int]:
    size, at = _varint(data, at)
    return data[at : at + size].decode(), at + size


def _ztf_ids(body: bytes) -> tuple[str, int]:
    """objectId and candid: ZTF's 3rd and 4th fields (after schemavsn, publisher)."""
    _, at = _string(body, 0)
    _, at = _string(body, at)
    object_id, at = _string(body, at)
    candid, _ = _varint(body, at)
    return object_id, candid


def _wrap(degrees: float) -> float:
    """An RA difference in [-180, 180)."""
    return (degrees + 180.0) % 360.0 - 180.0


# --- bodies are the records ----------------------------------------------------------------


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_clone_body_is_its_record(survey: str, request: pytest.FixtureRequest) -> None:
    cloner: Cloner = request.getfixturevalue(f"{survey}_cloner")
    records: dict[int, dict[str, Any]] = request.getfixturevalue(f"{survey}_records")
    for n, g in enumerate(SPREAD):
        schema = cloner.template_of(g).schema
        record = records[g]
        body = cloner.body(g)
        assert body == schema.encode(record), g
        assert _same(schema.decode(body), record), g
        if n % 20 == 0:  # validation costs ~5 ms a ZTF alert
            schema.validate(schema.decode(body))
    assert cloner.template_of(1234) is cloner.templates[34]


def test_ztf_helpers_read_real_bodies(ztf_templates: Templates) -> None:
    for schema, record in ztf_templates[:5]:
        assert _ztf_ids(schema.encode(record)) == (record["objectId"], record["candid"])


# --- unique ids ----------------------------------------------------------------------------


def test_ztf_clone_ids_are_unique_and_new(
    ztf_clones: list[tuple[bytes, str]],
    ztf_templates: Templates,
    ztf_records: dict[int, dict[str, Any]],
) -> None:
    ids = [_ztf_ids(body) for body, *_ in ztf_clones]
    object_ids = [o for o, _ in ids]
    candids = [c for _, c in ids]
    assert len(set(object_ids)) == N_CLONES
    assert len(set(candids)) == N_CLONES
    real_objects = {r["objectId"] for _, r in ztf_templates}
    real_candids = {r["candid"] for _, r in ztf_templates}
    assert real_objects.isdisjoint(object_ids)
    assert real_candids.isdisjoint(candids)
    # Clone ids are drawn above the real ids of the same encoded length.
    assert min(candids) > max(real_candids)
    assert all(len(o) == 12 and o.startswith("ZTF26") for o in object_ids)
    for g in SPREAD:
        record = ztf_records[g]
        assert record["candidate"]["candid"] == record["candid"] == candids[g]
        assert record["objectId"] == object_ids[g]


def test_rubin_clone_ids_are_unique_and_new(
    rubin_clones: list[tuple[bytes, str]],
    rubin_templates: Templates,
    rubin_records: dict[int, dict[str, Any]],
) -> None:
    # diaSourceId is the first field of lsst.v9_0.alert.
    ids = [_varint(body, 0)[0] for body, *_ in rubin_clones]
    assert len(set(ids)) == N_CLONES
    real = {r["diaSourceId"] for _, r in rubin_templates}
    assert real.isdisjoint(ids)
    assert min(ids) > max(real)
    for g in SPREAD:
        record = rubin_records[g]
        assert record["diaSourceId"] == record["diaSource"]["diaSourceId"] == ids[g]
        if record["diaObject"] is not None:
            assert record["diaObject"]["diaObjectId"] == record["diaSource"]["diaObjectId"]


# --- times and positions -------------------------------------------------------------------


def test_ztf_times_shift_together(
    ztf_cloner: Cloner, ztf_records: dict[int, dict[str, Any]]
) -> None:
    for g in SPREAD:
        template = ztf_cloner.template_of(g).record
        clone = ztf_records[g]
        shift = clone["candidate"]["jd"] - template["candidate"]["jd"]
        assert 0.0 <= shift <= 1.0, g
        for f in ("jdstarthist", "jdendhist"):
            if template["candidate"][f] is not None:
                assert clone["candidate"][f] - template["candidate"][f] == pytest.approx(
                    shift, abs=1e-8
                )
        history = template["prv_candidates"] or []
        assert len(clone["prv_candidates"] or []) == len(history)
        for old, new in zip(history, clone["prv_candidates"] or [], strict=True):
            assert new["jd"] - old["jd"] == pytest.approx(shift, abs=1e-8), g
            # Not moved in time: ids of the history stay the real ones.
            assert new["candid"] == old["candid"]


def test_rubin_times_shift_together(
    simulated_cloner: Cloner, simulated_records: dict[int, dict[str, Any]]
) -> None:
    histories = 0
    for g in SPREAD:
        template = simulated_cloner.template_of(g).record
        clone = simulated_records[g]
        shift = clone["diaSource"]["midpointMjdTai"] - template["diaSource"]["midpointMjdTai"]
        assert 0.0 <= shift <= 1.0
        for field in ("prvDiaSources", "prvDiaForcedSources"):
            for old, new in zip(template[field] or [], clone[field] or [], strict=True):
                histories += 1
                assert new["midpointMjdTai"] - old["midpointMjdTai"] == pytest.approx(
                    shift, abs=1e-9
                )
    assert histories > 50


def _positions(record: dict[str, Any], survey: str) -> tuple[dict[str, Any], list[dict]]:
    """The detection and every history entry (of ZTF or Rubin) that has a position."""
    if survey == "ztf":
        history = record["prv_candidates"] or []
        return record["candidate"], [h for h in history if h["ra"] is not None]
    history = [*(record["prvDiaSources"] or []), *(record["prvDiaForcedSources"] or [])]
    if record["diaObject"] is not None:
        history.append(record["diaObject"])
    return record["diaSource"], history


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_positions_move_by_at_most_half_a_degree(
    survey: str, request: pytest.FixtureRequest
) -> None:
    cloner: Cloner = request.getfixturevalue(f"{survey}_cloner")
    records: dict[int, dict[str, Any]] = request.getfixturevalue(f"{survey}_records")
    for g in SPREAD:
        old, _ = _positions(cloner.template_of(g).record, survey)
        new, _ = _positions(records[g], survey)
        ddec = new["dec"] - old["dec"]
        assert abs(ddec) <= 0.5, g
        assert -90.0 <= new["dec"] <= 90.0
        # Half a degree on the sky: RA moves by up to 0.5 / cos(dec) degrees.
        dra = _wrap(new["ra"] - old["ra"])
        assert abs(dra) * math.cos(math.radians(old["dec"])) <= 0.5 + 1e-9, g
        assert 0.0 <= new["ra"] < 360.0
        assert (dra, ddec) != (0.0, 0.0)


@pytest.mark.parametrize("survey", ["ztf", "simulated"])
def test_history_dec_moves_with_the_detection(survey: str, request: pytest.FixtureRequest) -> None:
    cloner: Cloner = request.getfixturevalue(f"{survey}_cloner")
    records: dict[int, dict[str, Any]] = request.getfixturevalue(f"{survey}_records")
    kind = "ztf" if survey == "ztf" else "rubin"
    checked = 0
    for g in SPREAD:
        old, old_history = _positions(cloner.template_of(g).record, kind)
        new, new_history = _positions(records[g], kind)
        ddec = new["dec"] - old["dec"]
        for before, after in zip(old_history, new_history, strict=True):
            assert after["dec"] - before["dec"] == pytest.approx(ddec, abs=1e-9), g
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("survey", ["ztf", "simulated"])
def test_history_ra_moves_with_the_detection(survey: str, request: pytest.FixtureRequest) -> None:
    """Every history position moves by the detection's RA offset (a rigid shift).

    synth.Template.clone_values divides the RA jitter by cos(dec) of each entry's
    *own* declination, so history entries move by a different RA offset than the
    detection and the history's geometry relative to the detection changes.
    """
    cloner: Cloner = request.getfixturevalue(f"{survey}_cloner")
    records: dict[int, dict[str, Any]] = request.getfixturevalue(f"{survey}_records")
    kind = "ztf" if survey == "ztf" else "rubin"
    worst = 0.0
    for g in SPREAD:
        old, old_history = _positions(cloner.template_of(g).record, kind)
        new, new_history = _positions(records[g], kind)
        dra = _wrap(new["ra"] - old["ra"])
        for before, after in zip(old_history, new_history, strict=True):
            worst = max(worst, abs(_wrap(after["ra"] - before["ra"]) - dra))
    assert worst <= 1e-9, f"a history RA moved {worst * 3.6e6:.3g} mas off the detection's"


# --- cutouts, determinism, keys ------------------------------------------------------------


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_cutouts_are_the_templates_bytes(survey: str, request: pytest.FixtureRequest) -> None:
    cloner: Cloner = request.getfixturevalue(f"{survey}_cloner")
    fields = list(ZTF_CUTOUTS if survey == "ztf" else RUBIN_CUTOUTS)
    for g in SPREAD[::3]:
        template = cloner.template_of(g)
        tail = template.schema.tail_encoder(fields).encode_tail(template.record)
        body = cloner.body(g)
        assert body.endswith(tail), g
        clone = template.schema.decode(body)
        for f in fields:
            assert clone[f] == template.record[f], (g, f)
    # Cutouts are real: ZTF stamps are gzipped FITS.
    if survey == "ztf":
        stamp = cloner.record(0)["cutoutScience"]["stampData"]
        assert stamp[:2] == b"\x1f\x8b"


def test_same_seed_same_clones(ztf_templates: Templates, rubin_templates: Templates) -> None:
    for templates in (ztf_templates[:10], rubin_templates[:10]):
        a, b = Cloner(templates, seed=7), Cloner(templates, seed=7)
        other = Cloner(templates, seed=8)
        for g in (0, 1, 9, 10, 11, 123, 1999):
            assert a.body(g) == b.body(g)
            assert a.clone(g) == b.clone(g)
            assert other.body(g) != a.body(g)
        assert list(a.bodies(5, 30, 5)) == [(g, b.body(g)) for g in (5, 10, 15, 20, 25)]


def test_clone_order_does_not_matter(ztf_templates: Templates) -> None:
    """Clone g depends only on the seed and g, whichever process makes it and when."""
    forward = Cloner(ztf_templates[:10], seed=7)
    backward = Cloner(ztf_templates[:10], seed=7)
    made = {g: forward.body(g) for g in range(40)}
    assert {g: backward.body(g) for g in reversed(range(40))} == made


def test_ztf_clone_key_is_its_object_id(
    ztf_clones: list[tuple[bytes, str]],
    ztf_cloner: Cloner,
    ztf_records: dict[int, dict[str, Any]],
) -> None:
    for g, (body, key, _id) in enumerate(ztf_clones):
        assert key == _ztf_ids(body)[0], g
    assert ztf_clones[0][1] == "ZTF26aaaaaaa"
    assert ztf_clones[27][1] == "ZTF26aaaaabb"
    for g in SPREAD:
        assert ztf_cloner.clone(g)[1] == ztf_records[g]["objectId"] == alert_key(ztf_records[g])


def test_rubin_clone_key_is_its_object_id(
    rubin_clones: list[tuple[bytes, str]], rubin_cloner: Cloner
) -> None:
    with_object = 0
    for g in SPREAD:
        body, key, _id = rubin_clones[g]
        record = rubin_cloner.template_of(g).schema.decode(body)
        assert key == alert_key(record), g
        if record["diaObject"] is not None:
            with_object += 1
            assert key == str(record["diaObject"]["diaObjectId"]), g
    assert with_object > 250


def test_rubin_solar_system_clones_keep_no_dia_object(rubin_cloner: Cloner) -> None:
    """A solar-system alert (no diaObject, diaSource.diaObjectId 0) stays one.

    The schema: "each diaSource will be associated with either a diaObject or
    ssObject". synth._source_slots treats diaObjectId 0 as an id and gives the clone
    a made-up diaObjectId (48 + g), so it claims both a diaObject and an ssObject.
    """
    solar = [i for i, t in enumerate(rubin_cloner.templates) if t.record["diaObject"] is None]
    assert len(solar) == 4
    for i in solar:
        template = rubin_cloner.templates[i].record
        assert template["diaSource"]["diaObjectId"] == 0
        assert template["diaSource"]["ssObjectId"] > 0
        for g in (i, i + 100, i + 1900):
            clone = rubin_cloner.record(g)
            assert clone["diaObject"] is None
            assert clone["diaSource"]["ssObjectId"] == template["diaSource"]["ssObjectId"]
            assert clone["diaSource"]["diaObjectId"] == 0, g


# --- fast path and errors ------------------------------------------------------------------


def test_ztf_templates_take_the_patched_path(ztf_cloner: Cloner) -> None:
    for template in ztf_cloner.templates:
        assert template.offsets is not None
        assert len(template.offsets) == len(template.slots) == len(template.widths)
        assert len(set(template.offsets)) == len(template.offsets)


def test_rubin_object_templates_take_the_patched_path(rubin_cloner: Cloner) -> None:
    for template in rubin_cloner.templates:
        if template.record["diaObject"] is not None:
            assert template.offsets is not None


def test_no_templates() -> None:
    with pytest.raises(SynthesisError, match="no template alerts to synthesise from"):
        Cloner([])


def test_non_alert_template() -> None:
    schema = Schema(
        {"type": "record", "name": "my.thing", "fields": [{"name": "n", "type": "int"}]}
    )
    with pytest.raises(SynthesisError, match=r"cannot synthesise alerts of schema my\.thing"):
        Cloner([(schema, {"n": 1})])


def test_every_rubin_version_can_be_cloned(shared_data: Path) -> None:
    files = sorted((shared_data / "lsst" / "fake-by-version").glob("*.avro"))
    assert len(files) == 15
    for path in files:
        ((schema, template),) = _templates([path])
        cloner = Cloner([(schema, template)], seed=3)
        id_field = "diaSourceId" if "diaSourceId" in template else "alertId"
        ids = set()
        for g in (0, 1, 17, 1999):
            body = cloner.body(g)
            record = schema.decode(body)
            assert _same(record, cloner.record(g)), path.name
            assert body == schema.encode(cloner.record(g)), path.name
            schema.validate(record)
            assert record[id_field] != template[id_field]
            ids.add(record[id_field])
            source = record["diaSource"]
            time = "midpointMjdTai" if "midpointMjdTai" in source else "midPointTai"
            assert 0.0 <= source[time] - template["diaSource"][time] <= 1.0
        assert len(ids) == 4, path.name


@pytest.mark.parametrize("which", ["ztf", "rubin", "simulated"])
def test_a_clone_names_its_own_alert_id(which, request) -> None:
    from alertbench.alerts.ids import alert_id

    cloner = request.getfixturevalue(f"{which}_cloner")
    records = request.getfixturevalue(f"{which}_records")
    seen = set()
    for g in SPREAD[:60]:
        clone = cloner.clone(g)
        assert clone.alert_id is not None
        assert clone.alert_id == alert_id(records[g])
        seen.add(clone.alert_id)
    assert len(seen) == 60
