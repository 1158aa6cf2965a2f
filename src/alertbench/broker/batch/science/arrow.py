"""Spark SQL type names of module columns, as Arrow types."""

from __future__ import annotations

import functools

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


@functools.lru_cache(maxsize=256)
def arrow_type(spark_type: str) -> pa.DataType:
    """The Arrow type of a module column declared with a Spark SQL type name.

    A simple type (``double``, ``string``...) or a struct of them, spelled as
    Spark spells it: ``struct<mean:double,median:double>``.

    Raises
    ------
    ValueError
        For a type modules may not add.
    """
    text = spark_type.strip()
    if text.lower().startswith("struct<") and text.endswith(">"):
        fields = []
        for item in text[len("struct<") : -1].split(","):
            name, sep, inner = item.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"module column type {spark_type!r}: {item!r} is not name:type")
            fields.append(pa.field(name.strip(), arrow_type(inner)))
        return pa.struct(fields)
    try:
        return _TYPES[text.lower()]
    except KeyError:
        raise ValueError(
            f"module column type {spark_type!r} is not supported; use one of "
            f"{', '.join(_TYPES)}, or a struct<name:type,...> of them"
        ) from None


def struct_type(fields: list[str] | tuple[str, ...], spark_type: str = "double") -> str:
    """The Spark SQL spelling of a struct whose ``fields`` all have ``spark_type``."""
    return "struct<" + ",".join(f"{f}:{spark_type}" for f in fields) + ">"
