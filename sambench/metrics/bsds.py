"""BSDS500 boundary benchmark: ODS, OIS, AP and R50 of edge maps against human boundaries.

Reproduces the official MATLAB benchmark step by step:

- per image (``evaluation_bdry_image.m`` / Dollár's ``edgesEvalImg.m``): for each of ``nthresh``
  thresholds, binarize ``E >= t``, thin with ``bwmorph(..., 'thin', Inf)``
  (:mod:`.bsds_thin`), match to every annotator separately with ``correspondPixels`` at
  ``max_dist`` x diagonal (:mod:`.bsds_match`); recall counts are summed over annotators,
  a predicted pixel is correct if it matches any annotator;
- over the dataset (``collect_eval_bdry.m`` / ``edgesEvalDir.m``): :mod:`.bsds_scores`.

Inputs are a folder of predictions (``<id>.png``, 8- or 16-bit grey, scaled to [0, 1], or
``<id>.npy`` floats in [0, 1]) and a folder of BSDS ground truth ``<id>.mat``.

Matcher: ``"exact"`` (default) is the deterministic optimum of the official objective;
``"official"`` also draws the official code's sparse random outlier graph (seeded per image,
threshold and annotator), which reproduces its statistics, including recall about 3e-4 below
the optimum, at a fifth of the speed. See docs/edges.md for the measured differences.
"""
from __future__ import annotations

import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from sambench.errors import SambenchError
from sambench.matfile import read_mat
from sambench.metrics import bsds_scores
from sambench.metrics.bsds_match import BoundaryIndex
from sambench.metrics.bsds_thin import thin as bwmorph_thin

MATCHERS = ("exact", "official")
PRED_SUFFIXES = (".png", ".npy")


# ----------------------------------------------------------------------------------- inputs

def seg2bdry(seg: np.ndarray) -> np.ndarray:
    """Boundary map of a label image, BSDS ``seg2bdry(seg, 'imageSize')``.

    Every pixel whose lower or right neighbour has another label, plus the corner cells of the
    doubled grid: a 4-connected (thick) map. The BSDS500 ``Boundaries`` fields equal
    ``bwmorph(seg2bdry(Segmentation, 'imageSize'), 'thin', Inf)`` (checked on the sample).
    """
    seg = np.asarray(seg)
    tx, ty = seg.shape
    b = np.zeros((2 * tx + 1, 2 * ty + 1), dtype=bool)
    ev = np.zeros((tx, ty), dtype=bool)
    ev[:-1] = seg[:-1] != seg[1:]
    eh = np.zeros((tx, ty), dtype=bool)
    eh[:, :-1] = seg[:, :-1] != seg[:, 1:]
    b[2::2, 1::2] = ev
    b[1::2, 2::2] = eh
    b[2:-1:2, 2:-1:2] = eh[:-1, :-1] | eh[1:, :-1] | ev[:-1, :-1] | ev[:-1, 1:]
    b[0, :], b[:, 0] = b[1, :], b[:, 1]
    b[-1, :] = b[-2, :]
    b[:, -1] = b[:, -2]
    return b[2::2, 2::2]


def _map(path, entry, name: str):
    """A field of one annotator as a 2-D numeric map of at least 2x2 pixels (or None)."""
    value = _field(entry, name)
    if value is None:
        return None
    if value.ndim != 2 or min(value.shape) < 2 or value.dtype.kind not in "biuf" or (
            value.dtype.kind == "f" and not np.isfinite(value).all()):
        raise SambenchError(f"{path}: {name} is not a 2-D numeric map of at least 2x2 pixels "
                            f"(shape {list(value.shape)}, type {value.dtype})")
    return value


def _field(entry, name: str):
    try:
        value = entry[name]
    except (KeyError, ValueError, IndexError, TypeError):
        return None
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.flat[0]
    return None if value is None else np.asarray(value)


