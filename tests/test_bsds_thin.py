"""bwmorph(..., 'thin', Inf) on hand-worked patterns and on the BSDS500 ground truth."""
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from sambench.metrics.bsds import seg2bdry
from sambench.metrics.bsds_thin import thin

SAMPLE = Path(__file__).parent / "fixtures" / "bsds500_bench_sample"


def grid(text: str) -> np.ndarray:
    return np.array([[c == "#" for c in row.split()[0]] for row in text.strip().splitlines()])


def test_3x3_block_thins_to_its_centre():
    # Worked by hand: subiteration 1 (G1, G2, G3) deletes the top row and the right column
    # (the G3 test passes where x1 = 0, or x1 = 1 with x2 = x3 = 0 and x8 = 1), leaving a 2x2
    # block; subiteration 2 (G3') deletes its left column and bottom-right pixel.
    block = grid("""
        .....
        .###.
        .###.
        .###.
        .....""")
    expected = grid("""
        .....
        .....
        ..#..
        .....
        .....""")
    np.testing.assert_array_equal(thin(block), expected)
    np.testing.assert_array_equal(thin(block, max_iter=1), expected)  # one iteration suffices


def test_2x2_block_keeps_its_bottom_left_pixel():
    # Subiteration 1 deletes (1,1), (1,2) and (2,2); (2,1) has x1 = x2 = x3 = 1, so G3 fails.
    block = grid("""
        ....
        .##.
        .##.
        ....""")
    expected = grid("""
        ....
        ....
        .#..
        ....""")
    np.testing.assert_array_equal(thin(block), expected)


@pytest.mark.parametrize("pattern", [
    """
    .......
    .#####.
    .......""",
    """
    #....
    .#...
    ..###""",
    """
    #""",
])
def test_one_pixel_wide_curves_are_kept(pattern):
    # End points have min(n1, n2) = 1 and inner points X_H = 2: G2 resp. G1 fails.
    bw = grid(pattern)
    np.testing.assert_array_equal(thin(bw), bw)


def test_a_hole_survives_as_a_ring():
    # Thinning preserves the Euler number: a square with a hole becomes a 4-pixel ring.
    ring = grid("""
        .......
        .#####.
        .#####.
        .##.##.
        .#####.
        .#####.
        .......""")
    expected = grid("""
        .......
        .......
        ...#...
        ..#.#..
        ...#...
        .......
        .......""")
    np.testing.assert_array_equal(thin(ring), expected)


def test_runs_to_convergence_and_is_idempotent():
    rng = np.random.default_rng(0)
    bw = np.zeros((60, 80), dtype=bool)
    for _ in range(8):  # thick random blobs need many iterations
        r, c = rng.integers(0, 50), rng.integers(0, 70)
        bw[r:r + rng.integers(3, 15), c:c + rng.integers(3, 15)] = True
    once = thin(bw)
    np.testing.assert_array_equal(thin(once), once)
    assert not np.array_equal(thin(bw, max_iter=1), once)  # a single iteration is not enough
    assert not (once & ~bw).any()  # thinning only removes pixels


def test_empty_and_full_border_images():
    assert not thin(np.zeros((5, 7), dtype=bool)).any()
    full = thin(np.ones((6, 6), dtype=bool))  # pixels outside count as background
    assert 0 < full.sum() < 36


def test_equals_scikit_image_when_available():
    skimage_morph = pytest.importorskip("skimage.morphology")
    rng = np.random.default_rng(1)
    for _ in range(30):
        bw = rng.random(tuple(rng.integers(5, 40, 2))) < rng.random()
        np.testing.assert_array_equal(thin(bw), skimage_morph.thin(bw))


def test_bsds_boundaries_are_thinned_segmentation_boundaries():
    # The BSDS500 annotations were made in MATLAB as bwmorph(seg2bdry(seg,'imageSize'),'thin',
    # Inf): reproducing all 26 sample annotations pixel for pixel checks thin (and seg2bdry).
    n = 0
    for mat in sorted((SAMPLE / "groundTruth").glob("*.mat")):
        for entry in scipy.io.loadmat(str(mat))["groundTruth"].flat:
            seg, bnd = entry["Segmentation"][0, 0], entry["Boundaries"][0, 0] > 0
            np.testing.assert_array_equal(thin(seg2bdry(seg)), bnd, err_msg=mat.name)
            n += 1
    assert n == 26
