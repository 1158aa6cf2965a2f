"""Messages that are not alerts, for the tests of quarantine."""

from __future__ import annotations


def bad_messages(good: bytes) -> list[bytes]:
    """Messages that are not alerts of the stream ``good`` belongs to.

    Garbage, ``good`` cut in half, and a whole Avro container of another schema.
    """
    import io

    import fastavro

    with io.BytesIO() as buf:
        fastavro.writer(
            buf,
            {"type": "record", "name": "x", "fields": [{"name": "a", "type": "int"}]},
            [{"a": 1}],
        )
        other_schema = buf.getvalue()
    return [b"\x00garbage" * 50, good[: len(good) // 2], other_schema]
