"""Science modules by name: the built-ins, the ``alertbench.science`` entry points, or a path."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

from alertbench.broker.batch.science.module import ScienceModule
from alertbench.errors import ConfigError

ENTRY_POINT_GROUP = "alertbench.science"


#: The science profiles: which modules each runs, in order. ``rules`` is four stated
#: rules (about 0.05 ms per alert); ``fink`` is Fink's own science on its catalogues.
PROFILES: dict[str, list[str]] = {
    "rules": ["sso", "context", "lightcurve", "early_sn"],
    "fink": [
        "vsx",
        "gcvs",
        "mangrove",
        "brightstar",
        "roid",
        "is_sso",
        "ad_features",
        "anomaly_score",
    ],
}


def profile_modules(profile: str) -> list[str]:
    """The module names of a science profile.

    Raises
    ------
    ConfigError
        For a profile that does not exist.
    """
    try:
        return list(PROFILES[profile])
    except KeyError:
        raise ConfigError(
            f"unknown science profile {profile!r}; profiles: {', '.join(PROFILES)}"
        ) from None


def builtin_modules(survey: str = "ztf") -> dict[str, ScienceModule]:
    """The modules alertbench ships: the ``rules`` and the ``fink`` profile's, for ``survey``."""
    from alertbench.broker.batch.science import builtin
    from alertbench.broker.batch.science.fink import fink_modules

    return {**{m.name: m for m in builtin.MODULES}, **fink_modules(survey)}


def resolve_modules(
    names: list[str], *, catalogue: str | None = None, survey: str = "ztf"
) -> list[ScienceModule]:
    """Modules named in configuration, in order, as they serve ``survey``.

    Raises
    ------
    ConfigError
        Naming a module that cannot be found, listed before a module it
        requires, or without a file it needs.
    """
    from alertbench.broker.batch.science.arrow import arrow_type

    known = builtin_modules(survey)
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
    check_requires(out)
    check_files(out)
    return out


def check_requires(modules: list[ScienceModule]) -> None:
    """Refuse a module listed before (or without) a module whose outputs it needs.

    Raises
    ------
    ConfigError
        Naming the module, what it requires, and the order to list them in.
    """
    before: set[str] = set()
    for m in modules:
        missing = [r for r in m.requires if r not in before]
        if missing:
            raise ConfigError(
                f"science module {m.name} requires {', '.join(missing)}: list "
                f"{'them' if len(missing) > 1 else 'it'} before {m.name} in broker.modules."
            )
        before.add(m.name)


def check_files(modules: list[ScienceModule]) -> None:
    """Refuse a module whose catalogue or model file is missing, before anything starts.

    Raises
    ------
    ConfigError
        Naming the module and every missing file.
    """
    for m in modules:
        if m.files is None:
            continue
        missing = [str(f) for f in m.files(dict(m.options)) if not Path(f).is_file()]
        if missing:
            raise ConfigError(
                f"science module {m.name} cannot run without {', '.join(missing)}: "
                "install the package that ships it, or give its path in the module's options."
            )


def usable(
    modules: list[ScienceModule], columns: list[str], survey: str | None = None
) -> tuple[list, list[str]]:
    """Modules that serve ``survey`` and whose inputs exist, and notes on the rest.

    A module's inputs may be earlier modules' outputs; a module that requires
    one skipped here is skipped too.
    """
    available = set(columns)
    keep, notes = [], []
    for m in modules:
        if survey is not None and not m.serves(survey):
            notes.append(f"science module {m.name} skipped: it serves {', '.join(m.surveys)}")
            continue
        absent = [r for r in m.requires if r not in {k.name for k in keep}]
        if absent:
            notes.append(f"science module {m.name} skipped: {', '.join(absent)} did not run")
            continue
        missing = [c for c in m.reads if c not in available]
        if missing:
            notes.append(f"science module {m.name} skipped: no column {', '.join(missing)}")
            continue
        keep.append(m)
        available |= set(m.adds)
    return keep, notes
