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

from alertbench.broker.batch.science.module import (
    ModuleCost,
    ScienceModule,
    ScienceStats,
    output_schema,
    run_modules,
    science_module,
)
from alertbench.broker.batch.science.registry import (
    ENTRY_POINT_GROUP,
    PROFILES,
    builtin_modules,
    profile_modules,
    resolve_modules,
    usable,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROFILES",
    "ModuleCost",
    "ScienceModule",
    "ScienceStats",
    "builtin_modules",
    "output_schema",
    "profile_modules",
    "resolve_modules",
    "run_modules",
    "science_module",
    "usable",
]
