"""correspondPixels: the matching radius, one-to-one optimum, and cross-checks with SciPy."""
import math

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from sambench.metrics.bsds_match import BoundaryIndex, assign, correspond_pixels, match_radius

SHAPE = (30, 40)  # diagonal 50 px
MAX_DIST = 0.04  # radius exactly 2.0 px


def maps(pred_px, gt_px, shape=SHAPE):
    a, b = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    for r, c in pred_px:
        a[r, c] = True
    for r, c in gt_px:
        b[r, c] = True
    return a, b


def test_radius_is_a_fraction_of_the_diagonal():
    assert match_radius(SHAPE, MAX_DIST) == 2.0
    assert match_radius((321, 481), 0.0075) == pytest.approx(4.3371, abs=1e-4)


@pytest.mark.parametrize("gt, matched", [
    ((10, 12), True),   # d = 2: exactly the radius, included (match.cc skips only d^2 > r^2)
    ((12, 10), True),
    ((11, 12), False),  # d = sqrt(5) > 2
    ((12, 12), False),  # d = sqrt(8)
    ((11, 11), True),   # d = sqrt(2)
    ((10, 10), True),   # same pixel
])
def test_match_at_exactly_the_tolerance(gt, matched):
    m1, m2 = correspond_pixels(*maps([(10, 10)], [gt]), max_dist=MAX_DIST)
    assert m1[10, 10] == matched and m2[gt] == matched


def test_radius_just_below_an_integer_distance_excludes_it():
    m1, _ = correspond_pixels(*maps([(10, 10)], [(10, 12)]), max_dist=MAX_DIST * (1 - 1e-9))
    assert not m1.any()


def test_one_to_one_and_nearest_wins():
    # Two predictions compete for one ground-truth pixel: the closer one gets it.
    m1, m2 = correspond_pixels(*maps([(10, 10), (10, 11)], [(10, 11)]), max_dist=MAX_DIST)
    assert m2.sum() == 1 and m1.sum() == 1 and m1[10, 11]


def test_cardinality_beats_a_zero_distance_match():
    # p coincides with g1, but q can only reach g1: the optimum pairs p-g2 and q-g1.
    p, q, g1, g2 = (10, 10), (10, 8), (10, 10), (10, 12)
    m1, m2 = correspond_pixels(*maps([p, q], [g1, g2]), max_dist=MAX_DIST)
    assert m1.sum() == 2 and m2.sum() == 2


def test_empty_maps():
    a, b = maps([], [(3, 3)])
    for x, y in ((a, b), (b, a), (a, a)):
        m1, m2 = correspond_pixels(x, y, max_dist=MAX_DIST)
        assert not m1.any() and not m2.any()


def test_size_mismatch_is_refused():
    with pytest.raises(ValueError):
        correspond_pixels(np.zeros((4, 5)), np.zeros((5, 4)))


def random_curves(rng, shape, n_curves=6, jitter=0.0):
    """Random-walk polylines: boundary-like maps with plenty of competing pairs."""
    bw = np.zeros(shape, dtype=bool)
    for _ in range(n_curves):
        r, c = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(rng.integers(20, 80)):
            angle += rng.normal(0, 0.3)
            r, c = r + np.sin(angle), c + np.cos(angle)
            rr, cc = int(round(r + rng.normal(0, jitter))), int(round(c + rng.normal(0, jitter)))
            if 0 <= rr < shape[0] and 0 <= cc < shape[1]:
                bw[rr, cc] = True
    return bw


@pytest.mark.parametrize("seed", range(4))
def test_optimum_agrees_with_independent_solvers(seed):
    """Same cardinality as Hopcroft-Karp, same (k, total cost) as a dense Hungarian solve."""
    rng = np.random.default_rng(seed)
    pred = random_curves(rng, (60, 80), jitter=1.0)
    gt = random_curves(rng, (60, 80))
    gt |= np.roll(pred, 2, axis=seed % 2)  # guarantee overlap
    ix = BoundaryIndex(gt, 0.05)
    rows, cols = np.nonzero(pred)
    i, j, w = ix.pairs(rows, cols)
    pi, pj = assign(i, j, w, ix.outlier_weight)
    assert len(set(pi)) == pi.size and len(set(pj)) == pj.size  # one to one
    cost = dict(zip(zip(i, j), w))
    ours = (pi.size, sum(cost[p] for p in zip(pi, pj)))

    adj = csr_matrix((np.ones(i.size), (i, j)), shape=(rows.size, ix.n))
    assert np.count_nonzero(maximum_bipartite_matching(adj, perm_type="column") >= 0) == ours[0]

    dense = np.full((rows.size, ix.n), float(ix.outlier_weight))  # non-edge = leave unmatched
    dense[i, j] = w
    r, c = linear_sum_assignment(dense)
    real = dense[r, c] < ix.outlier_weight
    assert (int(real.sum()), int(dense[r, c][real].sum())) == ours


def test_official_graph_emulation_is_seeded_and_close_to_the_optimum():
    rng = np.random.default_rng(7)
    pred = random_curves(rng, (80, 100), n_curves=10, jitter=1.0)
    gt = random_curves(rng, (80, 100), n_curves=10) | np.roll(pred, 1, axis=0)
    ix = BoundaryIndex(gt, 0.0075 * 3)
    rows, cols = np.nonzero(pred)
    exact = ix.match(rows, cols)[1].sum()
    a = ix.match(rows, cols, np.random.default_rng(123))
    b = ix.match(rows, cols, np.random.default_rng(123))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # The random outlier graph can only lose matches, and only a few (match.cc's own warning).
    assert exact - 10 <= a[1].sum() <= exact


def test_official_weights_follow_match_cc():
    ix = BoundaryIndex(np.ones((321, 481), dtype=bool), 0.0075)
    r = ix.radius
    assert ix.outlier_weight == math.ceil(100 * r * 100)
    assert set(ix.cost) == {int(np.rint(100 * math.sqrt(d2))) for d2 in
                            (0, 1, 2, 4, 5, 8, 9, 10, 13, 16, 17, 18)}
