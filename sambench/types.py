"""The vocabulary every stage shares: Sample, Instance, Prediction, SampleRecord.

Data flows adapter → prompts → model → metric → records → results; these types are the
arrows' payloads. Coordinates are pixels ``(x, y)`` in the original image, boxes ``XYXY``,
masks travel as compressed COCO RLE (see :mod:`sambench.masks`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from sambench import masks as mask_codec
from sambench.errors import SambenchError


@dataclass
class Instance:
    """One ground-truth mask of a sample."""

    id: str
    rle: dict
    category: str = ""
    category_id: int = 0
    iscrowd: bool = False
    ignore: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def area(self) -> int:
        return mask_codec.area(self.rle)

    @property
    def bbox_xyxy(self) -> list[float]:
        x, y, w, h = mask_codec.to_bbox(self.rle)
        return [x, y, x + w, y + h]

    def mask(self) -> np.ndarray:
        return mask_codec.decode(self.rle)


@dataclass
class Sample:
    """One image with its instances. The image is decoded lazily (``load_image``)."""

    id: str
    dataset: str
    height: int
    width: int
    instances: list[Instance]
    image_path: Optional[Path] = None
    image_loader: Optional[Callable[[], np.ndarray]] = None
    meta: dict = field(default_factory=dict)
    # Annotations the adapter could not turn into an Instance (kind, detail); tasks count them.
    problems: list[dict[str, str]] = field(default_factory=list)
    # The label map's void / unlabelled pixels as an (H, W) bool array, computed on demand
    # (None: the format has none); crowd and ignore instances are added by ``ignore_mask``.
    void_loader: Optional[Callable[[], np.ndarray]] = None

    def ignore_mask(self) -> Optional[np.ndarray]:
        """``(H, W)`` bool: pixels no mask of this image is judged on (the dataset's void /
        unlabelled pixels and its crowd or ignore regions), or None when there are none.
        Computed once, on first use."""
        if "_ignore" not in self.__dict__:
            ignore = np.zeros((self.height, self.width), bool)
            if self.void_loader is not None:
                ignore |= np.asarray(self.void_loader(), bool)
            for inst in self.instances:
                if inst.iscrowd or inst.ignore:
                    ignore |= inst.mask().astype(bool)
            self.__dict__["_ignore"] = ignore if ignore.any() else None
        return self.__dict__["_ignore"]

    def preload(self) -> None:
        """Decode the image now (e.g. in a prefetch thread); ``load_image`` then returns it,
        or raises the error the decode met."""
        try:
            self._image = self._read()
        except SambenchError as exc:
            self._image = exc

    def load_image(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB. Raises :class:`SambenchError` if it cannot be read."""
        image = self.__dict__.pop("_image", None)
        if isinstance(image, SambenchError):
            raise image
        return image if image is not None else self._read()

    def _read(self) -> np.ndarray:
        if self.image_loader is not None:
            image = self.image_loader()
        elif self.image_path is not None:
            image = read_image(self.image_path)
        else:
            raise SambenchError(f"sample {self.id} has no image")
        if image.shape[:2] != (self.height, self.width):
            raise SambenchError(
                f"image {self.image_path or self.id} is {image.shape[1]}x{image.shape[0]}, "
                f"annotations say {self.width}x{self.height}"
            )
        return image


def read_image(path: Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grey and RGBA are converted).

    Images over the pixel limit (:func:`sambench.validate.max_pixels`) are refused from
    their header, before any pixel is decoded. Images of more than 8 bits per channel are
    scaled to 8 bits by :func:`to_uint8` (never clipped).
    """
    from PIL import UnidentifiedImageError

    from sambench import validate

    path = Path(path)
    if not validate.is_file(path):
        raise SambenchError(f"image not found: {path}")
    try:
        with validate.open_image(path) as im:
            im.load()
            arr = to_uint8(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SambenchError(f"unreadable image {path}: {exc}") from None
    except MemoryError:  # a corrupt chunk length asks PIL to read gigabytes
        raise SambenchError(f"unreadable image {path}: it declares more data than fits in memory") from None
    return np.ascontiguousarray(arr)


def to_uint8(im) -> np.ndarray:
    """A PIL image as ``(H, W, 3)`` uint8 RGB, high bit depths scaled to the full 8-bit range.

    The rule (docs/reliability.md): 16-bit grey (``I;16*``) and 32-bit integer (``I``)
    images with values up to 65535 are divided by 257 and rounded, so 0 -> 0 and 65535 -> 255
    as for any 16-bit image viewer; ``I`` images with values outside 0..65535 and float
    (``F``) images outside 0..1 have no unambiguous 8-bit reading and are refused; float
    images in 0..1 are multiplied by 255 and rounded. Everything else goes through PIL's
    ``convert("RGB")`` (8-bit modes, palettes, 16-bit RGB PNGs, which PIL already reduces).
    """
    if im.mode.startswith("I") or im.mode == "F":
        values = np.asarray(im, dtype=np.float64)
        if im.mode == "F":
            if not (np.isfinite(values).all() and values.min(initial=0) >= 0 and values.max(initial=0) <= 1):
                raise ValueError("float image with values outside 0..1 (no unambiguous 8-bit reading)")
            grey = np.rint(values * 255)
        else:
            if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
                raise ValueError("32-bit image with values outside 0..65535 (no unambiguous 8-bit reading)")
            grey = np.rint(values / 257)
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)
    return np.asarray(im.convert("RGB"))


@dataclass
class Prediction:
    """What a model returns for a batch of B prompts on one image.

    ``masks`` is ``(B, K, H, W)`` bool at the original size (None when the caller asked the
    model not to upsample, e.g. SAM's ``return_masks=False``), ``scores`` ``(B, K)`` predicted
    IoU, ``low_res_logits`` ``(B, K, h, w)`` in the model's own low-res frame
    (``ModelInfo.capabilities.low_res_shape``; SAM v1: 256²) for feeding back unchanged as
    ``mask_input``; ``model.upsample`` maps them to the image. For a single
    prompt (unbatched call) the leading B axis is absent.
    """

    masks: Optional[np.ndarray]
    scores: np.ndarray
    low_res_logits: np.ndarray


@dataclass
class SampleRecord:
    """Everything a task computed for one sample: the unit written to ``records/``.

    ``rows`` hold one dict per (mask, prompt step); ``errors`` name what could not be scored
    (an unreadable image, an empty mask) so results count them instead of dropping them.
    """

    sample_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"sample_id": self.sample_id, "rows": self.rows, "errors": self.errors,
                "seconds": self.seconds}

    @classmethod
    def from_json(cls, data: dict) -> "SampleRecord":
        return cls(data["sample_id"], data["rows"], data["errors"], data.get("seconds", 0.0))