def read_annotators(path: str | os.PathLike) -> list[tuple[Optional[np.ndarray], np.ndarray]]:
    """``[(Segmentation, Boundaries), ...]`` per annotator of a BSDS ``groundTruth`` .mat file.

    The one reader of the format (the dataset adapter and the boundary benchmark both use it).
    An annotation with only ``Segmentation`` gets ``thin(seg2bdry(Segmentation))``, which is how
    the BSDS500 boundaries were made; one with only ``Boundaries`` has segmentation None.
    """
    if not Path(path).is_file():
        raise SambenchError(f"annotation file not found: {path}")
    mat = read_mat(path, "ground-truth file")  # a corrupt file is an error, never a crash
    if "groundTruth" not in mat:
        raise SambenchError(f"{path}: no 'groundTruth' variable (not a BSDS ground-truth file)")
    annotators = []
    for entry in np.asarray(mat["groundTruth"]).flat:
        seg, bnd = _map(path, entry, "Segmentation"), _map(path, entry, "Boundaries")
        if bnd is None:
            if seg is None:
                raise SambenchError(f"{path}: annotation without Boundaries or Segmentation")
            bnd = bwmorph_thin(seg2bdry(seg))
        if bnd.ndim != 2 or (seg is not None and seg.shape != bnd.shape):
            raise SambenchError(f"{path}: annotation maps of shapes {bnd.shape}"
                                f"{'' if seg is None else f' and {seg.shape}'} (2-D, equal expected)")
        annotators.append((None if seg is None else seg.astype(np.int64), bnd != 0))
    if not annotators:
        raise SambenchError(f"{path}: empty groundTruth cell (no annotator)")
    return annotators


def load_ground_truth(path: str | os.PathLike) -> list[np.ndarray]:
    """The annotators' boundary maps (bool, H x W) of one BSDS ``groundTruth`` .mat file."""
    maps = [bnd for _, bnd in read_annotators(path)]
    if len({m.shape for m in maps}) > 1:
        raise SambenchError(f"{path}: annotators' maps differ in size")
    return maps


def load_prediction(path: str | os.PathLike) -> np.ndarray:
    """An edge map as float64 in [0, 1]: PNG 8-bit / 255 (``double(imread(f))/255``), 16-bit
    / 65535, or a 2-D ``.npy`` array (bool, integer 0/1 or float in [0, 1])."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            e = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise SambenchError(f"unreadable prediction {path}: {err}") from None
        if e.dtype == bool:
            e = e.astype(np.float64)
        elif not (np.issubdtype(e.dtype, np.floating) or np.issubdtype(e.dtype, np.integer)):
            raise SambenchError(f"{path}: unsupported dtype {e.dtype}")
        e = e.astype(np.float64)
        if e.size and (not np.isfinite(e).all() or e.min() < 0 or e.max() > 1):
            raise SambenchError(f"{path}: edge values must be finite and lie in [0, 1]")
    else:
        e = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if e is None:
            raise SambenchError(f"unreadable prediction image {path}")
        if e.ndim != 2:
            raise SambenchError(f"{path}: edge map must be single-channel, got shape {e.shape}")
        if e.dtype == np.uint8:
            e = e.astype(np.float64) / 255
        elif e.dtype == np.uint16:
            e = e.astype(np.float64) / 65535
        else:
            raise SambenchError(f"{path}: unsupported image dtype {e.dtype}")
    if e.ndim != 2:
        raise SambenchError(f"{path}: edge map must be 2-D, got shape {e.shape}")
    return e


def find_pairs(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike
               ) -> list[tuple[str, Path, Path]]:
    """(id, prediction, ground truth) for every ``<id>.mat`` in gt_dir, sorted by id.

    As ``edgesEvalDir``, the ground truth defines the image set; a missing prediction is an
    error (a dropped image would skew every number).
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for d, what in ((pred_dir, "prediction"), (gt_dir, "ground-truth")):
        if not d.is_dir():
            raise SambenchError(f"{what} directory not found: {d}")
    gts = sorted(p for p in gt_dir.iterdir() if p.suffix.lower() == ".mat")
    if not gts:
        raise SambenchError(f"no ground-truth .mat files in {gt_dir}")
    preds: dict[str, Path] = {}
    for p in sorted(pred_dir.iterdir()):
        if p.suffix.lower() in PRED_SUFFIXES:
            preds.setdefault(p.stem, p)  # .npy and .png of one id: the first in name order
    pairs = [(g.stem, preds.get(g.stem), g) for g in gts]
    missing = [i for i, p, _ in pairs if p is None]
    if len(missing) == len(pairs):
        raise SambenchError(f"no prediction in {pred_dir} matches a ground truth in {gt_dir} "
                            f"(expected <id>.png or <id>.npy, e.g. {pairs[0][0]}.png)")
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise SambenchError(f"{len(missing)} of {len(pairs)} images have no prediction in "
                            f"{pred_dir}: {', '.join(missing[:5])}{more}")
    return pairs  # type: ignore[return-value]


