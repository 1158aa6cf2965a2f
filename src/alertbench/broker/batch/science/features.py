"""Light-curve features over many light curves at once, as light-curve computes them.

Fink's anomaly detection describes each band of an object's light curve with
26 features of the `light-curve <https://github.com/light-curve>`_ package
(Malanchev et al. 2021). light-curve's wheels are GPL-3.0 and alertbench is
Apache-2.0, so the features are computed here in numpy, following
light-curve-feature's definitions term by term, and the tests hold them to
light-curve 0.9.6 (the version Fink runs) on real light curves.

The light curves of a batch are one set of flat arrays sorted by light curve
and then time, plus each light curve's length, so every feature is a few
segmented numpy reductions over the whole batch (no Python loop per light
curve). A feature needs a minimum number of points, and some a light curve
that is not flat; elsewhere it is NaN, as light-curve's ``fill_value=nan``
gives.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

#: The features Fink's extractor computes, in its order (``create_extractor().names``).
FEATURES = (
    "mean",
    "weighted_mean",
    "standard_deviation",
    "median",
    "amplitude",
    "beyond_1_std",
    "cusum",
    "inter_percentile_range_10",
    "kurtosis",
    "linear_trend",
    "linear_trend_sigma",
    "linear_trend_noise",
    "linear_fit_slope",
    "linear_fit_slope_sigma",
    "linear_fit_reduced_chi2",
    "magnitude_percentage_ratio_40_5",
    "magnitude_percentage_ratio_20_10",
    "maximum_slope",
    "median_absolute_deviation",
    "median_buffer_range_percentage_10",
    "percent_amplitude",
    "mean_variance",
    "anderson_darling_normal",
    "chi2",
    "skew",
    "stetson_K",
)

#: light-curve-feature's ``min_ts_length`` of each feature (1 when absent).
MIN_POINTS = {
    "standard_deviation": 2,
    "beyond_1_std": 2,
    "cusum": 2,
    "kurtosis": 4,
    "linear_trend": 3,
    "linear_trend_sigma": 3,
    "linear_trend_noise": 3,
    "linear_fit_slope": 3,
    "linear_fit_slope_sigma": 3,
    "linear_fit_reduced_chi2": 3,
    "magnitude_percentage_ratio_40_5": 2,
    "magnitude_percentage_ratio_20_10": 2,
    "maximum_slope": 2,
    "mean_variance": 2,
    "anderson_darling_normal": 4,
    "chi2": 2,
    "skew": 3,
    "stetson_K": 2,
}
#: Features light-curve refuses on a flat light curve (every magnitude equal).
NEED_VARIABILITY = (
    "cusum",
    "kurtosis",
    "magnitude_percentage_ratio_40_5",
    "magnitude_percentage_ratio_20_10",
    "anderson_darling_normal",
    "skew",
    "stetson_K",
)


class Segments:
    """Flat arrays holding many light curves back to back, and reductions per light curve.

    Parameters
    ----------
    counts : numpy.ndarray
        Points of each light curve, each at least one.
    """

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = np.asarray(counts, dtype=np.int64)
        if (self.counts < 1).any():
            raise ValueError("every light curve needs at least one point")
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.ids = np.repeat(np.arange(len(self.counts)), self.counts)
        #: Each point's rank inside its light curve.
        self.rank = np.arange(int(self.counts.sum())) - np.repeat(self.starts, self.counts)

    def sum(self, x: np.ndarray) -> np.ndarray:
        """Sum of ``x`` over each light curve."""
        if len(self.counts) == 0:
            return np.zeros(0)
        return np.add.reduceat(x, self.starts)

    def spread(self, per_curve: np.ndarray) -> np.ndarray:
        """A per-light-curve value repeated for each of its points."""
        return per_curve[self.ids]

    def sort(self, x: np.ndarray) -> np.ndarray:
        """``x`` sorted inside each light curve."""
        return x[np.lexsort((x, self.ids))]

    def median(self, sorted_x: np.ndarray) -> np.ndarray:
        """The median of each light curve, from values sorted inside each."""
        i = self.starts + (self.counts - 1) // 2
        even = self.counts % 2 == 0
        j = np.where(even, i + 1, i)
        return np.where(even, 0.5 * (sorted_x[i] + sorted_x[j]), sorted_x[i])

    def ppf(self, sorted_x: np.ndarray, q: float) -> np.ndarray:
        """light-curve's quantile (R-5), in its 32-bit arithmetic, per light curve."""
        h = self.counts.astype(np.float32) * np.float32(q) - np.float32(0.5)
        floor = np.floor(h)
        i = np.clip(floor, 0, None).astype(np.int64)
        last = self.counts - 1
        inner = np.minimum(i, np.maximum(last - 1, 0))
        lo = sorted_x[self.starts + inner]
        hi = sorted_x[self.starts + np.minimum(inner + 1, last)]
        value = lo + (h - floor).astype(np.float64) * (hi - lo)
        value = np.where(i >= last, sorted_x[self.starts + last], value)
        return np.where(floor < 0, sorted_x[self.starts], value)


