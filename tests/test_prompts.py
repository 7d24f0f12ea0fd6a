"""Click rules on hand-made masks (values worked out by hand)."""
import numpy as np

from sambench.prompts import Click, center_point, next_click, padded_distance, random_point, stable_rng


def test_center_of_a_square_is_its_middle_pixel():
    gt = np.zeros((9, 9), bool)
    gt[2:7, 2:7] = True
    assert center_point(gt) == Click(4, 4, True)
    assert padded_distance(gt)[4, 4] == 3.0


def test_mask_touching_the_border_counts_the_border_as_boundary():
    # A 3x7 image that is all mask: with RITM's 1-px padding, row 1 is deepest (distance 2)
    # and columns 1..5 tie; the first in raster order wins.
    gt = np.ones((3, 7), bool)
    dist = padded_distance(gt)
    assert dist[1].tolist() == [1, 2, 2, 2, 2, 2, 1]
    assert dist[0].tolist() == [1] * 7
    assert center_point(gt) == Click(1, 1, True)


def test_ties_go_to_the_first_pixel_in_raster_order():
    gt = np.zeros((10, 10), bool)
    gt[1:4, 6:9] = True  # center (x=7, y=2), first in raster order
    gt[5:8, 1:4] = True  # center (x=2, y=6), same depth
    assert center_point(gt) == Click(7, 2, True)


def test_empty_mask_has_no_center():
    assert center_point(np.zeros((4, 4), bool)) is None


def test_random_point_is_in_mask_and_seeded():
    gt = np.zeros((50, 50), bool)
    gt[10:20, 30:45] = True
    a = random_point(gt, stable_rng(0, "ds", "img", "m1"))
    b = random_point(gt, stable_rng(0, "ds", "img", "m1"))
    c = random_point(gt, stable_rng(1, "ds", "img", "m1"))
    assert a == b and a.positive and gt[a.y, a.x]
    assert gt[c.y, c.x] and c != a
    points = {random_point(gt, stable_rng(0, "ds", "img", str(i))) for i in range(200)}
    assert all(gt[p.y, p.x] for p in points)
    assert len(points) > 100  # spread over the mask, not a constant


def test_false_negative_deeper_gives_positive_click():
    gt = np.zeros((12, 20), bool)
    gt[1:11, 1:11] = True
    pred = np.zeros_like(gt)
    pred[1:11, 1:4] = True  # left strip found; FN is the 10x7 block cols 4..10
    pred[0, 15] = True  # a 1-px false positive (depth 1)
    click = next_click(gt, pred)
    assert click.positive
    # FN block rows 1..10, cols 4..10: deepest distance 4 at rows 4..7, col 7; first row wins
    assert (click.x, click.y) == (7, 4)


def test_false_positive_deeper_gives_negative_click():
    gt = np.zeros((12, 20), bool)
    gt[2:5, 2:5] = True
    pred = gt.copy()
    pred[2:9, 10:17] = True  # a 7x7 false positive, center (13, 5)
    assert next_click(gt, pred) == Click(13, 5, False)


def test_equal_error_depths_give_a_negative_click():
    gt = np.zeros((10, 20), bool)
    gt[1:4, 1:4] = True  # 3x3 FN (pred empty there), depth 2 at (2, 2)
    pred = np.zeros_like(gt)
    pred[5:8, 10:13] = True  # 3x3 FP, depth 2 at (11, 6)
    assert next_click(gt, pred) == Click(11, 6, False)


def test_clicked_pixels_are_not_clicked_again_and_perfect_gives_none():
    gt = np.zeros((8, 8), bool)
    gt[2:5, 2:5] = True
    pred = np.zeros_like(gt)
    clicked = np.zeros_like(gt)
    clicked[3, 3] = True  # the center was clicked already
    assert next_click(gt, pred, clicked) == Click(2, 2, True)  # depth 1, first in raster order
    assert next_click(gt, gt.copy()) is None
