"""Label maps → instances: the one place where pixel values become masks.

Datasets ship masks as integer maps in three ways, each a ``mode`` of :class:`LabelRule`:
``ids`` (every value is one object: BBBC-style instance maps, iShape's ``instance_map``,
Hypersim's ``semantic_instance``), ``categories`` (every value is a class: EgoHOS, DRAM) and
``binary`` (non-zero is the object: GTEA hand masks, single-object masks). Any mode can split
masks into connected components, drop void values and count tiny masks. The rule comes from
the card's ``layout.rule``, so the choice is written next to the dataset, not in code.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from sambench import masks as mask_codec
from sambench.errors import SambenchError
from sambench.types import Instance

MODES = ("ids", "categories", "binary")


@dataclass
class LabelRule:
    """How the values of a label map become instances.

    ``background`` and ``ignore`` values are never instances (``ignore`` is void: unlabelled
    or "don't care" pixels); values below ``min_value`` are background too (Cityscapes-style
    maps where ids ≥ 1000 are objects). ``category_divisor`` derives the class of an id
    (``id // divisor``). ``components`` splits every mask into connected components
    (``connectivity`` 4 or 8), numbered in raster order of their first pixel. Masks under
    ``min_area`` pixels are counted as ``too_small`` problems.
    """

    mode: str = "ids"
    background: list[int] = field(default_factory=lambda: [0])
    ignore: list[int] = field(default_factory=list)
    min_value: int = 0
    category_divisor: int = 0
    components: bool = False
    connectivity: int = 8
    min_area: int = 0
    names: dict[int, str] = field(default_factory=dict)

    @classmethod
    def from_layout(cls, layout: dict) -> "LabelRule":
        data = dict(layout.get("rule") or {})
        unknown = set(data) - set(cls.__dataclass_fields__) - {"names"}
        if unknown:
            raise SambenchError(f"label rule: unknown keys {sorted(unknown)}")
        rule = cls(**data)
        rule.names = {int(k): str(v) for k, v in (layout.get("categories") or {}).items()}
        if rule.mode not in MODES:
            raise SambenchError(f"label rule: mode must be one of {MODES}, not {rule.mode!r}")
        if rule.connectivity not in (4, 8):
            raise SambenchError("label rule: connectivity must be 4 or 8")
        return rule


def extract(label: np.ndarray, rule: LabelRule, prefix: str = "") -> tuple[list[Instance], list[dict]]:
    """Instances of one label map, plus problems for masks dropped by ``min_area``.

    Instance ids are the pixel value (``"17"``), with ``"-k"`` appended for the k-th
    connected component when ``components`` is set, and ``prefix`` in front.
    """
    skip = set(rule.background) | set(rule.ignore)
    if rule.mode == "binary":
        groups = [(1, (label != 0) & ~np.isin(label, list(skip)))]
    else:
        values = [int(v) for v in np.unique(label) if int(v) not in skip and int(v) >= rule.min_value]
        groups = [(v, label == v) for v in values]
    instances, problems = [], []
    for value, mask in groups:
        if rule.mode == "binary":
            cat = 1
        elif rule.category_divisor:
            cat = value // rule.category_divisor
        else:
            cat = value if rule.mode == "categories" else 0
        pieces = components(mask, rule.connectivity) if rule.components else [mask]
        for k, piece in enumerate(pieces):
            inst_id = f"{prefix}{value}" + (f"-{k}" if rule.components else "")
            area = int(piece.sum())
            if area == 0:
                continue
            if area < rule.min_area:
                problems.append({"kind": "too_small", "detail": f"mask {inst_id} ({area} px)"})
                continue
            category = rule.names.get(cat, str(cat) if cat else "")
            instances.append(Instance(id=inst_id, rle=mask_codec.encode(piece), category=category,
                                      category_id=cat, meta={"value": value}))
    return instances, problems


def components(mask: np.ndarray, connectivity: int = 8) -> list[np.ndarray]:
    """Connected components of a boolean mask, in raster order of their first pixel."""
    structure = np.ones((3, 3), bool) if connectivity == 8 else ndimage.generate_binary_structure(2, 1)
    labelled, n = ndimage.label(mask, structure=structure)
    return [labelled == k for k in range(1, n + 1)]