# -------------------------------------------------------------------------------- counting

def evaluate_image(pred: np.ndarray, gts: Sequence[np.ndarray], thresholds: np.ndarray,
                   max_dist: float = 0.0075, thin: bool = True, matcher: str = "exact",
                   seed: int = 0) -> np.ndarray:
    """Counts ``(K, 4) = [cntR, sumR, cntP, sumP]`` per threshold (``evaluation_bdry_image``).

    ``seed`` only matters for ``matcher="official"``; pair (t, g) then draws its outlier graph
    from ``SeedSequence([seed, t, g])``, so results never depend on evaluation order.
    """
    if matcher not in MATCHERS:
        raise SambenchError(f"unknown matcher {matcher!r}; choose from {', '.join(MATCHERS)}")
    pred = np.asarray(pred, dtype=np.float64)
    index = [BoundaryIndex(g, max_dist) for g in gts]
    sum_r = sum(ix.n for ix in index)
    counts = np.zeros((len(thresholds), 4), dtype=np.int64)
    prev_n, prev_thr, prev = -1, -np.inf, None
    for t, thr in enumerate(thresholds):
        bmap = pred >= max(np.finfo(float).eps, thr)  # edgesEvalImg: E >= max(eps, thr)
        n_on = int(np.count_nonzero(bmap))
        if n_on == prev_n and thr >= prev_thr and matcher == "exact":
            counts[t] = prev  # maps shrink as thr grows: same size means same map, same counts
            continue
        if thin:
            bmap = bwmorph_thin(bmap)
        rows, cols = np.nonzero(bmap)
        acc = np.zeros(rows.size, dtype=bool)
        cnt_r = 0
        for g, ix in enumerate(index):
            rng = (None if matcher == "exact"
                   else np.random.default_rng(np.random.SeedSequence([seed, t, g])))
            m1, m2 = ix.match(rows, cols, rng)
            acc |= m1
            cnt_r += int(m2.sum())
        counts[t] = (cnt_r, sum_r, int(acc.sum()), rows.size)
        prev_n, prev_thr, prev = n_on, thr, counts[t].copy()
    return counts


def _evaluate_job(job) -> np.ndarray:
    """One image: ``(id, prediction or path, annotator maps or .mat path, options...)``."""
    image_id, pred, gts, thresholds, max_dist, thin, matcher = job
    if not isinstance(pred, np.ndarray):
        pred = load_prediction(pred)
    if not isinstance(gts, (list, tuple)):
        gts = load_ground_truth(gts)
    if not gts:
        raise SambenchError(f"{image_id}: no ground-truth annotator")
    for g in gts:
        if pred.shape != np.shape(g):
            raise SambenchError(f"size mismatch for {image_id}: prediction {pred.shape[0]}x"
                                f"{pred.shape[1]}, ground truth {np.shape(g)[0]}x{np.shape(g)[1]}")
    seed = zlib.crc32(str(image_id).encode())
    return evaluate_image(pred, gts, thresholds, max_dist, thin, matcher, seed)


def _run(ids: list[str], preds: Sequence, gts: Sequence, nthresh: int, max_dist: float,
         thin: bool, workers: int, matcher: str) -> "EdgeEvalResult":
    if matcher not in MATCHERS:
        raise SambenchError(f"unknown matcher {matcher!r}; choose from {', '.join(MATCHERS)}")
    if not max_dist > 0:
        raise SambenchError(f"max_dist must be positive, got {max_dist}")
    if not ids:
        raise SambenchError("no images to evaluate")
    thresholds = bsds_scores.default_thresholds(nthresh)
    jobs = [(i, p, g, thresholds, max_dist, thin, matcher) for i, p, g in zip(ids, preds, gts)]
    workers = (os.cpu_count() or 1) if workers == 0 else max(1, int(workers))
    if workers == 1 or len(jobs) == 1:
        counts = [_evaluate_job(j) for j in jobs]
    else:  # results come back in job order, and no job depends on another: same numbers
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            counts = list(pool.map(_evaluate_job, jobs))
    return EdgeEvalResult(thresholds, list(ids), np.stack(counts))


