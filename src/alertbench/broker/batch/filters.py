"""Distribution filters: a topic each, chosen by an SQL predicate or a Python function.

The filters and what a distributed message is made of (its key column, the
columns the broker added to the survey's record) are shared by the task that
routes a batch (:mod:`alertbench.broker.batch.route`) and the query that
publishes the distribution schema (:mod:`alertbench.broker.stream.distribute`).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from alertbench.alerts.schema import Schema
from alertbench.broker.batch.flatten import alert_columns
from alertbench.errors import ConfigError

# Kafka's own coordinates of the raw alert would clash with the sink's columns.
NOT_DISTRIBUTED = {"topic", "partition", "offset"}
_PYTHON_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass
class Filter:
    """A distribution filter: its topic and an SQL predicate or a Python function.

    A Python filter takes a pandas DataFrame of science columns and returns a
    boolean array.
    """

    topic: str
    sql: str | None = None
    function: Any = None


def parse_filters(spec: dict[str, str]) -> list[Filter]:
    """Filters from configuration: ``{topic: "SQL predicate" or "package.module:function"}``.

    Raises
    ------
    ConfigError
        If a Python filter cannot be imported.
    """
    out = []
    for topic, rule in spec.items():
        if _PYTHON_REF.match(rule.strip()):
            module, _, name = rule.strip().partition(":")
            try:
                fn = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"filter {topic}: cannot load {rule}: {exc}") from exc
            out.append(Filter(topic, function=fn))
        else:
            out.append(Filter(topic, sql=rule))
    return out


def added_columns(columns: list[str], schema: Schema) -> list[str]:
    """The columns of a science frame that the broker added to the survey's alert, in order."""
    alert = {name for name, _ in alert_columns(schema)}
    skip = alert | NOT_DISTRIBUTED | {"night"}
    return [c for c in columns if c not in skip]


def key_column(columns: list[str]) -> str:
    """The column whose value keys a distributed alert's message: ``objectId``, else the first."""
    return "objectId" if "objectId" in columns else columns[0]