def extract(
    counts: np.ndarray, t: np.ndarray, m: np.ndarray, sigma: np.ndarray
) -> dict[str, np.ndarray]:
    """The 26 features of each light curve.

    Parameters
    ----------
    counts : numpy.ndarray
        Points of each light curve (each at least one).
    t, m, sigma : numpy.ndarray
        Times, magnitudes (or fluxes) and their errors, light curve after light
        curve, each sorted by strictly increasing time.

    Returns
    -------
    dict of str to numpy.ndarray
        Each of :data:`FEATURES`, one float64 value per light curve.
    """
    seg = Segments(counts)
    t = np.asarray(t, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    w = 1.0 / np.asarray(sigma, dtype=np.float64) ** 2
    n = seg.counts.astype(np.float64)
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean = seg.sum(m) / n
        dev = m - seg.spread(mean)
        var = seg.sum(dev**2) / (n - 1)
        std = np.sqrt(var)
        ms = seg.sort(m)
        lo, hi = ms[seg.starts], ms[seg.starts + seg.counts - 1]
        median = seg.median(ms)
        wsum = seg.sum(w)
        wmean = seg.sum(w * m) / wsum
        wdev = m - seg.spread(wmean)
        chi2 = seg.sum(wdev**2 * w)
        amplitude = 0.5 * (hi - lo)

        out["mean"] = mean
        out["weighted_mean"] = wmean
        out["standard_deviation"] = std
        out["median"] = median
        out["amplitude"] = amplitude
        out["beyond_1_std"] = seg.sum(np.abs(dev) > seg.spread(std)) / n
        out["cusum"] = _cusum(seg, dev) / (std * n)
        out["inter_percentile_range_10"] = seg.ppf(ms, 0.9) - seg.ppf(ms, 0.1)
        out["kurtosis"] = seg.sum(dev**4) / var**2 * n * (n + 1) / (
            (n - 1) * (n - 2) * (n - 3)
        ) - 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3))
        slope, slope_sigma2, reduced = _straight_line(seg, t, m, None)
        out["linear_trend"] = slope
        out["linear_trend_sigma"] = np.sqrt(slope_sigma2 * reduced)
        out["linear_trend_noise"] = np.sqrt(reduced)
        slope, slope_sigma2, reduced = _straight_line(seg, t, m, w)
        out["linear_fit_slope"] = slope
        out["linear_fit_slope_sigma"] = np.sqrt(slope_sigma2)
        out["linear_fit_reduced_chi2"] = reduced
        for num, den in ((0.4, 0.05), (0.2, 0.1)):
            top = seg.ppf(ms, 1.0 - num) - seg.ppf(ms, num)
            bottom = seg.ppf(ms, 1.0 - den) - seg.ppf(ms, den)
            ratio = top / bottom
            name = f"magnitude_percentage_ratio_{round(num * 100)}_{round(den * 100)}"
            out[name] = np.where((top == 0) & (bottom == 0), np.nan, ratio)
        out["maximum_slope"] = _maximum_slope(seg, t, m)
        from_median = np.abs(m - seg.spread(median))
        out["median_absolute_deviation"] = seg.median(seg.sort(from_median))
        under = from_median < seg.spread(0.1 * amplitude)
        out["median_buffer_range_percentage_10"] = seg.sum(under) / n
        out["percent_amplitude"] = np.maximum(hi - median, median - lo)
        out["mean_variance"] = std / mean
        out["anderson_darling_normal"] = _anderson_darling(seg, ms, mean, std, n)
        out["chi2"] = chi2 / (n - 1)
        out["skew"] = seg.sum(dev**3) / std**3 * n / ((n - 1) * (n - 2))
        out["stetson_K"] = seg.sum(np.abs(wdev) * np.sqrt(w)) / np.sqrt(n * chi2)

    flat = lo == hi
    for name, minimum in MIN_POINTS.items():
        out[name] = np.where(seg.counts < minimum, np.nan, out[name])
    for name in NEED_VARIABILITY:
        out[name] = np.where(flat, np.nan, out[name])
    return {name: out[name] for name in FEATURES}


