"""Make ``rubin_features.jsonl``: Fink's own light-curve features of the shared Rubin alerts.

fink-science 7.4.0 has no Rubin features; its ``rubin/ad_features/processor.py``
came after it. The golden values are that file's ``extract_features_ad_rubin_raw``
at fink-science commit ``ddee53d9`` (master, 2026-07-29), run with light-curve
0.9.6 (the version Fink runs) in alertbench's development environment::

    git -C FINK_SCIENCE show ddee53d:fink_science/rubin/ad_features/processor.py \
        > /tmp/rubin_ad_features.py
    python make_rubin_features.py /tmp/rubin_ad_features.py \
        ALERTBENCH_TEST_DATA/lsst/simulated-v9.0 \
        ALERTBENCH_TEST_DATA/lsst/lsstcam-20250906-v9.0 \
        ALERTBENCH_TEST_DATA/lsst/lsstcam-20260306-v10.0 > rubin_features.jsonl

Each alert's arrays are built as fink-broker's ``concat_col`` builds them for
Rubin (``prvDiaSources`` first, the ``diaSource`` last). One line per alert:
its ``diaSourceId`` and, per band, the 26 features (NaN as null).
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import fastavro
import numpy as np


def column(record: dict, field: str) -> list:
    return [p[field] for p in record["prvDiaSources"] or []] + [record["diaSource"][field]]


def floats(record: dict, field: str) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in column(record, field)], float)


def main(processor: str, folders: list[str]) -> None:
    spec = importlib.util.spec_from_file_location("rubin_ad_features", processor)
    fink = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fink)
    for folder in folders:
        for path in sorted(Path(folder).glob("*.avro")):
            with path.open("rb") as fh:
                for r in fastavro.reader(fh):
                    features = fink.extract_features_ad_rubin_raw(
                        floats(r, "midpointMjdTai"),
                        floats(r, "psfFlux"),
                        floats(r, "psfFluxErr"),
                        np.array(column(r, "band")),
                        r["diaObject"]["diaObjectId"] if r.get("diaObject") else None,
                    )
                    bands = {
                        b: {k: (None if math.isnan(v) else v) for k, v in f.items()}
                        for b, f in features.items()
                    }
                    print(json.dumps({"diaSourceId": r["diaSourceId"], "bands": bands}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
