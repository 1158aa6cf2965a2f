"""Value comparison for the decoder tests: strict about types, NaN equal to NaN."""

from __future__ import annotations

import math


def same(a: object, b: object) -> bool:
    """Equal values of equal types, recursively; NaN equals NaN (Avro floats may be NaN).

    Strict about types: a cutout returned as text where the source has bytes
    is a difference, not an equality.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)  # type: ignore[union-attr]
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)  # type: ignore[arg-type]
    return a == b
