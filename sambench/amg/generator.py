"""Automatic mask generation: prompt a model with a grid of points, keep the good, distinct masks.

The pipeline of SAM's data engine (paper App. B) as released in ``SamAutomaticMaskGenerator``,
with the same parameter names, defaults and output (segment-anything's
``automatic_mask_generator.py``), for any model of the :class:`~sambench.models.base.PromptableModel`
protocol:

1. the image and, with ``crop_n_layers``, overlapping zoomed-in crops, each embedded once;
2. a point grid per crop, prompted ``points_per_batch`` points per model call (3 masks a point);
3. per mask: predicted-IoU filter, stability score (IoU of the masks at logit ±offset) filter,
   masks touching an inner crop edge dropped, optionally the paper's "covers ≥ 95% of the
   image" filter (``max_mask_area_fraction``, not in the released code);
4. box NMS within each crop (by predicted IoU), then across crops (smaller crops win);
5. optionally (``min_mask_region_area``) small holes filled and small islands removed, then
   box NMS again preferring masks the cleanup left unchanged.

The output equals the official generator's on the same weights (tests/test_amg_parity.py).
It is faster because only the masks that pass the predicted-IoU filter are upsampled to full
resolution (the official code upsamples every mask first) and RLEs are encoded in C.

**Logits.** The stability score needs full-resolution logits. A model that has
``upsample(embedding, low_res_logits, threshold=None)`` (sambench's ``sam``, ``sam-official``)
is asked for low-res logits only (``predict(..., return_masks=False)``) and upsamples the kept
ones. Any other model gives binary masks, used as logits of ±``FALLBACK_LOGIT``: every
non-empty mask then has stability 1, so the stability filter only removes empty masks.

``return_logits=True`` (the edges task) adds the field ``logits`` to :meth:`generate_data`'s
output: per kept mask a zero-argument function giving its full-resolution logits (crop frame,
float32). They are recomputed on demand, so only masks that survive NMS are upsampled again;
until then each batch's low-res logits stay in memory (16x16 grid: ~200 MB).

Two options serve the proposal protocol (paper App. D.3): ``multimask_output=False`` prompts
for one mask per point (the single-output ablation) and ``nms_score="random"`` ranks masks
randomly for NMS (that ablation has no IoU score; pass ``rng`` to :meth:`generate_data`).
"""
from __future__ import annotations

import functools
from typing import Any, Optional

import numpy as np
import torch

from sambench import masks as mask_codec
from sambench.amg import utils
from sambench.amg.nms import batched_nms
from sambench.errors import SambenchError

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
NMS_SCORES = ("predicted_iou", "random")
FALLBACK_LOGIT = 1e4
MASK_THRESHOLD = 0.0  # logits > 0 is the mask, for every model of the protocol


