"""Dataset aggregation (collect_eval_bdry.m / edgesEvalDir.m) on hand-made counts."""
import math

import numpy as np
import pytest

from sambench.metrics.bsds import EdgeEvalResult
from sambench.metrics.bsds_scores import (average_precision, default_thresholds, max_f,
                                          ois_counts, recall_at_50, rpf, summarize)


def test_thresholds_follow_matlab_linspace():
    t = default_thresholds(99)
    assert t.size == 99 and t[0] == 0.01 and t[-1] == 0.99
    k = np.arange(99)
    np.testing.assert_array_equal(t[:-1], (0.01 + (k * (0.99 - 0.01)) / 98)[:-1])
    np.testing.assert_allclose(default_thresholds(5), [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])
    assert default_thresholds(1).tolist() == [0.5]


def test_zero_guards():
    r, p, f = rpf(np.array([[0, 0, 0, 0], [3, 4, 0, 0], [0, 5, 2, 2]]))
    assert r.tolist() == [0, 0.75, 0] and p.tolist() == [0, 0, 1] and f.tolist() == [0, 0, 0]


def test_max_f_interpolates_between_thresholds():
    # (R, P) = (1, 0) -> (0, 1): F = 2d(1-d) on the segment, sampled at d = k/99.
    t, r, p, f = max_f(np.array([0.2, 0.4]), np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert f == pytest.approx(2 * (49 / 99) * (50 / 99), abs=1e-15)
    d = (t - 0.2) / 0.2  # either of the two (mathematically equal) samples next to d = 0.5
    assert min(abs(d - 49 / 99), abs(d - 50 / 99)) < 1e-12 and r == pytest.approx(1 - d)
    # A curve whose best F is at a sampled threshold returns that threshold exactly.
    assert max_f(np.array([0.1, 0.5]), np.array([0.8, 0.4]), np.array([0.8, 0.9]))[:3] == (
        0.1, 0.8, 0.8)


def test_ois_takes_the_first_best_threshold_per_image():
    # Image 0: F ties at thresholds 0 (R=1/2, P=1) and 2 (R=1, P=1/2): the first is pooled.
    img0 = [[5, 10, 4, 4], [1, 10, 1, 4], [10, 10, 4, 8]]
    img1 = [[2, 10, 2, 8], [6, 10, 3, 3], [1, 10, 1, 1]]  # best at threshold 1
    counts = np.array([img0, img1])
    _, _, f = rpf(counts[0])
    assert f[0] == f[2]
    np.testing.assert_array_equal(ois_counts(counts), [5 + 6, 20, 4 + 3, 4 + 3])
    s = summarize(default_thresholds(3), counts)
    assert s["ois_r"] == 11 / 20 and s["ois_p"] == 1.0


def test_ap_is_zero_outside_the_recall_range():
    # Recall covers only [0.2, 0.6]; P(R) = 1.25 - 1.25 R there: 41 samples, sum 30.75.
    ap = average_precision(np.array([0.6, 0.4, 0.2]), np.array([0.5, 0.75, 1.0]))
    assert ap == pytest.approx(0.3075, abs=1e-12)


def test_ap_keeps_the_first_of_repeated_recalls():
    # R = 0.5 at two thresholds: unique() keeps the first (P = 0.6), as MATLAB >= R2013a.
    ap = average_precision(np.array([0.5, 0.5, 0.0]), np.array([0.6, 0.8, 1.0]))
    expected = sum(1.0 - 0.8 * r / 100 for r in range(51)) * 0.01
    assert ap == pytest.approx(expected, abs=1e-12)


def test_ap_of_a_single_recall_value_is_zero():
    assert average_precision(np.array([0.3, 0.3]), np.array([0.9, 0.8])) == 0.0


@pytest.mark.parametrize("r, p, expected", [
    ([0.9, 0.5, 0.1], [0.3, 0.7, 0.9], 0.7),               # crosses P = 0.5
    ([0.8, 0.4], [0.6, 0.9], 0.8),                         # never below 0.5: R at the lowest P
    ([0.9, 0.5], [0.2, 0.4], math.nan),                    # never reaches 0.5
    ([0.9, 0.7, 0.6, 0.2], [0.52, 0.45, 0.6, 0.9], 0.7 + 0.2 * 5 / 7),  # sorted by P, not thr
    ([0.9, 0.8, 0.3], [0.4, 0.4, 0.7], 0.7),               # repeated P: highest recall kept
    ([0.4, 0.4], [0.7, 0.6], 0.4),                         # one distinct recall, P >= 0.5
    ([0.4, 0.4], [0.3, 0.2], math.nan),                    # one distinct recall, P < 0.5
])
def test_r50_edge_cases(r, p, expected):
    got = recall_at_50(np.array(r), np.array(p))
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_result_summary_and_curve_agree():
    counts = np.array([[[8, 10, 6, 10], [6, 10, 6, 7], [3, 10, 3, 3]],
                       [[9, 12, 5, 9], [7, 12, 5, 6], [2, 12, 2, 2]]])
    res = EdgeEvalResult(default_thresholds(3), ["a", "b"], counts)
    s = res.summary()
    cv = res.curve()
    assert set(s) >= {"ods", "ois", "ap", "r50", "ods_r", "ods_p", "ods_t", "ois_r", "ois_p"}
    assert cv["recall"][0] == 17 / 22 and cv["precision"][0] == 11 / 19
    assert max(cv["f"]) <= s["ods"] <= 1 and 0 <= s["ap"] <= 1
    assert res.image_scores().shape == (2, 4)
