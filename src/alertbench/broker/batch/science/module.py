"""The plug-in interface of a science module, and how modules run over a batch of alerts.

A module declares the columns it reads and the columns (with Spark SQL
types) it adds, and is a function of a batch of alerts: a pandas DataFrame of
its ``reads`` (or a ``pyarrow.Table`` when ``arrow=True``) returning a
mapping of its ``adds`` to arrays. :func:`run_modules` applies modules in
order to Arrow batches inside the tasks, so a later module may read what an
earlier one added; a module that raises on a batch leaves nulls in its
columns for that batch, and the batch's rows name it in ``science_errors``.

What real brokers need beyond that, each taken from one:

- ``setup(options) -> state`` runs once per worker process (catalogue
  indexes, ONNX sessions), and ``fn(batch, state)`` gets its result: BOOM
  loads its models once and shares them, where Fink's processors reload per
  batch.
- ``applies(inputs) -> mask`` chooses the rows a module works on (Fink runs
  its classifiers after cuts); the others get nulls.
- ``scope = "new-object"`` computes a row once per object and serves the
  object's later alerts from a per-worker cache: a static cross-match need
  not run again for a known object (BOOM, AMPEL's ``select="first"``). The
  first alert of the object that a worker meets decides; on several workers
  that is one of the object's alerts, not always the same.
- ``requires`` names modules whose outputs it reads, checked when modules
  resolve; ``surveys`` names the surveys it serves.

Every module's rows in, rows it computed and seconds are counted per batch
(:class:`ScienceStats`), so a benchmark can say what each module cost.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from alertbench.broker.batch.science.arrow import arrow_type

#: Objects whose results a ``new-object`` module keeps per worker (oldest dropped
#: first): a night of Rubin brings a few million, each costing a few hundred bytes.
OBJECT_CACHE_SIZE = 2_000_000


@dataclass
class ScienceModule:
    """One science module.

    Attributes
    ----------
    name : str
        Its name in configuration.
    reads : list of str
        Columns it needs.
    adds : dict of str to str
        Columns it adds and their Spark SQL types (``double``, ``boolean``, ``int``, ``string``...).
    fn : callable
        ``fn(batch) -> mapping of column -> array``, or ``fn(batch, state)``
        with ``setup``; ``batch`` is a pandas DataFrame of ``reads``, or a
        ``pyarrow.Table`` if ``arrow``.
    arrow : bool
        Pass Arrow instead of pandas (for nested columns such as histories).
    options : dict
        Settings handed to ``setup`` (a catalogue's path, a radius).
    setup : callable, optional
        ``setup(options) -> state``, called once per worker process.
    files : callable, optional
        ``files(options) -> paths`` the module cannot run without; checked
        when modules resolve, on the driver, so that a missing catalogue or
        model is refused before the stream starts.
    applies : callable, optional
        ``applies(inputs) -> boolean array`` over the Arrow table of ``reads``:
        the rows it works on. Default: every row.
    scope : {"alert", "new-object"}
        ``new-object``: compute once per ``object_key`` (per worker) and give
        the object's later alerts the same values.
    object_key : str
        The column naming an alert's object (``objectId``, ``diaObjectId``).
    requires : list of str
        Modules that must run before this one (it reads their columns).
    surveys : tuple of str
        The surveys it serves (``ztf``, ``lsst``); empty: any.
    """

    name: str
    reads: list[str]
    adds: dict[str, str]
    fn: Callable[..., Any]
    arrow: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    setup: Callable[[dict[str, Any]], Any] | None = None
    files: Callable[[dict[str, Any]], list[Path]] | None = None
    applies: Callable[[pa.Table], Any] | None = None
    scope: Literal["alert", "new-object"] = "alert"
    object_key: str = "objectId"
    requires: list[str] = field(default_factory=list)
    surveys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.scope not in ("alert", "new-object"):
            raise ValueError(f"module {self.name}: scope must be 'alert' or 'new-object'")
        if self.scope == "new-object" and self.object_key not in self.reads:
            raise ValueError(
                f"module {self.name}: a new-object module reads its key {self.object_key}"
            )

    def serves(self, survey: str) -> bool:
        """Whether the module applies to alerts of ``survey``."""
        return not self.surveys or survey in self.surveys


def science_module(
    name: str,
    *,
    reads: list[str],
    adds: dict[str, str],
    arrow: bool = False,
    **settings: Any,
) -> Callable[[Callable[..., Any]], ScienceModule]:
    """Decorator turning a vectorised function into a :class:`ScienceModule`.

    ``settings`` are the other fields of :class:`ScienceModule` (``setup``,
    ``applies``, ``scope``, ``requires``, ``surveys``...).
    """

    def wrap(fn: Callable[..., Any]) -> ScienceModule:
        return ScienceModule(name=name, reads=reads, adds=adds, fn=fn, arrow=arrow, **settings)

    return wrap


# One state per module and options per worker process: Spark reuses its Python
# workers, so a catalogue index is built once, not once per batch.
_STATES: dict[tuple[str, str], Any] = {}
_OBJECTS: dict[tuple[str, str], OrderedDict] = {}


def _key(m: ScienceModule) -> tuple[str, str]:
    return m.name, repr(sorted(m.options.items()))


def worker_state(m: ScienceModule) -> Any:
    """The module's state in this process, made by its ``setup`` on first use."""
    key = _key(m)
    if key not in _STATES:
        _STATES[key] = m.setup(dict(m.options)) if m.setup is not None else None
    return _STATES[key]


@dataclass
class ModuleCost:
    """What one module did: rows it was given, rows it computed, seconds, batches that failed.

    ``seconds`` is its work on batches; ``setup_seconds`` the once-per-worker
    loading (a catalogue's index, a model) that a running broker pays once.
    """

    rows: int = 0
    processed: int = 0
    seconds: float = 0.0
    failed: int = 0
    setup_seconds: float = 0.0


@dataclass
class ScienceStats:
    """Per-module costs over some batches, in the order the modules ran."""

    costs: dict[str, ModuleCost] = field(default_factory=dict)

    def add(self, name: str, *, rows: int, processed: int, seconds: float, failed: bool) -> None:
        """Count one module's work on one batch."""
        cost = self.costs.setdefault(name, ModuleCost())
        cost.rows += rows
        cost.processed += processed
        cost.seconds += seconds
        cost.failed += int(failed)

    def add_setup(self, name: str, seconds: float) -> None:
        """Count the time one module's ``setup`` took in this worker."""
        self.costs.setdefault(name, ModuleCost()).setup_seconds += seconds

    def table(self) -> pa.Table:
        """The costs as a table, one row per module.

        Columns ``module, rows, processed, seconds, failed, setup_seconds``.
        """
        names = list(self.costs)
        costs = [self.costs[n] for n in names]
        return pa.table(
            {
                "module": pa.array(names, pa.string()),
                "rows": pa.array([c.rows for c in costs], pa.int64()),
                "processed": pa.array([c.processed for c in costs], pa.int64()),
                "seconds": pa.array([c.seconds for c in costs], pa.float64()),
                "failed": pa.array([c.failed for c in costs], pa.int64()),
                "setup_seconds": pa.array([c.setup_seconds for c in costs], pa.float64()),
            }
        )


def output_schema(input_schema, modules: list[ScienceModule]):
    """Arrow schema of the science rows: the input, each module's columns, timing, errors."""
    fields = list(input_schema)
    for m in modules:
        fields += [pa.field(c, arrow_type(t)) for c, t in m.adds.items()]
    ts = pa.timestamp("us", tz="UTC")
    fields += [
        pa.field("science_start", ts),
        pa.field("science_end", ts),
        pa.field("science_errors", pa.list_(pa.string())),
    ]
    return pa.schema(fields)


def _column(values: Any, arrow_type: Any) -> Any:
    """An Arrow array of ``arrow_type``; NaN and None become nulls."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(arrow_type)
    return pa.array(values, type=arrow_type, from_pandas=True)


def _rows(mask: Any, n: int) -> np.ndarray:
    """Positions of the rows ``applies`` chose (null: not chosen)."""
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    if isinstance(mask, pa.Array):
        mask = mask.fill_null(False).to_numpy(zero_copy_only=False)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"applies returned {mask.shape[0]} rows for {n}")
    return np.flatnonzero(mask)


def _compute(m: ScienceModule, inputs: pa.Table, types: list) -> list[pa.Array]:
    batch = inputs if m.arrow else inputs.to_pandas()
    result = m.fn(batch, worker_state(m)) if m.setup is not None else m.fn(batch)
    arrays = [_column(result[c], t) for c, t in zip(m.adds, types, strict=True)]
    if any(len(a) != inputs.num_rows for a in arrays):
        raise ValueError(f"module {m.name} returned the wrong number of rows")
    return arrays


def apply_module(m: ScienceModule, table: pa.Table) -> tuple[list[pa.Array], int]:
    """The module's columns for ``table``'s rows, and how many rows it computed.

    Rows ``applies`` leaves out get nulls. With ``scope = "new-object"``, the
    module computes the first alert of each object it has not seen (in
    stream order) and gives every other alert of that object the same
    values, so one batch of 1,000 and ten of 100 give the same columns.
    """
    n = table.num_rows
    inputs = table.select(m.reads)
    types = [arrow_type(t) for t in m.adds.values()]
    if m.applies is None and m.scope == "alert":
        return _compute(m, inputs, types), n
    chosen = _rows(m.applies(inputs), n) if m.applies is not None else np.arange(n)
    if m.scope == "alert":
        computed = _compute(m, inputs.take(pa.array(chosen, pa.int64())), types)
        processed = len(chosen)
    else:
        computed, processed = _per_object(m, inputs, chosen, types)
    rest = np.setdiff1d(np.arange(n), chosen, assume_unique=True)
    # Each column is [the chosen rows, the rest as nulls], put back in order.
    where = pa.array(np.argsort(np.concatenate([chosen, rest]), kind="stable"), pa.int64())
    arrays = [
        pa.concat_arrays([c, pa.nulls(len(rest), t)]).take(where)
        for c, t in zip(computed, types, strict=True)
    ]
    return arrays, processed


def _per_object(
    m: ScienceModule, inputs: pa.Table, chosen: np.ndarray, types: list
) -> tuple[list[pa.Array], int]:
    """A new-object module's columns for the ``chosen`` rows, and how many it computed."""
    cache = _OBJECTS.setdefault(_key(m), OrderedDict())
    keys = inputs[m.object_key].take(pa.array(chosen, pa.int64())).to_pylist()
    first: dict[Any, int] = {}
    for j, k in enumerate(keys):
        if k not in cache:
            first.setdefault(k, j)
    values: dict[Any, tuple] = {}
    if first:
        fresh = chosen[list(first.values())]
        computed = _compute(m, inputs.take(pa.array(fresh, pa.int64())), types)
        columns = [a.to_pylist() for a in computed]
        for j, k in enumerate(first):
            values[k] = tuple(c[j] for c in columns)
            cache[k] = values[k]
            if len(cache) > OBJECT_CACHE_SIZE:
                cache.popitem(last=False)
    rows = [values[k] if k in values else cache[k] for k in keys]
    arrays = [pa.array([r[c] for r in rows], t) for c, t in enumerate(types)]
    return arrays, len(first)


def run_modules(
    modules: list[ScienceModule], batches: Iterator, stats: ScienceStats | None = None
) -> Iterator:
    """Apply ``modules`` to Arrow record batches (the body of ``mapInArrow``).

    ``stats``, when given, receives each module's cost on each batch.
    """
    for batch in batches:
        start = time.time()
        table = pa.Table.from_batches([batch])
        failed: list[str] = []
        for m in modules:
            n = table.num_rows
            if m.setup is not None and _key(m) not in _STATES:
                began = time.perf_counter()
                with contextlib.suppress(Exception):  # a failing setup fails the module, below
                    worker_state(m)
                if stats is not None:
                    stats.add_setup(m.name, time.perf_counter() - began)
            began = time.perf_counter()
            try:
                arrays, processed = apply_module(m, table)
                broke = False
            except Exception:  # the module's columns stay null for this batch; the stream goes on
                failed.append(m.name)
                arrays = [pa.nulls(n, type=arrow_type(t)) for t in m.adds.values()]
                processed, broke = 0, True
            if stats is not None:
                seconds = time.perf_counter() - began
                stats.add(m.name, rows=n, processed=processed, seconds=seconds, failed=broke)
            for c, a in zip(m.adds, arrays, strict=True):
                table = table.append_column(c, a)
        n = table.num_rows
        ts = pa.timestamp("us", tz="UTC")
        table = table.append_column("science_start", pa.array([int(start * 1e6)] * n, ts))
        table = table.append_column("science_end", pa.array([int(time.time() * 1e6)] * n, ts))
        table = table.append_column("science_errors", pa.array([failed] * n, pa.list_(pa.string())))
        yield from table.to_batches()
