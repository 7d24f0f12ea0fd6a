"""Parity of a family against its reference package, shared by the family parity tests.

Random weights (every tensor, batch-norm statistics and attention-bias tables included) are
written in the released layout, loaded by both implementations, and every prompt kind is
compared: low-res logits within :data:`~sambench.models.sam.parity.LOGIT_TOL`, scores within
:data:`~sambench.models.sam.parity.SCORE_TOL`.
"""
from __future__ import annotations

import numpy as np

from sambench.models.sam.parity import synthetic_image

IMAGES = {"landscape": (300, 400), "portrait": (400, 300), "thin": (37, 250)}


def prompt_cases(height: int, width: int, seed: int = 0) -> list[dict]:
    """Points, boxes, points + box, multimask on and off, padding labels, and mask input
    (case 5 feeds back case 0's best logits, case 6 case 3's)."""
    rng = np.random.default_rng(seed)
    scale = np.array([width - 1, height - 1])

    def points(*shape):
        return (rng.uniform(0, 1, (*shape, 2)) * scale).astype(np.float32)

    def boxes(n):
        corners = np.sort(rng.uniform(0, 1, (n, 2, 2)) * scale, axis=1)
        return corners.reshape(n, 4).astype(np.float32)

    box = boxes(2)
    return [
        dict(points=points(3, 1), labels=np.ones((3, 1), np.int64), multimask=True),
        dict(points=points(2, 3), labels=np.array([[1, 0, 1], [1, 1, -1]]), multimask=False),
        dict(boxes=box, multimask=False),
        dict(points=points(2, 1), labels=np.ones((2, 1), np.int64), boxes=box, multimask=True),
        dict(boxes=boxes(1), multimask=True),
        dict(points=points(3, 2), labels=np.array([[1, 0]] * 3), multimask=False, feedback=0),
        dict(points=points(2, 1), labels=np.ones((2, 1), np.int64), boxes=box, multimask=False, feedback=3),
    ]


def images(seed: int = 0) -> dict[str, np.ndarray]:
    return {name: synthetic_image(h, w, seed + i) for i, (name, (h, w)) in enumerate(IMAGES.items())}


def ours_for_cases(model, embedding, cases: list[dict], reference_low_res: list[np.ndarray],
                   reference_scores: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Our (low-res logits, scores) per case, one batched call each; a feedback case gets the
    *reference's* best logits of the earlier case, so both answer the same prompt."""
    out = []
    for case in cases:
        mask_input = None
        if case.get("feedback") is not None:
            low, scores = reference_low_res[case["feedback"]], reference_scores[case["feedback"]]
            best = low[np.arange(len(low)), scores.argmax(1)]
            size = len(case["points"]) if case.get("points") is not None else len(case["boxes"])
            mask_input = best[np.arange(size) % len(best)][:, None]
        pred = model.predict(embedding, points=case.get("points"), labels=case.get("labels"),
                             box=case.get("boxes"), mask_input=mask_input, multimask=case["multimask"],
                             return_masks=False)
        out.append((pred.low_res_logits, pred.scores))
    return out
