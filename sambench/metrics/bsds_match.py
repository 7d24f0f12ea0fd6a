"""Pixel correspondence between two boundary maps, as the BSDS ``correspondPixels``.

The official benchmark (Martin, Fowlkes, Malik; BSDS500 ``bench/source/match.cc``, also shipped
as ``correspondPixels`` in Dollár's edges toolbox) matches predicted and ground-truth boundary
pixels one to one within ``maxDist`` times the image diagonal. It builds an assignment problem
with integer costs ``rint(100 * distance)`` for every pixel pair within the radius, ``ow =
ceil(100 * outlierCost)`` (``outlierCost = 100 * radius``) for leaving a pixel unmatched, and
solves it with Goldberg's CSA. Because ``ow`` is ~100x the largest real cost, the optimum is in
practice a maximum-cardinality matching of minimum total (rounded) distance.

Why hand-written: the official C++ is GPL-2 and draws its sparse outlier edges at random with a
time-of-day seed, so repeated runs differ by a few pixels; no maintained package offers the
metric without it (pyEdgeEval wraps the same GPL code; docs/edges.md). Here
the same optimum is found deterministically with SciPy's LAPJVsp
(``scipy.sparse.csgraph.min_weight_full_bipartite_matching``) on a sparse graph whose rows are
the smaller side (say the n1 predicted pixels) and whose columns are the other side plus one
private "unmatched" slot per row:

    pred_i - gt_j         rint(100 d)   (every pair with d <= radius, the match.cc window)
    pred_i - unmatched_i  ow

Every row is matched, so a matching with k real pairs costs ``sum(w) + ow * (n1 - k)``: the
official objective ``sum(w) + ow * (n1 + n2 - k)`` up to a constant. Ties between equally cheap
matchings are broken deterministically (the official code breaks them at random).

The official code's random sparse outlier graph also makes it lose about one match per
(threshold, annotator) pair relative to this optimum (recall ~3e-4 lower on the BSDS sample).
``assign(..., rng=...)`` rebuilds that graph from a seeded generator to reproduce those
statistics; it is ~5x slower. docs/edges.md has the measurements.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

MULTIPLIER = 100  # match.cc: integer costs are rint(distance * 100)
OUTLIER_COST = 100.0  # correspondPixels default: outlier cost = 100 * maxDist * diagonal


def match_radius(shape: tuple[int, int], max_dist: float) -> float:
    """Matching radius in pixels: ``maxDist * sqrt(rows^2 + cols^2)`` (correspondPixels.cc)."""
    rows, cols = int(shape[0]), int(shape[1])
    return max_dist * math.sqrt(rows * rows + cols * cols)


def disk_offsets(radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(drow, dcol, cost) of every offset with ``d^2 <= radius^2`` (the match.cc window test)."""
    r = int(math.ceil(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    d2 = (dy * dy + dx * dx).astype(np.float64)
    keep = ~(d2 > radius * radius)
    cost = np.rint(np.sqrt(d2[keep]) * MULTIPLIER).astype(np.int64)
    return dy[keep].astype(np.intp), dx[keep].astype(np.intp), cost


class BoundaryIndex:
    """One ground-truth boundary map prepared for matching many predictions against it.

    Holds a padded pixel → node-index image so candidate pairs are found with one gather per
    disk offset; build it once per annotator and reuse it for every threshold.
    """

    def __init__(self, bmap: np.ndarray, max_dist: float = 0.0075):
        bmap = np.asarray(bmap).astype(bool)
        self.shape = bmap.shape
        self.radius = match_radius(bmap.shape, max_dist)
        self.dy, self.dx, self.cost = disk_offsets(self.radius)
        self.pad = int(math.ceil(self.radius))
        p = self.pad
        self.rows, self.cols = np.nonzero(bmap)
        self.n = self.rows.size
        index = np.full((bmap.shape[0] + 2 * p, bmap.shape[1] + 2 * p), -1, dtype=np.int64)
        index[self.rows + p, self.cols + p] = np.arange(self.n)
        self.index = index
        # ow = ceil(outlierCost * 100) with outlierCost = 100 * radius (match.cc, correspondPixels)
        self.outlier_weight = int(math.ceil(OUTLIER_COST * self.radius * MULTIPLIER))

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
        """Every (pred node, gt node, cost) within the radius, for pred pixels (rows, cols)."""
        p = self.pad
        ii, jj, ww = [], [], []
        for dy, dx, c in zip(self.dy, self.dx, self.cost):
            j = self.index[rows + (p + dy), cols + (p + dx)]
            hit = np.flatnonzero(j >= 0)
            if hit.size:
                ii.append(hit)
                jj.append(j[hit])
                ww.append(np.full(hit.size, c, dtype=np.int64))
        if not ii:
            e = np.zeros(0, dtype=np.int64)
            return e, e, e
        return np.concatenate(ii), np.concatenate(jj), np.concatenate(ww)

    def match(self, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Matched flags ``(pred (len(rows),), gt (self.n,))`` for pred pixels (rows, cols).

        ``rng``: None for the exact optimum, a generator to emulate the official graph.
        """
        i, j, w = self.pairs(rows, cols)
        m1 = np.zeros(rows.size, dtype=bool)
        m2 = np.zeros(self.n, dtype=bool)
        if i.size == 0:
            return m1, m2
        pi, pj = assign(i, j, w, self.outlier_weight, rng)
        m1[pi] = True
        m2[pj] = True
        return m1, m2


def assign(i: np.ndarray, j: np.ndarray, w: np.ndarray, ow: int,
           rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of the candidate pairs ``(i[k], j[k])`` with costs ``w[k]``.

    Returns the matched (pred, gt) node ids. With ``rng=None`` the graph is the deterministic one
    of the module docstring (the exact optimum). With a generator, the official sparse outlier
    graph is drawn instead (see :func:`_official_outlier_edges`), which reproduces the official
    code's statistics, including the few matches it loses, at the price of speed.
    """
    # Compact to the matchable nodes (match.cc drops nodes without any candidate too).
    ui, i = np.unique(i, return_inverse=True)
    uj, j = np.unique(j, return_inverse=True)
    n1, n2 = ui.size, uj.size
    if rng is not None:
        r_o, c_o, w_o = _official_outlier_edges(n1, n2, ow, rng)
        rows, cols = np.concatenate([i, r_o]), np.concatenate([j, c_o])
        data, shape = np.concatenate([w, w_o]), (n1 + n2, n1 + n2)
    else:
        if n1 > n2:  # rows = the smaller side: fewer augmentations, same optimum
            r, c = assign(j, i, w, ow)
            return ui[c], uj[r]
        rows, cols = np.concatenate([i, np.arange(n1)]), np.concatenate([j, n2 + np.arange(n1)])
        data, shape = np.concatenate([w, np.full(n1, ow, dtype=np.int64)]), (n1, n2 + n1)
    # +1 on every edge: each full matching has one edge per row, so all costs shift equally,
    # and no weight is 0 (an explicit 0 would read as "no edge" to the sparse solver).
    graph = csr_matrix((data.astype(np.float64) + 1.0, (rows, cols)), shape=shape)
    r, c = min_weight_full_bipartite_matching(graph)
    real = (r < n1) & (c < n2)
    return ui[r[real]], uj[c[real]]


def _k_of_n(rng: np.random.Generator, k: int, n: int, count: int) -> np.ndarray:
    """``count`` rows of ``k`` distinct integers drawn uniformly from ``[0, n)``."""
    if k == 0:
        return np.zeros((count, 0), dtype=np.int64)
    if n <= 4 * k:
        return np.argsort(rng.random((count, n)), axis=1)[:, :k]
    out = rng.integers(0, n, (count, k))
    while True:  # redraw the few rows with a repeat
        s = np.sort(out, axis=1)
        bad = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))
        if bad.size == 0:
            return out
        out[bad] = rng.integers(0, n, (bad.size, k))


def _official_outlier_edges(n1: int, n2: int, ow: int, rng: np.random.Generator
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outlier edges of the official graph (match.cc), drawn from ``rng``.

    Rows are pred ``[0, n1)`` then outliers ``[n1, n1 + n2)``; columns gt ``[0, n2)`` then
    outliers ``[n2, n2 + n1)``. Each real node gets ``degree = 6`` random outlier edges, each
    outlier row (or column) 6 random outlier-outlier edges, all at cost ``ow``, plus a diagonal
    "overlay" at ``100 * ow`` that keeps a perfect matching possible. Outlier nodes that draw
    no outlier-outlier edge force a real node to stay unmatched: that is why the official
    recall sits slightly (about 3e-4) below the exact optimum.
    """
    deg = 6
    d1, d2, d3 = max(0, min(deg, n1 - 1)), max(0, min(deg, n2 - 1)), min(deg, n1, n2)
    rows, cols, cost = [], [], []
    if d1:  # pred i -> outlier column n2 + j, j != i
        src = np.repeat(np.arange(n1), d1)
        o = _k_of_n(rng, d1, n1 - 1, n1).ravel()
        rows.append(src)
        cols.append(n2 + o + (o >= src))
    if d2:  # outlier row n1 + i -> gt j, i != j
        dst = np.repeat(np.arange(n2), d2)
        o = _k_of_n(rng, d2, n2 - 1, n2).ravel()
        rows.append(n1 + o + (o >= dst))
        cols.append(dst)
    if d3:  # outlier - outlier
        nmax, nmin = max(n1, n2), min(n1, n2)
        a = np.repeat(np.arange(nmax), d3)
        o = _k_of_n(rng, d3, nmin, nmax).ravel()
        rows.append(n1 + (a if n1 < n2 else o))
        cols.append(n2 + (o if n1 < n2 else a))
    cost.append(np.full(sum(x.size for x in rows), ow, dtype=np.int64))
    rows += [np.arange(n1), n1 + np.arange(n2)]  # overlay
    cols += [n2 + np.arange(n1), np.arange(n2)]
    cost.append(np.full(n1 + n2, 100 * ow, dtype=np.int64))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(cost)


def correspond_pixels(bmap1: np.ndarray, bmap2: np.ndarray, max_dist: float = 0.0075
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Bool maps of matched pixels of ``bmap1`` and ``bmap2`` (``correspondPixels`` semantics).

    ``max_dist`` is a fraction of the image diagonal, as in the official code.
    """
    bmap1 = np.asarray(bmap1).astype(bool)
    if bmap1.shape != np.shape(bmap2):
        raise ValueError(f"boundary maps differ in size: {bmap1.shape} vs {np.shape(bmap2)}")
    gt = BoundaryIndex(bmap2, max_dist)
    rows, cols = np.nonzero(bmap1)
    m1, m2 = gt.match(rows, cols)
    out1 = np.zeros(bmap1.shape, dtype=bool)
    out2 = np.zeros(bmap1.shape, dtype=bool)
    out1[rows[m1], cols[m1]] = True
    out2[gt.rows[m2], gt.cols[m2]] = True
    return out1, out2
