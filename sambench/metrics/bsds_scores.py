"""ODS / OIS / AP / R50 from per-image boundary counts, as the official BSDS code.

Input everywhere is ``counts[..., 4] = [cntR, sumR, cntP, sumP]`` per threshold (the columns
2-5 of the official ``*_ev1.txt`` files). Sources reproduced:

- BSDS500 ``bench/benchmarks/collect_eval_bdry.m`` (Arbeláez): ``fmeasure``, ``maxF`` (ODS and
  the per-image rows of ``eval_bdry_img.txt``), OIS from each image's first discrete argmax with
  pooled counts, ``Area_PR`` (AP);
- Dollár's ``edgesEvalDir.m`` (identical results, plus R50 = recall at 50% precision).

Floating-point details follow MATLAB where they can change a result: ``linspace`` as
``d1 + (k * (d2 - d1)) / (n - 1)``, ``unique`` keeping the first occurrence (MATLAB >= R2013a),
``interp1`` returning NaN outside the sampled range.
"""
from __future__ import annotations

import numpy as np


def matlab_linspace(d1: float, d2: float, n: int) -> np.ndarray:
    """MATLAB ``linspace(d1, d2, n)``: its rounding decides which 8-bit levels pass a threshold."""
    if n < 2:
        return np.array([float(d2)] * max(n, 0))
    y = d1 + (np.arange(n) * (d2 - d1)) / (n - 1)
    y[-1] = d2
    return y


def default_thresholds(nthresh: int) -> np.ndarray:
    """``linspace(1/(K+1), 1-1/(K+1), K)``: 0.01 ... 0.99 for the default K = 99."""
    if nthresh < 1:
        raise ValueError(f"nthresh must be >= 1, got {nthresh}")
    return matlab_linspace(1.0 / (nthresh + 1), 1.0 - 1.0 / (nthresh + 1), nthresh)


def rpf(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recall, precision, F with the BSDS zero guards ``x / (s + (s == 0))``."""
    c = np.asarray(counts, dtype=np.float64)
    cnt_r, sum_r, cnt_p, sum_p = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    r = cnt_r / (sum_r + (sum_r == 0))
    p = cnt_p / (sum_p + (sum_p == 0))
    return r, p, fmeasure(r, p)


def fmeasure(r, p):
    """``2PR / (P + R)``, 0 where both are 0 (collect_eval_bdry.m ``fmeasure``)."""
    r, p = np.asarray(r, dtype=np.float64), np.asarray(p, dtype=np.float64)
    s = p + r
    return 2 * p * r / (s + (s == 0))


_D = np.arange(100) / 99.0  # MATLAB linspace(0, 1): 100 points


def max_f(t: np.ndarray, r: np.ndarray, p: np.ndarray) -> tuple[float, float, float, float]:
    """(T, R, P, F) at the best F along the PR curve, linearly interpolated between thresholds.

    ``maxF`` of collect_eval_bdry.m (= ``findBestRPF`` of edgesEvalDir.m): 100 points per
    segment, the first strict maximum wins.
    """
    best = (float(t[0]), float(r[0]), float(p[0]), float(fmeasure(r[0], p[0])))
    for k in range(1, len(t)):
        tt = t[k] * _D + t[k - 1] * (1 - _D)
        rr = r[k] * _D + r[k - 1] * (1 - _D)
        pp = p[k] * _D + p[k - 1] * (1 - _D)
        ff = fmeasure(rr, pp)
        m = int(np.argmax(ff))
        if ff[m] > best[3]:
            best = (float(tt[m]), float(rr[m]), float(pp[m]), float(ff[m]))
    return best


def ois_counts(counts: np.ndarray) -> np.ndarray:
    """Pooled counts at each image's own best discrete threshold (first argmax of its F).

    ``ff = find(F == max(F)); cnt += cnt(ff(1))`` in collect_eval_bdry.m; counts is (N, K, 4).
    """
    counts = np.asarray(counts)
    _, _, f = rpf(counts)
    k = np.argmax(f, axis=1)  # first maximum, like ff(1) / [~,k] = max(F)
    return counts[np.arange(counts.shape[0]), k].sum(axis=0)


def _interp1(x: np.ndarray, y: np.ndarray, q) -> np.ndarray:
    """MATLAB ``interp1(x, y, q)`` (linear) for increasing ``x``: NaN outside ``[x0, xn]``."""
    return np.interp(q, x, y, left=np.nan, right=np.nan)


def average_precision(r: np.ndarray, p: np.ndarray) -> float:
    """BSDS ``Area_PR``: precision interpolated at recall 0:0.01:1 (NaN -> 0), summed x 0.01.

    Not the VOC-style AP: a 101-sample Riemann sum of the linearly interpolated dataset curve,
    zero outside the achieved recall range (pdollar: "has minor bug: should be /101").
    """
    ru, ind = np.unique(r, return_index=True)  # first occurrence, as MATLAB >= R2013a
    if ru.size < 2:
        return 0.0
    pi = _interp1(ru, p[ind], np.arange(101) / 100.0)
    return float(np.nansum(pi) * 0.01)


def recall_at_50(r: np.ndarray, p: np.ndarray) -> float:
    """R50 of edgesEvalDir.m: recall interpolated at precision 0.5 (NaN if P never reaches 0.5).

    As the original: keep the first occurrence of each recall value, reorder by decreasing
    recall, keep the first occurrence of each precision value, then ``interp1(P, R, max(minP,
    .5))`` (so a curve that never drops below P = 0.5 gives the recall at its lowest precision).
    """
    _, k = np.unique(r, return_index=True)
    k = k[::-1]
    rr, pp = r[k], p[k]
    pu, o = np.unique(pp, return_index=True)
    q = max(pu[0], 0.5)
    if pu.size == 1:  # interp1 needs two points; a single one answers only at itself
        return float(rr[o[0]]) if q == pu[0] else float("nan")
    return float(_interp1(pu, rr[o], q))


def summarize(thresholds: np.ndarray, counts: np.ndarray) -> dict:
    """All dataset numbers from ``counts`` (N images, K thresholds, 4)."""
    counts = np.asarray(counts)
    t = np.asarray(thresholds, dtype=np.float64)
    r, p, _ = rpf(counts.sum(axis=0))
    ods_t, ods_r, ods_p, ods_f = max_f(t, r, p)
    ois_r, ois_p, ois_f = (float(x) for x in rpf(ois_counts(counts)))
    return {"ods": ods_f, "ois": ois_f, "ap": average_precision(r, p), "r50": recall_at_50(r, p),
            "ods_r": ods_r, "ods_p": ods_p, "ods_t": ods_t, "ois_r": ois_r, "ois_p": ois_p}
