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

def test_cluster_bootstrap_is_wider_under_within_image_correlation():
    # 20 images of 10 masks each; masks of an image share its difficulty (IoU 0.2..0.9 by image)
    # and differ by a little noise: 200 masks but in effect 20 independent draws
    rng = np.random.default_rng(0)
    level = rng.uniform(0.2, 0.9, size=20)
    values = np.repeat(level, 10) + rng.normal(0, 0.01, size=200)
    images = np.repeat([f"img{i}" for i in range(20)], 10)
    lo_c, hi_c = bootstrap_ci(values, seed=0, clusters=images)
    lo_m, hi_m = bootstrap_ci(values, seed=0)
    assert lo_c < values.mean() < hi_c and lo_m < values.mean() < hi_m
    assert (hi_c - lo_c) > 2.5 * (hi_m - lo_m)  # ~sqrt(10) wider: 20 draws, not 200
    # one mask per image: the cluster bootstrap is the mask bootstrap
    assert bootstrap_ci(values[:20], seed=3, clusters=images[::10]) == pytest.approx(bootstrap_ci(values[:20], seed=3))


def test_cluster_sums_and_ignore_by_hand():
    from sambench.metrics.iou import cluster_sums

    sums, counts = cluster_sums(np.array([1.0, 2.0, 4.0, 8.0]), ["b", "a", "b", "c"])
    assert sums.tolist() == [5.0, 2.0, 8.0] and counts.tolist() == [2, 1, 1]  # order of first appearance
    gt = np.zeros((4, 4), bool)
    gt[0:2, 0:2] = True  # 4 px
    pred = np.zeros((4, 4), bool)
    pred[0:2, 0:4] = True  # 8 px: 4 px spill
    ignore = np.zeros((4, 4), bool)
    ignore[0:2, 3] = True  # half the spill is ignored
    assert batch_iou(pred[None], gt).tolist() == [0.5]
    assert batch_iou(pred[None], gt, ignore).tolist() == [pytest.approx(4 / 6)]
