"""``sambench amg``: automatic masks for images or folders, written as SA-1B JSON (docs/amg.md).

Resumable: an image whose JSON exists is skipped, and each JSON is written atomically, so a
killed run continues where it stopped. Unreadable images are named in the log and counted (the
command then exits 1 after doing every other image); images without a mask get a JSON with no
annotations and are counted.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from sambench.errors import SambenchError

log = logging.getLogger("sambench")

# (flag, type, default, help): the official SamAutomaticMaskGenerator parameters, same names.
AMG_FLAGS = [
    ("points_per_side", int, 32, "grid points along each side of the image (or crop)"),
    ("points_per_batch", int, 64, "points prompted per model call"),
    ("pred_iou_thresh", float, 0.88, "keep masks whose predicted IoU is above this (0: no filter)"),
    ("stability_score_thresh", float, 0.95, "keep masks whose stability score is at least this (0: no filter)"),
    ("stability_score_offset", float, 1.0, "logit offset of the stability score"),
    ("box_nms_thresh", float, 0.7, "box IoU above which duplicate masks of a crop are removed"),
    ("crop_n_layers", int, 0, "crop layers (layer i has (2**i)**2 crops); SA-1B used 2"),
    ("crop_nms_thresh", float, 0.7, "box IoU for duplicates across crops"),
    ("crop_overlap_ratio", float, 512 / 1500, "overlap of first-layer crops, as a fraction of the short side"),
    ("crop_n_points_downscale_factor", int, 1, "points per side divided by this per crop layer; SA-1B used 2"),
    ("min_mask_region_area", int, 0, "fill holes / remove islands smaller than this (px); SA-1B used 100"),
]


def add_parser(sub) -> None:
    p = sub.add_parser("amg", help="automatic mask generation, written as SA-1B JSON (one file per image)")
    p.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--model", required=True, help="NAME[:CHECKPOINT], e.g. sam:sam_vit_h_4b8939.pth")
    p.add_argument("--out", required=True, help="folder for the JSON files (a folder's sub-folders are kept)")
    for name, kind, default, text in AMG_FLAGS:
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=default,
                       help=f"{text} (default {default:.4g})")
    p.add_argument("--point-grid", action="append", default=[], metavar="FILE",
                   help="explicit grid, normalised (x, y) in [0, 1] (.npy or text, N x 2), one per crop "
                        "layer, instead of --points-per-side")
    p.add_argument("--max-mask-area-fraction", type=float, default=None,
                   help="drop masks covering at least this fraction of the image (the paper's 0.95; "
                        "not in the released generator)")
    p.add_argument("--single-output", action="store_true", help="one mask per point instead of three")
    p.add_argument("--limit", type=int, help="at most N images")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_amg)


def _grid(path: str) -> np.ndarray:
    try:
        grid = np.load(path) if path.endswith(".npy") else np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise SambenchError(f"cannot read point grid {path}: {exc}") from None
    grid = np.asarray(grid, np.float64)
    if grid.ndim != 2 or grid.shape[1] != 2 or not ((grid >= 0) & (grid <= 1)).all():
        raise SambenchError(f"point grid {path} must be N x 2 (x, y) in [0, 1], got shape {grid.shape}")
    return grid


def generator_options(args) -> dict:
    options = {name: getattr(args, name) for name, _, _, _ in AMG_FLAGS}
    if args.point_grid:
        options["points_per_side"] = None
        options["point_grids"] = [_grid(p) for p in args.point_grid]
    options.update(output_mode="coco_rle", multimask_output=not args.single_output,
                   max_mask_area_fraction=args.max_mask_area_fraction)
    return options


def cmd_amg(args) -> int:
    from tqdm import tqdm

    from sambench.amg.export import find_images, sa1b_json
    from sambench.amg.generator import AutomaticMaskGenerator
    from sambench.models import load_model
    from sambench.results import atomic_write_json
    from sambench.types import read_image

    out_dir = Path(args.out)
    jobs = find_images(args.inputs, out_dir)
    if args.limit is not None:
        if args.limit < 1:
            raise SambenchError("--limit must be at least 1")
        jobs = jobs[:args.limit]
    todo = [job for job in jobs if not job.out.is_file()]
    summary = {"images": len(jobs), "written": 0, "skipped": len(jobs) - len(todo), "failed": 0,
               "empty": 0, "masks": 0, "seconds": 0.0, "out": str(out_dir), "failed_images": []}
    started = time.perf_counter()
    if todo:
        generator = AutomaticMaskGenerator(load_model(args.model, device=args.device, dtype=args.dtype),
                                           **generator_options(args))
        for job in tqdm(todo, desc="amg", unit="img", disable=not sys.stderr.isatty()):
            try:
                image = read_image(job.image)
            except SambenchError as exc:
                log.warning("amg: %s", exc)
                summary["failed"] += 1
                summary["failed_images"].append(str(job.image))
                continue
            records = generator.generate(image)
            atomic_write_json(job.out, sa1b_json(records, job.image, job.out, *image.shape[:2]))
            summary["written"] += 1
            summary["masks"] += len(records)
            summary["empty"] += not records
    summary["seconds"] = round(time.perf_counter() - started, 2)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"amg: {summary['written']} images written ({summary['masks']} masks, {summary['empty']} with "
              f"none), {summary['skipped']} already done, {summary['failed']} unreadable -> {out_dir}")
    return 1 if summary["failed"] else 0


__all__ = ["add_parser", "cmd_amg", "generator_options"]