class AutomaticMaskGenerator:
    """Masks for a whole image (see the module docstring); parameters as the official
    ``SamAutomaticMaskGenerator``'s, plus ``multimask_output``, ``nms_score``,
    ``max_mask_area_fraction`` and ``return_logits``."""

    def __init__(self, model, points_per_side: Optional[int] = 32, points_per_batch: int = 64,
                 pred_iou_thresh: float = 0.88, stability_score_thresh: float = 0.95,
                 stability_score_offset: float = 1.0, box_nms_thresh: float = 0.7,
                 crop_n_layers: int = 0, crop_nms_thresh: float = 0.7,
                 crop_overlap_ratio: float = 512 / 1500, crop_n_points_downscale_factor: int = 1,
                 point_grids: Optional[list[np.ndarray]] = None, min_mask_region_area: int = 0,
                 output_mode: str = "binary_mask", *, multimask_output: bool = True,
                 nms_score: str = "predicted_iou", max_mask_area_fraction: Optional[float] = None,
                 return_logits: bool = False) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise SambenchError("AMG needs exactly one of points_per_side and point_grids")
        if points_per_side is not None:
            if points_per_side < 1:
                raise SambenchError(f"points_per_side must be >= 1, got {points_per_side}")
            point_grids = utils.build_all_layer_point_grids(points_per_side, crop_n_layers,
                                                            crop_n_points_downscale_factor)
        point_grids = [np.asarray(g, np.float64).reshape(-1, 2) for g in point_grids]
        if len(point_grids) < crop_n_layers + 1:
            raise SambenchError(f"point_grids has {len(point_grids)} grids; crop_n_layers={crop_n_layers} "
                                f"needs {crop_n_layers + 1} (one per layer)")
        if output_mode not in OUTPUT_MODES:
            raise SambenchError(f"unknown output_mode {output_mode!r} (known: {', '.join(OUTPUT_MODES)})")
        if nms_score not in NMS_SCORES:
            raise SambenchError(f"unknown nms_score {nms_score!r} (known: {', '.join(NMS_SCORES)})")
        if points_per_batch < 1 or crop_n_layers < 0:
            raise SambenchError("points_per_batch must be >= 1 and crop_n_layers >= 0")
        self.model = model
        self.point_grids = point_grids
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.multimask_output = multimask_output
        self.nms_score = nms_score
        self.max_mask_area_fraction = max_mask_area_fraction
        self.return_logits = return_logits
        self.has_logits = callable(getattr(model, "upsample", None))

    # -- public ---------------------------------------------------------------------------
    def generate(self, image: np.ndarray, rng: Optional[np.random.Generator] = None) -> list[dict[str, Any]]:
        """Mask records for an ``(H, W, 3)`` uint8 RGB image, as the official generator returns
        them: ``segmentation`` (per ``output_mode``), ``area``, ``bbox`` (XYWH),
        ``predicted_iou``, ``point_coords`` ``[[x, y]]``, ``stability_score``, ``crop_box`` (XYWH)."""
        data = self.generate_data(image, rng)
        records = []
        for i in range(len(data)):
            rle = data["rles"][i]
            if self.output_mode == "coco_rle":
                segmentation = rle
            else:
                mask = mask_codec.decode(rle)
                segmentation = mask if self.output_mode == "binary_mask" else mask_codec.uncompressed(mask)
            records.append({"segmentation": segmentation, "area": int(data["areas"][i]),
                            "bbox": utils.box_xyxy_to_xywh(data["boxes"][i]),
                            "predicted_iou": float(data["iou_preds"][i]),
                            "point_coords": [data["points"][i].tolist()],
                            "stability_score": float(data["stability_score"][i]),
                            "crop_box": utils.box_xyxy_to_xywh(data["crop_boxes"][i])})
        return records

    def generate_data(self, image: np.ndarray, rng: Optional[np.random.Generator] = None) -> utils.MaskData:
        """The kept masks as :class:`~sambench.amg.utils.MaskData`: ``rles`` (compressed COCO RLE),
        ``areas``, ``boxes`` (XYXY, inclusive), ``iou_preds``, ``stability_score``, ``points``,
        ``crop_boxes`` (XYXY), in output order. ``rng`` draws the scores of ``nms_score="random"``."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
            raise SambenchError(f"AMG needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        if self.nms_score == "random" and rng is None:
            rng = np.random.default_rng(0)
        orig_size = image.shape[:2]
        crop_boxes, layers = utils.generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        data = utils.MaskData()
        for crop_box, layer in zip(crop_boxes, layers):
            data.cat(self._process_crop(image, crop_box, layer, rng))
        if len(crop_boxes) > 1 and len(data):
            crops = torch.as_tensor(data["crop_boxes"])
            prefer_small = 1 / ((crops[:, 2] - crops[:, 0]) * (crops[:, 3] - crops[:, 1]))
            data.filter(self._nms(data["boxes"], prefer_small, self.crop_nms_thresh))
        if self.min_mask_region_area > 0 and len(data):
            self._remove_small_regions(data, max(self.box_nms_thresh, self.crop_nms_thresh))
        return data

    # -- steps ----------------------------------------------------------------------------
    @staticmethod
    def _nms(boxes: np.ndarray, scores, threshold: float) -> np.ndarray:
        boxes_t = torch.as_tensor(boxes).float()
        keep = batched_nms(boxes_t, torch.as_tensor(scores), torch.zeros(len(boxes_t)), threshold)
        return keep.numpy()

    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer: int,
                      rng: Optional[np.random.Generator]) -> utils.MaskData:
        x0, y0, x1, y1 = crop_box
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        embedding = self.model.embed(crop)
        height, width = crop.shape[:2]
        points = self.point_grids[layer] * np.array([[width, height]], np.float64)
        data = utils.MaskData()
        for start in range(0, len(points), self.points_per_batch):
            batch = points[start:start + self.points_per_batch]
            data.cat(self._process_batch(embedding, batch, crop_box, image.shape[:2]))
        if not len(data):
            return data
        scores = rng.random(len(data)) if self.nms_score == "random" else data["iou_preds"]
        data.filter(self._nms(data["boxes"], scores, self.box_nms_thresh))
        data["boxes"] = utils.uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = utils.uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = np.tile(np.asarray(crop_box, np.int64), (len(data), 1))
        return data

    def _predict(self, embedding, points: np.ndarray):
        """IoU predictions ``(B, K)`` and a function giving full-resolution logits of chosen masks."""
        labels = np.ones((len(points), 1), np.int64)
        if self.has_logits:
            pred = self.model.predict(embedding, points=points[:, None, :], labels=labels,
                                      multimask=self.multimask_output, return_masks=False)
            low_res = pred.low_res_logits.reshape(-1, *pred.low_res_logits.shape[-2:])

            def logits(index: np.ndarray) -> np.ndarray:
                return np.asarray(self.model.upsample(embedding, low_res[index], threshold=None))
        else:
            pred = self.model.predict(embedding, points=points[:, None, :], labels=labels,
                                      multimask=self.multimask_output)
            masks = pred.masks.reshape(-1, *pred.masks.shape[-2:])

            def logits(index: np.ndarray) -> np.ndarray:
                return np.where(masks[index], np.float32(FALLBACK_LOGIT), np.float32(-FALLBACK_LOGIT))
        return np.asarray(pred.scores, np.float32), logits

    def _process_batch(self, embedding, points: np.ndarray, crop_box: list[int],
                       orig_size: tuple[int, int]) -> utils.MaskData:
        orig_h, orig_w = orig_size
        scores, logits_of = self._predict(embedding, points)
        iou_preds = scores.reshape(-1)
        per_point = scores.shape[1]
        candidates = np.arange(len(iou_preds))
        if self.pred_iou_thresh > 0.0:  # before upsampling: the filter is per mask
            candidates = candidates[iou_preds > self.pred_iou_thresh]
        crop_h, crop_w = crop_box[3] - crop_box[1], crop_box[2] - crop_box[0]
        out = utils.MaskData()
        step = utils.chunk_size(crop_h * crop_w)
        for start in range(0, len(candidates), step):
            index = candidates[start:start + step]
            logits = logits_of(index)
            stability = utils.stability_score(logits, MASK_THRESHOLD, self.stability_score_offset)
            keep = np.ones(len(index), bool)
            if self.stability_score_thresh > 0.0:
                keep &= stability >= self.stability_score_thresh
            masks = logits[keep] > MASK_THRESHOLD
            index, stability = index[keep], stability[keep]
            boxes = utils.masks_to_boxes(masks)
            keep = ~utils.is_box_near_crop_edge(boxes, crop_box, [0, 0, orig_w, orig_h])
            areas = masks.sum(axis=(1, 2), dtype=np.int64)
            if self.max_mask_area_fraction is not None:
                keep &= areas < self.max_mask_area_fraction * orig_h * orig_w
            masks = utils.uncrop_masks(masks[keep], crop_box, orig_h, orig_w)
            fields = dict(rles=mask_codec.encode(masks), areas=areas[keep], boxes=boxes[keep],
                          iou_preds=iou_preds[index[keep]], stability_score=stability[keep],
                          points=points[index[keep] // per_point])
            if self.return_logits:
                fields["logits"] = [functools.partial(_one_mask, logits_of, i) for i in index[keep]]
            out.cat(utils.MaskData(**fields))
        return out

    def _remove_small_regions(self, data: utils.MaskData, nms_thresh: float) -> None:
        """Fill small holes, drop small islands, then NMS preferring unchanged masks; in place."""
        boxes, unchanged, changed = [], [], {}
        for i, rle in enumerate(data["rles"]):
            mask = mask_codec.decode(rle)
            mask, holes_changed = utils.remove_small_regions(mask, self.min_mask_region_area, "holes")
            mask, islands_changed = utils.remove_small_regions(mask, self.min_mask_region_area, "islands")
            if holes_changed or islands_changed:
                changed[i] = mask
            unchanged.append(0.0 if i in changed else 1.0)
            boxes.append(utils.masks_to_boxes(mask[None])[0])
        keep = self._nms(np.stack(boxes), torch.tensor(unchanged, dtype=torch.float32), nms_thresh)
        for i in keep:
            if i in changed:
                data["rles"][i] = mask_codec.encode(changed[i])
                data["boxes"][i] = boxes[i]
                data["areas"][i] = int(changed[i].sum())
        data.filter(keep)


def _one_mask(logits_of, index: int) -> np.ndarray:
    """Full-resolution logits ``(H, W)`` of one mask of a batch (``return_logits``)."""
    return logits_of(np.array([index]))[0]


__all__ = ["AutomaticMaskGenerator", "OUTPUT_MODES", "NMS_SCORES"]
