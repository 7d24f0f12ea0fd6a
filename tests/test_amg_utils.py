"""AMG building blocks (sambench.amg.utils) and generator behaviour that parity does not cover:
hand-checked grids, crops, boxes, stability, cleanup and RLE, options, the masks-only fallback
for models without logits, and the paper's covers-95%-of-the-image filter."""
from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sambench import masks as mask_codec
from sambench.amg import AutomaticMaskGenerator, utils
from sambench.errors import SambenchError
from sambench.types import Prediction


def test_point_grid_order_and_layers():
    grid = utils.build_point_grid(2)
    assert grid.tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]  # x fastest
    assert [len(g) for g in utils.build_all_layer_point_grids(32, 2, 2)] == [1024, 256, 64]
    assert [len(g) for g in utils.build_all_layer_point_grids(5, 1, 2)] == [25, 4]  # int(5 / 2)


def test_crop_boxes():
    boxes, layers = utils.generate_crop_boxes((90, 120), 1, 512 / 1500)
    # overlap int(512/1500 * 90) = 30; crop 75 x 60; x0 in (0, 45), y0 in (0, 30), x-major
    assert boxes == [[0, 0, 120, 90], [0, 0, 75, 60], [0, 30, 75, 90], [45, 0, 120, 60], [45, 30, 120, 90]]
    assert layers == [0, 1, 1, 1, 1]
    boxes, layers = utils.generate_crop_boxes((1500, 2250), 2, 512 / 1500)
    assert len(boxes) == 1 + 4 + 16 and layers.count(2) == 16
    assert all(b[2] <= 2250 and b[3] <= 1500 for b in boxes)


def test_masks_to_boxes_inclusive_and_empty():
    masks = np.zeros((2, 10, 12), bool)
    masks[0, 2:5, 3:9] = True
    assert utils.masks_to_boxes(masks).tolist() == [[3, 2, 8, 4], [0, 0, 0, 0]]
    assert utils.masks_to_boxes(np.zeros((0, 4, 4), bool)).shape == (0, 4)


def test_near_crop_edge_ignores_image_edges():
    crop, image = [0, 0, 75, 60], [0, 0, 120, 90]
    boxes = np.array([[0, 0, 30, 30], [10, 10, 60, 30], [30, 5, 50, 39], [5, 5, 30, 50]])
    # box 0 touches only image edges; box 1 ends 15 px from the crop's right edge; box 3 ends
    # 10 px from the bottom; box 2 is 21 px away from both inner edges.
    assert utils.is_box_near_crop_edge(boxes, crop, image).tolist() == [False, True, False, True]
    shifted = [45, 30, 120, 90]  # a crop at the bottom right: its left and top edges are inner
    boxes = np.array([[0, 30, 50, 40], [25, 25, 60, 50]])
    assert utils.is_box_near_crop_edge(boxes, shifted, image).tolist() == [True, False]


def test_stability_score():
    logits = np.zeros((3, 4, 4), np.float32)
    logits[0] = 5  # all pixels above +1 and -1
    logits[1, :2] = 5  # 8 above +1, 8 more in (-1, 1]... -> 8 / 16
    logits[1, 2:] = 0
    logits[2] = -5  # two empty masks
    score = utils.stability_score(logits, 0.0, 1.0)
    assert score[0] == 1.0 and score[1] == 0.5 and np.isnan(score[2])
    assert score.dtype == np.float32


def test_remove_small_regions():
    mask = np.zeros((20, 20), bool)
    mask[2:12, 2:12] = True
    mask[5, 5] = False  # a 1-px hole
    mask[15:17, 15:17] = True  # a 4-px island
    filled, changed = utils.remove_small_regions(mask, 5, "holes")
    assert changed and filled[5, 5] and filled.sum() == mask.sum() + 1
    cleaned, changed = utils.remove_small_regions(filled, 5, "islands")
    assert changed and not cleaned[15:17, 15:17].any() and cleaned.sum() == 100
    same, changed = utils.remove_small_regions(cleaned, 5, "islands")
    assert not changed and (same == cleaned).all()
    tiny = np.zeros((20, 20), bool)
    tiny[0, 0] = tiny[10, 10] = tiny[10, 11] = True  # all islands small: the largest stays
    kept, changed = utils.remove_small_regions(tiny, 5, "islands")
    assert changed and kept.sum() == 2 and kept[10, 10]
    diagonal = np.zeros((20, 20), bool)
    diagonal[3, 3] = diagonal[4, 4] = True  # 8-connected: one region of 2 px
    assert utils.remove_small_regions(diagonal, 2, "islands")[1] is False
    with pytest.raises(ValueError):
        utils.remove_small_regions(mask, 5, "both")


