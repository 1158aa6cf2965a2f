"""What measuring every Avro body before the native decoder costs, per alert and survey.

arrow-avro 59.3 (DataFusion 55) spins for ever on a body with bytes after its
record, so :class:`alertbench.broker.batch.avro.ArrowDecoder` measures each
body first (``Schema.datum_length``: fastavro skipping every value). This
times, in one process and one after the other, the decoder's read of a batch
alone and the whole ``decode`` (the check, then the read), on real ZTF alerts
(the shared night) and real LSSTCam alerts, in batches of 1,000 bodies made
from them. Each figure is the median of ``--repeats`` runs, with its range. It
writes JSON and never asserts.

Usage::

    ALERTBENCH_TEST_DATA=/path/to/shared/data python benchmarks/length_check.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import fastavro

from alertbench.alerts.schema import Schema
from alertbench.broker.batch.avro import ArrowDecoder
from output import machine, write_result

SOURCES = {
    "ztf": "ztf/night-20231018-v4.02",
    "lsst": "lsst/lsstcam-20250906-v9.0",
}


def bodies_of(folder: Path, batch: int) -> tuple[Schema, list[bytes]]:
    """``batch`` bare bodies of the alerts in ``folder`` (repeated to fill it), and their schema."""
    schema, bodies = None, []
    for path in sorted(folder.glob("*.avro")):
        with path.open("rb") as fh:
            reader = fastavro.reader(fh)
            schema = schema or Schema(reader.writer_schema)
            bodies += [schema.encode(r) for r in reader]
    if schema is None:
        raise SystemExit(f"no alerts in {folder}")
    return schema, [bodies[i % len(bodies)] for i in range(batch)]


def ms_per_alert(fn, bodies: list[bytes], repeats: int) -> dict[str, float]:
    """Median and range of ``fn(bodies)``'s wall time, in ms per body."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(bodies)
        times.append((time.perf_counter() - t) / len(bodies) * 1e3)
    return {
        "median": round(statistics.median(times), 4),
        "min": round(min(times), 4),
        "max": round(max(times), 4),
    }


def main() -> None:
    """Time the decoder's read with and without the length check; write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    data = Path(os.environ["ALERTBENCH_TEST_DATA"])
    surveys = {}
    for survey, sub in SOURCES.items():
        schema, bodies = bodies_of(data / sub, args.batch)
        decoder = ArrowDecoder(schema)
        try:
            decoder.decode(bodies[:10])  # warm: the session and the file
            measure = schema.datum_length
            check = ms_per_alert(lambda b, m=measure: [m(x) for x in b], bodies, args.repeats)
            read = ms_per_alert(decoder._read, bodies, args.repeats)
            whole = ms_per_alert(decoder.decode, bodies, args.repeats)
        finally:
            decoder.close()
        surveys[survey] = {
            "alerts": sub,
            "mean_body_bytes": round(sum(map(len, bodies)) / len(bodies)),
            "check_ms_per_alert": check,
            "read_ms_per_alert": read,
            "decode_ms_per_alert": whole,
            "check_share_of_decode": round(check["median"] / whole["median"], 3),
        }
        print(survey, surveys[survey])
    write_result(
        args.out,
        "length_check",
        {"machine": machine(), "batch": args.batch, "repeats": args.repeats, "surveys": surveys},
    )


if __name__ == "__main__":
    main()
