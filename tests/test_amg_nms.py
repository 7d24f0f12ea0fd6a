"""sambench's torch NMS: hand-checked cases, then equality with torchvision's ``nms`` and
``batched_nms`` (run in the official venv, see sambench/amg/official.py) on random boxes:
float and integer coordinates, many equal scores, several categories, and more than 1000 boxes
(torchvision's per-category route on CPU)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from sambench.amg.nms import batched_nms, nms
from sambench.amg.official import ENV_VAR, official_available, official_nms


def keep(boxes, scores, threshold, idxs=None):
    boxes, scores = torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32)
    if idxs is None:
        return nms(boxes, scores, threshold).tolist()
    return batched_nms(boxes, scores, torch.tensor(idxs), threshold).tolist()


def test_hand_checked():
    # IoU(0, 1) = 50 / 150 = 1/3; IoU(0, 2) = 0; box 3 equals box 0.
    boxes = [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]]
    assert keep(boxes, [0.9, 0.8, 0.7, 0.6], 0.5) == [0, 1, 2]
    assert keep(boxes, [0.9, 0.8, 0.7, 0.6], 0.3) == [0, 2]
    assert keep([[0, 0, 10, 10], [0, 0, 10, 20]], [0.9, 0.8], 0.5) == [0, 1]  # IoU 0.5 is not > 0.5
    assert keep([[0, 0, 10, 10], [0, 0, 10, 20]], [0.9, 0.8], 0.49) == [0]
    assert keep(boxes, [0.6, 0.8, 0.7, 0.9], 0.5) == [3, 1, 2]  # the higher-scored duplicate survives
    assert keep(boxes, [0.5, 0.5, 0.5, 0.5], 0.5) == [0, 1, 2]  # equal scores: index order
    assert keep(boxes, [0.9, 0.8, 0.7, 0.6], 0.3, idxs=[0, 1, 0, 1]) == [0, 1, 2]
    assert keep(boxes, [0.9, 0.8, 0.7, 0.6], 0.3, idxs=[0, 1, 0, 2]) == [0, 1, 2, 3]
    assert keep(boxes, [0.9, 0.8, 0.7, 0.6], 0.3, idxs=[0, 0, 1, 0]) == [0, 2]
    assert keep([[0, 0, 0, 0], [0, 0, 0, 0]], [0.9, 0.8], 0.5) == [0, 1]  # 0/0 IoU never suppresses
    assert keep(np.zeros((0, 4)), np.zeros(0), 0.5) == []
    assert keep(np.zeros((0, 4)), np.zeros(0), 0.5, idxs=np.zeros(0, int)) == []


def test_blocks_give_the_sequential_result(monkeypatch):
    """The blocked pass keeps exactly what the one-box-at-a-time pass keeps."""
    import sambench.amg.nms as module

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (700, 2))
    boxes = torch.tensor(np.concatenate([xy, xy + rng.uniform(1, 30, (700, 2))], 1), dtype=torch.float32)
    scores = torch.tensor(rng.random(700), dtype=torch.float32)
    reference = nms(boxes, scores, 0.5).tolist()
    monkeypatch.setattr(module, "BLOCK", 1)
    assert nms(boxes, scores, 0.5).tolist() == reference
    monkeypatch.setattr(module, "BLOCK", 37)
    assert nms(boxes, scores, 0.5).tolist() == reference


def random_case(rng, n: int, ties: bool, categories: int, integer: bool):
    xy = rng.uniform(0, 100, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 40, (n, 2))], 1).astype(np.float32)
    if integer:
        boxes = np.round(boxes).astype(np.float32)
    scores = (rng.integers(0, 5, n) if ties else rng.random(n)).astype(np.float32)
    return boxes, scores, rng.integers(0, categories, n).astype(np.int64)


def test_equals_torchvision():
    ok, why = official_available()
    if not ok:
        if os.environ.get(ENV_VAR):
            pytest.fail(why)
        pytest.skip(why)
    rng = np.random.default_rng(0)
    thresholds = [0.0, 0.3, 0.5, 0.7, 0.9]
    cases = [(60, False, 1, False), (300, True, 3, True), (1500, True, 1, True), (1200, False, 4, False),
             (2500, True, 2, True), (1, False, 1, False), (0, False, 1, False)]
    arrays = [random_case(rng, *case) for case in cases]
    reference = official_nms(arrays, thresholds)
    for (boxes, scores, idxs), expected, case in zip(arrays, reference, cases):
        b, s, i = torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(idxs)
        for t in thresholds:
            assert nms(b, s, t).tolist() == expected[str(t)]["nms"], (case, t)
            assert batched_nms(b, s, i, t).tolist() == expected[str(t)]["batched_nms"], (case, t)
