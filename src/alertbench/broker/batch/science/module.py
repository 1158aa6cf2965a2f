"""The plug-in interface of a science module, and how modules run over a batch of alerts.

A module declares the columns it reads and the columns (with Spark SQL
types) it adds, and is a function of a batch of alerts: a pandas DataFrame of
its ``reads`` (or a ``pyarrow.Table`` when ``arrow=True``) returning a
mapping of its ``adds`` to arrays. :func:`run_modules` applies modules in
order to Arrow batches inside the tasks, so a later module may read what an
earlier one added; a module that raises on a batch leaves nulls in its
columns for that batch, and the batch's rows name it in ``science_errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


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


def output_schema(input_schema, modules: list[ScienceModule]):
    """Arrow schema of the science rows: the input, each module's columns, timing, errors."""
    import pyarrow as pa

    from alertbench.broker.batch.science.arrow import arrow_type

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

    from alertbench.broker.batch.science.arrow import arrow_type

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
