"""Spark SQL type names of module columns, as Arrow types."""

from __future__ import annotations

import pyarrow as pa

_TYPES = {
    "double": pa.float64(),
    "float": pa.float32(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "long": pa.int64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
}


def arrow_type(spark_type: str) -> pa.DataType:
    """The Arrow type of a module column declared with a Spark SQL type name.

    Raises
    ------
    ValueError
        For a type modules may not add.
    """
    try:
        return _TYPES[spark_type.strip().lower()]
    except KeyError:
        raise ValueError(
            f"module column type {spark_type!r} is not supported; use one of {', '.join(_TYPES)}"
        ) from None