def evaluate_dir(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, nthresh: int = 99,
                 max_dist: float = 0.0075, thin: bool = True, workers: int = 1,
                 matcher: str = "exact") -> "EdgeEvalResult":
    """Benchmark every ``<id>.mat`` of gt_dir against ``<id>.png|.npy`` of pred_dir.

    ``workers`` processes evaluate images in parallel (0: one per CPU); results do not depend
    on it. Equivalent to ``edgesEvalDir('resDir', pred_dir, 'gtDir', gt_dir, 'thrs', nthresh,
    'maxDist', max_dist, 'thin', thin)``.
    """
    pairs = find_pairs(pred_dir, gt_dir)
    return _run([i for i, _, _ in pairs], [p for _, p, _ in pairs], [g for _, _, g in pairs],
                nthresh, max_dist, thin, workers, matcher)


def evaluate_arrays(preds: Sequence[np.ndarray], gts: Sequence[Sequence[np.ndarray]],
                    image_ids: Sequence[str] | None = None, nthresh: int = 99,
                    max_dist: float = 0.0075, thin: bool = True, workers: int = 1,
                    matcher: str = "exact") -> "EdgeEvalResult":
    """As :func:`evaluate_dir` for in-memory data: ``preds[n]`` (H x W floats in [0, 1]) against
    the annotators' boundary maps ``gts[n]`` (a list of H x W bool arrays)."""
    if len(preds) != len(gts):
        raise SambenchError(f"{len(preds)} predictions but {len(gts)} ground truths")
    ids = [str(i) for i in (image_ids if image_ids is not None else range(len(preds)))]
    preds = [np.asarray(p, dtype=np.float64) for p in preds]
    gts = [[np.asarray(g) != 0 for g in gs] for gs in gts]
    return _run(ids, preds, gts, nthresh, max_dist, thin, workers, matcher)


# --------------------------------------------------------------------------------- results

@dataclass
class EdgeEvalResult:
    """Counts of a benchmark run and every number derived from them.

    ``counts[n, k] = [cntR, sumR, cntP, sumP]`` for image ``image_ids[n]`` at ``thresholds[k]``.
    """

    thresholds: np.ndarray
    image_ids: list[str]
    counts: np.ndarray

    def curve(self) -> dict[str, np.ndarray]:
        """Dataset PR curve per threshold (the rows of ``eval_bdry_thr.txt``), for plotting."""
        r, p, f = bsds_scores.rpf(self.counts.sum(axis=0))
        return {"threshold": self.thresholds, "recall": r, "precision": p, "f": f}

    def image_scores(self) -> np.ndarray:
        """(N, 4) ``[T, R, P, F]`` at each image's interpolated best F (eval_bdry_img.txt)."""
        rows = []
        for c in self.counts:
            r, p, _ = bsds_scores.rpf(c)
            rows.append(bsds_scores.max_f(self.thresholds, r, p))
        return np.array(rows, dtype=np.float64).reshape(-1, 4)

    def summary(self) -> dict:
        """``ods ois ap r50`` (fractions; r50 NaN if precision never reaches 0.5), ``ods_r
        ods_p ods_t ois_r ois_p``, ``n_images``, ``nthresh``."""
        out = bsds_scores.summarize(self.thresholds, self.counts)
        out.update(n_images=len(self.image_ids), nthresh=len(self.thresholds))
        return out

    def write_matlab_files(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write ``<id>_ev1.txt``, ``eval_bdry_thr.txt``, ``eval_bdry_img.txt`` and
        ``eval_bdry.txt`` in the official formats (``%10g`` columns), for cross-checking."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)

        def write(name: str, rows, fmt: str) -> Path:
            path = out / name
            path.write_text("".join(fmt % tuple(row) + "\n" for row in rows))
            return path

        def g(n: int) -> str:
            return " ".join(["%10g"] * n)

        files = [write(f"{i}_ev1.txt", np.column_stack([self.thresholds, c]), g(5))
                 for i, c in zip(self.image_ids, self.counts)]
        cv = self.curve()
        files.append(write("eval_bdry_thr.txt", np.column_stack(
            [cv["threshold"], cv["recall"], cv["precision"], cv["f"]]), g(4)))
        img = [(n + 1, *row) for n, row in enumerate(self.image_scores())]
        files.append(write("eval_bdry_img.txt", img, "%10d " + g(4)))
        s = self.summary()
        files.append(write("eval_bdry.txt", [[s["ods_t"], s["ods_r"], s["ods_p"], s["ods"],
                                              s["ois_r"], s["ois_p"], s["ois"], s["ap"]]], g(8)))
        return files
