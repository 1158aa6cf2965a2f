"""Science modules: vectorised functions that add typed columns to alerts.

A module declares the columns it reads and the columns (with Spark SQL
types) it adds, and is a function of a batch of alerts: a pandas DataFrame of
its ``reads`` (or a ``pyarrow.Table`` when ``arrow=True``) returning a
mapping of its ``adds`` to arrays. Modules run in order on Arrow batches
inside Spark tasks, so a later module may read what an earlier one added.
A module that raises on a batch leaves nulls in its columns for that batch,
and the batch's rows name it in ``science_errors``; the stream goes on.

Modules are listed by name in configuration (built-ins and the entry point
group ``alertbench.science``) or as ``package.module:object``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from alertbench.errors import ConfigError

ENTRY_POINT_GROUP = "alertbench.science"


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
        ``fn(batch) -> mapping of column -> array``; ``batch`` is a pandas
        DataFrame of ``reads``, or a ``pyarrow.Table`` if ``arrow``.
    arrow : bool
        Pass Arrow instead of pandas (for nested columns such as histories).
    """

    name: str
    reads: list[str]
    adds: dict[str, str]
    fn: Callable[[Any], Any]
    arrow: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def science_module(
    name: str, *, reads: list[str], adds: dict[str, str], arrow: bool = False
) -> Callable[[Callable[[Any], Any]], ScienceModule]:
    """Decorator turning a vectorised function into a :class:`ScienceModule`."""

    def wrap(fn: Callable[[Any], Any]) -> ScienceModule:
        return ScienceModule(name=name, reads=reads, adds=adds, fn=fn, arrow=arrow)

    return wrap


def builtin_modules() -> dict[str, ScienceModule]:
    """The modules alertbench ships."""
    from alertbench.broker.science import builtin

    return {m.name: m for m in builtin.MODULES}


def resolve_modules(names: list[str], *, catalogue: str | None = None) -> list[ScienceModule]:
    """Modules named in configuration, in order.

    Raises
    ------
    ConfigError
        Naming a module that cannot be found.
    """
    from alertbench.broker.science.arrow import arrow_type

    known = builtin_modules()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        known.setdefault(ep.name, ep.load())
    out = []
    for name in names:
        if name == "crossmatch":
            from alertbench.broker.science.crossmatch import crossmatch_module

            if not catalogue:
                raise ConfigError("the crossmatch module needs broker.catalogue (CSV or Parquet).")
            out.append(crossmatch_module(catalogue))
        elif name in known:
            out.append(known[name])
        elif ":" in name:
            module_name, _, attr = name.partition(":")
            try:
                obj = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"science module {name!r} cannot be loaded: {exc}") from exc
            if not isinstance(obj, ScienceModule):
                raise ConfigError(f"{name} is not a ScienceModule (use @science_module).")
            out.append(obj)
        else:
            raise ConfigError(
                f"unknown science module {name!r}; built-in: {', '.join(sorted(known))}, "
                "crossmatch, or package.module:object."
            )
    for m in out:
        for column, spark_type in m.adds.items():
            try:
                arrow_type(spark_type)
            except ValueError as exc:
                raise ConfigError(f"science module {m.name}, column {column}: {exc}") from None
    return out


def usable(modules: list[ScienceModule], columns: list[str]) -> tuple[list, list[str]]:
    """Modules whose inputs exist (given earlier modules' outputs), and notes on the rest."""
    available = set(columns)
    keep, notes = [], []
    for m in modules:
        missing = [c for c in m.reads if c not in available]
        if missing:
            notes.append(f"science module {m.name} skipped: no column {', '.join(missing)}")
            continue
        keep.append(m)
        available |= set(m.adds)
    return keep, notes


def output_schema(input_schema, modules: list[ScienceModule]):
    """Arrow schema of the science rows: the input, each module's columns, timing, errors."""
    import pyarrow as pa

    from alertbench.broker.science.arrow import arrow_type

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
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(arrow_type)
    return pa.array(values, type=arrow_type, from_pandas=True)


def run_modules(modules: list[ScienceModule], batches: Iterator) -> Iterator:
    """Apply ``modules`` to Arrow record batches (the body of ``mapInArrow``)."""
    import time

    import pyarrow as pa

    from alertbench.broker.science.arrow import arrow_type

    for batch in batches:
        start = time.time()
        table = pa.Table.from_batches([batch])
        failed: list[str] = []
        for m in modules:
            n = table.num_rows
            try:
                inputs = table.select(m.reads)
                result = m.fn(inputs if m.arrow else inputs.to_pandas())
                arrays = [_column(result[c], arrow_type(t)) for c, t in m.adds.items()]
                if any(len(a) != n for a in arrays):
                    raise ValueError(f"module {m.name} returned the wrong number of rows")
            except Exception:
                failed.append(m.name)
                arrays = [pa.nulls(n, type=arrow_type(t)) for t in m.adds.values()]
            for c, a in zip(m.adds, arrays, strict=True):
                table = table.append_column(c, a)
        n = table.num_rows
        ts = pa.timestamp("us", tz="UTC")
        table = table.append_column("science_start", pa.array([int(start * 1e6)] * n, ts))
        table = table.append_column("science_end", pa.array([int(time.time() * 1e6)] * n, ts))
        table = table.append_column("science_errors", pa.array([failed] * n, pa.list_(pa.string())))
        yield from table.to_batches()
