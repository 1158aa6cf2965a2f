"""Example Python filters for distribution: vectorised predicates over science columns.

A Python filter takes a pandas DataFrame of science alerts and returns a
boolean array; name it in ``broker.filters`` as ``package.module:function``.
"""

from __future__ import annotations


def positive_subtraction(alerts):
    """Alerts brighter than their template (ZTF ``isdiffpos`` is ``t`` or ``1``)."""
    return alerts["isdiffpos"].astype(str).isin(["t", "1"]).to_numpy()


def young_riser(alerts):
    """Detected for under 10 days and brightening by more than 0.05 mag/day."""
    young = alerts["duration"].astype(float) < 10
    rising = alerts["rise_rate"].astype(float) > 0.05
    return (young & rising).fillna(False).to_numpy(bool)
