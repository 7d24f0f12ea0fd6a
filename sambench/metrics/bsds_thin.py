"""Morphological thinning as MATLAB's ``bwmorph(bw, 'thin', Inf)``.

The BSDS benchmark (``evaluation_bdry_image.m``, Dollár's ``edgesEvalImg.m``) thins every
thresholded edge map before matching, so the precision count depends on this exact operator.
MATLAB documents it as the two-subiteration algorithm of Guo and Hall (1989) as given by
Lam, Lee and Suen (1992, p. 879): a foreground pixel ``p`` with neighbours ``x1..x8`` (east
first, counter-clockwise) is deleted in subiteration 1 when G1, G2 and G3 hold and in
subiteration 2 when G1, G2 and G3' hold; ``Inf`` repeats full iterations until nothing changes.
Pixels outside the image count as background (``bwlookup`` zero padding).

Written here (≈50 lines) rather than taken from scikit-image only to avoid a dependency; it
equals ``skimage.morphology.thin`` pixel for pixel (checked in the tests when it is installed).
"""
from __future__ import annotations

import numpy as np

# Bit k of a neighbourhood code is x_{k+1}: E, NE, N, NW, W, SW, S, SE (rows grow downwards,
# so "north" is row - 1). (drow, dcol) per bit:
_OFFSETS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _deletion_luts() -> tuple[np.ndarray, np.ndarray]:
    """256-entry tables: True where the centre pixel is deleted (subiteration 1, 2)."""
    codes = np.arange(256)
    x = [None] + [(codes >> k) & 1 == 1 for k in range(8)]  # x[1]..x[8], 1-based like the paper

    def xi(i: int) -> np.ndarray:  # x9 wraps to x1
        return x[(i - 1) % 8 + 1]

    # G1: exactly one 4-connected "0 followed by 1" transition (crossing number X_H(p) = 1).
    xh = sum((~xi(2 * i - 1) & (xi(2 * i) | xi(2 * i + 1))).astype(int) for i in range(1, 5))
    g1 = xh == 1
    # G2: 2 <= min(n1, n2) <= 3.
    n1 = sum((xi(2 * k - 1) | xi(2 * k)).astype(int) for k in range(1, 5))
    n2 = sum((xi(2 * k) | xi(2 * k + 1)).astype(int) for k in range(1, 5))
    m = np.minimum(n1, n2)
    g2 = (m >= 2) & (m <= 3)
    # G3: (x2 | x3 | ~x8) & x1 == 0 ; G3': (x6 | x7 | ~x4) & x5 == 0.
    g3 = ~((xi(2) | xi(3) | ~xi(8)) & xi(1))
    g3p = ~((xi(6) | xi(7) | ~xi(4)) & xi(5))
    return g1 & g2 & g3, g1 & g2 & g3p


_LUT1, _LUT2 = _deletion_luts()


def _codes(padded: np.ndarray) -> np.ndarray:
    """Neighbourhood code of every interior pixel of a zero-padded uint8 {0,1} image."""
    h, w = padded.shape[0] - 2, padded.shape[1] - 2
    code = np.zeros((h, w), dtype=np.uint8)
    for bit, (dr, dc) in enumerate(_OFFSETS):
        code |= padded[1 + dr:1 + dr + h, 1 + dc:1 + dc + w] << bit
    return code


def thin(bw: np.ndarray, max_iter: float = np.inf) -> np.ndarray:
    """Return ``bwmorph(bw, 'thin', max_iter)`` as a bool array of the same shape.

    Only the bounding box of the foreground (plus a one-pixel margin) is processed: thinning
    never adds pixels, so nothing outside it can change.
    """
    bw = np.asarray(bw).astype(bool)
    out = np.zeros(bw.shape, dtype=bool)
    rows = np.flatnonzero(bw.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(bw.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    pad = np.zeros((r1 - r0 + 2, c1 - c0 + 2), dtype=np.uint8)
    pad[1:-1, 1:-1] = bw[r0:r1, c0:c1]
    inner = pad[1:-1, 1:-1]  # a view: deletions below update `pad` in place
    it = 0
    while it < max_iter:
        changed = False
        for lut in (_LUT1, _LUT2):
            delete = lut[_codes(pad)] & (inner == 1)
            if delete.any():
                inner[delete] = 0
                changed = True
        it += 1
        if not changed:
            break
    out[r0:r1, c0:c1] = inner.astype(bool)
    return out
