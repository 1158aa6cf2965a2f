"""Make ``anomaly_scores-20231018.csv``: Fink's own anomaly scores of the shared ZTF night.

Run once, in the environment fink-science 7.4.0 needs unpatched (its anomaly
processor calls ``pandas.read_csv(squeeze=True)``, gone in pandas 2)::

    python -m venv /tmp/finkenv-legacy
    /tmp/finkenv-legacy/bin/pip install pandas==1.5.3 numpy==1.26.4 pyarrow==14.0.2 \
        pyspark==3.5.5 onnxruntime==1.16.3 light-curve==0.9.6 line_profiler==4.1.3 \
        astropy==5.3.4 scipy==1.11.4 fastavro==1.13.1
    /tmp/finkenv-legacy/bin/pip install --no-deps fink-science==7.4.0 fink-utils==0.79.0 \
        fink-tns==0.14
    rm -f /tmp/forest_*_AAD.onnx   # fink-science reuses any stale model it finds there
    /tmp/finkenv-legacy/bin/python make_anomaly_scores.py ALERTS_DIR > anomaly_scores-20231018.csv

Each alert's arrays are built as fink-broker's ``concat_col`` builds them
(history first, the detection last), then fed to ``extract_features_ad_raw``
and ``anomaly_score`` exactly as fink-broker's ZTF science stage calls them.
onnxruntime runs with its default thread pool (two threads on the machine
that made the file).
"""

import math
import sys
from pathlib import Path

import fastavro
import numpy as np
import pandas as pd
from fink_science.ztf.ad_features.processor import extract_features_ad_raw
from fink_science.ztf.anomaly_detection.processor import anomaly_score


def column(record: dict, field: str) -> list:
    return [p[field] for p in record["prv_candidates"] or []] + [record["candidate"][field]]


def floats(record: dict, field: str) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in column(record, field)], float)


def fink_features(record: dict) -> dict:
    """fink-science's light-curve features of one ZTF alert, keyed by fid."""
    return extract_features_ad_raw(
        floats(record, "magpsf"),
        floats(record, "jd"),
        floats(record, "sigmapsf"),
        np.array(column(record, "fid")),
        record["objectId"],
        floats(record, "distnr"),
        floats(record, "magnr"),
        floats(record, "sigmagnr"),
        np.array([str(v) for v in column(record, "isdiffpos")]),
    )


def main(folder: str) -> None:
    records = []
    for path in sorted(Path(folder).glob("*.avro")):
        with path.open("rb") as fh:
            records += list(fastavro.reader(fh))
    features = [fink_features(r) for r in records]
    scores = anomaly_score.func(pd.Series(features))
    print("candid,bands,anomaly_score")
    for r, f, s in zip(records, features, scores, strict=True):
        print(f"{r['candid']},{' '.join(str(k) for k in sorted(f))},{float(s)!r}")


if __name__ == "__main__":
    main(sys.argv[1])
