"""IoU, bootstrap CI and NoC against values worked out by hand."""
import numpy as np
import pytest

from sambench.metrics.iou import batch_iou, bootstrap_ci, mask_iou, noc


def test_mask_iou_by_hand():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0:2, 0:2] = True  # 4 px
    b[1:3, 1:3] = True  # 4 px, overlap 1 px
    assert mask_iou(a, b) == pytest.approx(1 / 7)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0
    assert batch_iou(np.stack([a, b, ~a]), a).tolist() == pytest.approx([1.0, 1 / 7, 0.0])
    with pytest.raises(ValueError):
        mask_iou(a, np.zeros((3, 3), bool))


def test_bootstrap_ci_contains_mean_and_is_seeded():
    values = [0.1, 0.5, 0.9, 0.7, 0.3]
    lo, hi = bootstrap_ci(values, seed=0)
    assert lo < np.mean(values) < hi
    assert (lo, hi) == bootstrap_ci(values, seed=0)
    assert (lo, hi) != bootstrap_ci(values, seed=1)
    assert bootstrap_ci([0.4], seed=0) == pytest.approx((0.4, 0.4))
    assert 0.1 <= lo and hi <= 0.9


def test_noc_by_hand():
    curve = [0.5, 0.8, 0.86, 0.95]
    assert noc(curve, 0.85) == 3
    assert noc(curve, 0.90) == 4
    assert noc(curve, 0.99) == 4  # never reached: capped at the clicks run
    assert noc([0.9], 0.85) == 1
