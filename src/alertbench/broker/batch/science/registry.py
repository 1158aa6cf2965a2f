"""Science modules by name: the built-ins, the ``alertbench.science`` entry points, or a path."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from alertbench.broker.batch.science.module import ScienceModule
from alertbench.errors import ConfigError

ENTRY_POINT_GROUP = "alertbench.science"


def builtin_modules() -> dict[str, ScienceModule]:
    """The modules alertbench ships."""
    from alertbench.broker.batch.science import builtin

    return {m.name: m for m in builtin.MODULES}


def resolve_modules(names: list[str], *, catalogue: str | None = None) -> list[ScienceModule]:
    """Modules named in configuration, in order.

    Raises
    ------
    ConfigError
        Naming a module that cannot be found.
    """
    from alertbench.broker.batch.science.arrow import arrow_type

    known = builtin_modules()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        known.setdefault(ep.name, ep.load())
    out = []
    for name in names:
        if name == "crossmatch":
            from alertbench.broker.batch.science.crossmatch import crossmatch_module

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