def _cusum(seg: Segments, dev: np.ndarray) -> np.ndarray:
    """The range (maximum minus minimum) of the running sum of deviations, per light curve."""
    running = np.cumsum(dev)
    # The running sum restarted at each light curve's first point.
    before = np.concatenate([[0.0], running])[seg.starts]
    local = running - seg.spread(before)
    return np.maximum.reduceat(local, seg.starts) - np.minimum.reduceat(local, seg.starts)


def _straight_line(
    seg: Segments, t: np.ndarray, m: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """light-curve's straight-line fit (Press et al. 15.2): slope, its variance, reduced chi2.

    With ``w`` the fit is weighted and the slope's variance is 1/Stt; without,
    the caller scales it by the reduced chi2.
    """
    weights = np.ones_like(t) if w is None else w
    s = seg.sum(weights)
    sx = seg.sum(weights * t)
    sy = seg.sum(weights * m)
    tc = t - seg.spread(sx / s)
    stt = seg.sum(weights * tc**2)
    sty = seg.sum(weights * tc * m)
    slope = sty / stt
    intercept = (sy - sx * slope) / s
    resid = m - seg.spread(intercept) - seg.spread(slope) * t
    reduced = seg.sum(resid**2 * weights) / (seg.counts - 2.0)
    return slope, 1.0 / stt, reduced


def _maximum_slope(seg: Segments, t: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The largest |dm/dt| between consecutive points of each light curve."""
    out = np.full(len(seg.counts), np.nan)
    if len(t) < 2:
        return out
    slope = np.abs(np.diff(m) / np.diff(t))
    # A pair spanning two light curves, or an infinite slope, does not count.
    inside = seg.ids[1:] == seg.ids[:-1]
    slope = np.where(inside & np.isfinite(slope), slope, -np.inf)
    pairs = seg.counts > 1
    best = np.maximum.reduceat(np.concatenate([slope, [-np.inf]]), seg.starts)
    out[pairs] = best[pairs]
    return out


def _anderson_darling(
    seg: Segments, ms: np.ndarray, mean: np.ndarray, std: np.ndarray, n: np.ndarray
) -> np.ndarray:
    """The Anderson-Darling statistic for normality, with light-curve's small-sample factor."""
    z = (ms - seg.spread(mean)) / seg.spread(std)
    i = seg.rank.astype(np.float64)
    size = seg.spread(n)
    terms = (2 * i + 1) * log_ndtr(z) + (2 * (size - i) - 1) * log_ndtr(-z)
    a2 = -n - seg.sum(terms) / n
    return (1.0 + 4.0 / n - (5.0 / n) ** 2) * a2