def test_rle_encodings_agree_with_pycocotools():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 7, 9)) > 0.5
    masks[1, 0, 0] = True
    masks[2, 0, 0] = False
    rles = mask_codec.encode(masks)
    for mask, rle in zip(masks, rles):
        assert isinstance(rle["counts"], str) and rle["size"] == [7, 9]
        assert mask_codec.encode(mask) == rle  # 2-D input: the same RLE
        assert (mask_codec.decode(rle) == mask).all()
        raw = mask_codec.uncompressed(mask)
        assert raw["counts"][0] == (0 if mask[0, 0] else raw["counts"][0])
        compressed = mask_utils.frPyObjects(raw, 7, 9)
        assert compressed["counts"].decode() == rle["counts"]
    assert mask_codec.encode(np.zeros((0, 3, 3), bool)) == []


def test_mask_data_filter_and_cat():
    data = utils.MaskData(rles=["a", "b", "c"], scores=np.array([0.1, 0.2, 0.3]))
    data.filter(np.array([True, False, True]))
    assert data["rles"] == ["a", "c"] and data["scores"].tolist() == [0.1, 0.3]
    data.cat(utils.MaskData(rles=["d"], scores=np.array([0.4])))
    data.filter(np.array([2, 0]))
    assert data["rles"] == ["d", "a"] and len(data) == 2


class BlobModel:
    """A model without logits (no ``upsample``): a disk around each point, the image-filling
    background as a second mask and an empty third one."""

    def embed(self, image):
        return image.shape[:2]

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=True):
        h, w = embedding
        y, x = np.mgrid[0:h, 0:w]
        masks = []
        for (px, py), in points:
            disk = (x - px) ** 2 + (y - py) ** 2 < 64
            masks.append([disk, np.ones((h, w), bool), np.zeros((h, w), bool)])
        masks = np.array(masks)
        k = 3 if multimask else 1
        scores = np.tile(np.array([0.95, 0.9, 0.99], np.float32), (len(points), 1))
        return Prediction(masks[:, :k], scores[:, :k], np.zeros((len(points), k, 256, 256), np.float32))

    def info(self):
        return None


def test_masks_only_model_and_area_filter():
    image = np.zeros((40, 60, 3), np.uint8)
    records = AutomaticMaskGenerator(BlobModel(), points_per_side=2, output_mode="coco_rle").generate(image)
    # Disks near the image corners survive NMS at 0.7 (they do not overlap); the full mask too;
    # empty masks have stability NaN and are dropped.
    assert {r["stability_score"] for r in records} == {1.0}
    assert any(r["area"] == 40 * 60 for r in records)
    paper = AutomaticMaskGenerator(BlobModel(), points_per_side=2, output_mode="coco_rle",
                                   max_mask_area_fraction=0.95).generate(image)
    assert len(paper) == len(records) - 1 and all(r["area"] < 0.95 * 2400 for r in paper)
    binary = AutomaticMaskGenerator(BlobModel(), points_per_side=2).generate(image)
    raw = AutomaticMaskGenerator(BlobModel(), points_per_side=2, output_mode="uncompressed_rle").generate(image)
    for r, b, u in zip(records, binary, raw):
        assert (mask_codec.decode(r["segmentation"]) == b["segmentation"]).all()
        assert mask_utils.frPyObjects(u["segmentation"], 40, 60)["counts"].decode() == r["segmentation"]["counts"]
        assert r["bbox"] == b["bbox"] and len(r["point_coords"]) == 1


def test_random_nms_score_is_seeded():
    image = np.zeros((40, 60, 3), np.uint8)
    gen = AutomaticMaskGenerator(BlobModel(), points_per_side=3, nms_score="random", output_mode="coco_rle",
                                 box_nms_thresh=0.2, multimask_output=False)
    first = gen.generate(image, np.random.default_rng(5))
    assert first == gen.generate(image, np.random.default_rng(5))


def test_bad_options():
    for kwargs in [dict(points_per_side=None), dict(points_per_side=8, point_grids=[np.zeros((1, 2))]),
                   dict(output_mode="png"), dict(nms_score="max_logit"), dict(crop_n_layers=1, points_per_side=None,
                                                                           point_grids=[np.zeros((1, 2))])]:
        with pytest.raises(SambenchError):
            AutomaticMaskGenerator(BlobModel(), **kwargs)
    with pytest.raises(SambenchError):
        AutomaticMaskGenerator(BlobModel(), points_per_side=2).generate(np.zeros((4, 4), np.uint8))
