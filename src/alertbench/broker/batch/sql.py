"""SQL predicates (quality cuts, distribution filters) over Arrow tables, in process.

DataFusion evaluates them on the alerts' flat columns inside the Spark task
that holds the batch, so no Spark job is spent on them. Identifiers are
matched as written (``pixelFlags_bad``, not ``pixelflags_bad``); unlike Spark
SQL, column names are case-sensitive. A predicate that is null for an alert
counts as false, as a Spark ``filter`` drops it.
"""

from __future__ import annotations

import pyarrow as pa

from alertbench.errors import ConfigError


def flat_columns(schema: pa.Schema) -> list[str]:
    """The columns predicates can name: those that are not lists or records."""
    return [f.name for f in schema if not pa.types.is_nested(f.type)]


class Predicates:
    """Evaluate SQL predicates on Arrow tables with one DataFusion session."""

    def __init__(self) -> None:
        from datafusion import SessionConfig, SessionContext

        config = (
            SessionConfig()
            .with_target_partitions(1)  # Spark runs one task per core already
            .set("datafusion.sql_parser.enable_ident_normalization", "false")
        )
        self._ctx = SessionContext(config)

    def masks(self, table: pa.Table, predicates: list[str]) -> list[pa.Array]:
        """One boolean array per predicate (null counted as false), in one pass over ``table``.

        Raises
        ------
        Exception
            DataFusion's error, when a predicate does not parse or names no column.
        """
        if not predicates:
            return []
        flat = table.select(flat_columns(table.schema))
        self._ctx.from_arrow(flat, name="alerts")
        try:
            select = ", ".join(f"coalesce(({p}), false) AS p{i}" for i, p in enumerate(predicates))
            result = self._ctx.sql(f"SELECT {select} FROM alerts").to_arrow_table()
        finally:
            self._ctx.deregister_table("alerts")
        return [result[f"p{i}"].combine_chunks() for i in range(len(predicates))]


def check_predicates(schema: pa.Schema, predicates: dict[str, str]) -> None:
    """Refuse a predicate that does not evaluate on alerts of ``schema``.

    Parameters
    ----------
    schema : pyarrow.Schema
        The columns the predicates see.
    predicates : dict of str to str
        What each is (``cuts``, ``filter my-topic``) and its SQL.

    Raises
    ------
    ConfigError
        Naming the predicate and DataFusion's reason.
    """
    engine = Predicates()
    empty = schema.empty_table()
    for what, sql in predicates.items():
        try:
            engine.masks(empty, [sql])
        except Exception as exc:
            raise ConfigError(
                f"{what} ({sql!r}) does not evaluate on the alerts' columns: {exc}. "
                "Column names are case-sensitive."
            ) from None
