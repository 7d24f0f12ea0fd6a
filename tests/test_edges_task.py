"""The edges task: Sobel-on-probability kept at the mask boundary, Dollár edge NMS, and
``sambench run --task edges`` on a BSDS-layout folder (the real .mat / .jpg layout) with the
classical ``sobel`` model, a stand-in that predicts the ground truth itself, and our SAM on a
random tiny checkpoint; scores are checked against ``sambench edges-eval`` on the saved maps."""
from __future__ import annotations

import json
import math
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from scipy.special import expit

from sambench.cache import image_hash
from sambench.cli import main
from sambench.edges.filters import sobel_magnitude
from sambench.edges.masks import EdgeOptions, boundary_pixels, mask_edges
from sambench.edges.nms import _kernel, edge_nms, orientation
from sambench.errors import SambenchError
from sambench.metrics.bsds import seg2bdry
from sambench.metrics.bsds_thin import thin
from sambench.models import MODELS
from sambench.models.base import ModelInfo
from sambench.types import read_image

H, W = 96, 128  # max_dist 0.0075 x diagonal 160 = 1.2 px: direct neighbours match
SMALL_DECODER = dict(prompt_embed_dim=32, decoder_mlp_dim=64, iou_head_hidden_dim=32, mask_in_chans=4)
TRUTH: dict[str, np.ndarray] = {}  # image hash -> union of the annotators' boundaries


class PerfectEdges:
    """A stand-in that answers every image with its own ground-truth boundaries."""

    def info(self):
        return ModelInfo("perfect-edges", "test")

    def edge_map(self, image):
        return TRUTH[image_hash(image)].astype(np.float32)


if "test-perfect-edges" not in MODELS:
    MODELS.add("test-perfect-edges", lambda checkpoint=None, device="cpu", dtype="float32":
                                                          PerfectEdges(), "test stand-in")


def write_bsds(root, n_images=3, seed=0):
    """BSDS500 test layout: ``groundTruth/test/<id>.mat`` (a 1x2 cell of structs with
    Segmentation and Boundaries = thin(seg2bdry(seg)), as BSDS made them; the two annotators
    differ by one region) and ``images/test/<id>.jpg`` (flat colour regions, mild noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    for i in range(n_images):
        seg = np.ones((H, W), np.uint16)
        seg[:, int(W * rng.uniform(0.55, 0.7)):] = 2
        cy, cx = rng.uniform(0.35, 0.65) * H, rng.uniform(0.2, 0.35) * W
        seg[((y - cy) / (0.2 * H)) ** 2 + ((x - cx) / (0.14 * W)) ** 2 < 1] = 3
        seg[int(0.75 * H):, int(0.75 * W):] = 4
        coarse = np.where(seg == 4, 2, seg).astype(np.uint16)
        cell = np.empty((1, 2), dtype=object)
        bnds = []
        for k, s in enumerate((seg, coarse)):
            bnds.append(thin(seg2bdry(s)))
            cell[0, k] = {"Segmentation": s, "Boundaries": bnds[-1].astype(np.uint8)}
        (root / "groundTruth" / "test").mkdir(parents=True, exist_ok=True)
        (root / "images" / "test").mkdir(parents=True, exist_ok=True)
        savemat(str(root / "groundTruth" / "test" / f"{100 + i}.mat"), {"groundTruth": cell})
        colours = rng.integers(0, 255, (5, 3))
        image = np.clip(colours[seg] + rng.normal(0, 3, (H, W, 3)), 0, 255).astype(np.uint8)
        path = root / "images" / "test" / f"{100 + i}.jpg"
        Image.fromarray(image).save(path, quality=95)
        TRUTH[image_hash(read_image(path))] = bnds[0] | bnds[1]
    return root


@pytest.fixture(scope="module")
def bsds_root(tmp_path_factory):
    return write_bsds(tmp_path_factory.mktemp("bsds") / "BSDS500")


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory):
    from sambench.models.sam.random_checkpoint import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("sam") / "tiny.pth", "tiny", seed=0, **SMALL_DECODER)


def run_edges(bsds_root, out, model, *extra):
    code = main(["run", "--task", "edges", "--dataset", f"bsds500={bsds_root}", "--model", model,
                 "--out", str(out), "--no-cache", *extra])
    assert code == 0
    return json.loads((out / "results.json").read_text())


# -- generation steps on hand-made inputs ----------------------------------------------------
def square_logits():
    """A 20x20 square mask with a 4x4 hole in a 40x40 frame, logits ±6 (a soft step)."""
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    mask[18:22, 18:22] = False
    return mask, np.where(mask, 6.0, -6.0).astype(np.float32)


def test_boundary_pixels_variants():
    mask, _ = square_logits()
    ring = np.zeros_like(mask)
    ring[9:31, 9:31] = True
    ring[10:30, 10:30] = False
    hole_edge = np.zeros_like(mask)
    hole_edge[18:22, 18:22] = True
    hole_edge[19:21, 19:21] = False  # the hole's centre touches no mask pixel
    np.testing.assert_array_equal(boundary_pixels(mask, "outside", holes=False), ring)
    np.testing.assert_array_equal(boundary_pixels(mask, "outside"), ring | hole_edge)
    inside = boundary_pixels(mask, "inside", holes=False)
    assert inside.sum() == 4 * 19 and inside[10, 10:30].all() and not inside[17, 17]
    assert boundary_pixels(mask, "band").sum() == (ring | hole_edge).sum() + boundary_pixels(mask, "inside").sum()
    edge_mask = np.zeros((10, 10), bool)
    edge_mask[:, :4] = True  # touches the image border: the border is not a boundary
    assert not boundary_pixels(edge_mask, "inside")[:, 0].any() and boundary_pixels(edge_mask, "inside")[:, 3].all()


def test_sobel_response_is_zeroed_away_from_the_outer_boundary():
    mask, logits = square_logits()
    full = sobel_magnitude(expit(logits))
    kept = mask_edges(logits, EdgeOptions(boundary_holes=False))
    ring = boundary_pixels(mask, "outside", holes=False)
    assert full[10, 15] > 0.5 and full[17, 19] > 0.5 and full[18, 19] > 0.5  # mask side, hole side
    assert kept[10, 15] == 0 and kept[17, 19] == 0 and kept[18, 19] == 0
    np.testing.assert_array_equal(kept[ring], full[ring])
    assert (kept[ring] > 0.5).all() and not kept[~ring].any()
    with_holes = mask_edges(logits, EdgeOptions())
    assert with_holes[18, 19] == full[18, 19] > 0.5  # the hole's rim counts by default


def reference_nms(e, o, r=1, s=5, m=1.01):
    """Dollár's edgesNmsMex.cpp, transcribed loop for loop (x = column)."""
    h, w = e.shape
    out = e.astype(np.float64).copy()

    def interp(x, y):
        x = min(max(x, 0), w - 1.001)
        y = min(max(y, 0), h - 1.001)
        x0, y0 = int(x), int(y)
        dx0, dy0 = x - x0, y - y0
        return (e[y0, x0] * (1 - dx0) * (1 - dy0) + e[y0, x0 + 1] * dx0 * (1 - dy0)
                + e[y0 + 1, x0] * (1 - dx0) * dy0 + e[y0 + 1, x0 + 1] * dx0 * dy0)

    for x in range(w):
        for y in range(h):
            v = e[y, x] * m
            if not e[y, x]:
                continue
            c, sn = math.cos(o[y, x]), math.sin(o[y, x])
            if any(v < interp(x + d * c, y + d * sn) for d in range(-r, r + 1) if d):
                out[y, x] = 0
    s = min(s, w // 2, h // 2)
    for x in range(s):
        out[:, x] *= x / s
        out[:, w - 1 - x] *= x / s
    for y in range(s):
        out[y, :] *= y / s
        out[h - 1 - y, :] *= y / s
    return out


def test_opencv_kernel_is_dollars_nms():
    rng = np.random.default_rng(0)
    e = cv2.GaussianBlur(rng.random((30, 40)).astype(np.float32), (0, 0), 2)
    e = (e - e.min()) / (e.max() - e.min())
    o = orientation(e)
    ours = _kernel().edgesNms(e, o, r=1, s=5, m=1.01)
    np.testing.assert_allclose(ours, reference_nms(e, o), atol=1e-6)
    np.testing.assert_allclose(edge_nms(e, presmooth=0), ours, atol=0)
    assert 0 < np.count_nonzero(ours) < 0.5 * e.size  # something is suppressed, something kept


def test_edge_nms_thins_a_thick_ridge_to_one_pixel():
    profile = np.array([0.2, 0.5, 0.8, 1.0, 0.8, 0.5, 0.2], np.float32)
    vertical = np.zeros((40, 50), np.float32)
    vertical[:, 17:24] = profile
    thinned = edge_nms(vertical)
    inner = thinned[5:-5]  # nms_border: the map fades to 0 over 5 px at the image border
    assert (np.count_nonzero(inner, axis=1) == 1).all() and np.allclose(inner[:, 20], 0.9)  # convTri(1) peak
    assert np.allclose(orientation(vertical)[:, 18:23], 0)  # the normal: along x
    y, x = np.mgrid[0:40, 0:40]
    diagonal = np.clip(1 - np.abs(x - y) / np.sqrt(2) / 4, 0, 1).astype(np.float32)  # 7 px wide
    thinned = edge_nms(diagonal)[5:-5]
    rows = np.arange(5, 35)
    assert (np.count_nonzero(thinned, axis=1) == 1).all() and (thinned[rows - 5, rows] > 0).all()
    assert np.allclose(orientation(diagonal)[rows, rows], 3 * np.pi / 4, atol=1e-3)


def test_options_are_checked_and_detectors_answer_no_prompts():
    from sambench.models import load_model
    from sambench.tasks import load_task

    with pytest.raises(SambenchError, match="boundary"):
        load_task("edges", options={"boundary": "outer"}).build()
    with pytest.raises(SambenchError, match="unknown options"):
        load_task("edges", options={"nms_thresh": 0.5}).build()
    with pytest.raises(SambenchError, match="edges task only|only the edges task"):
        load_model("sobel").embed(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(SambenchError, match="unknown option"):
        load_model("canny", sigma=2)
    canny = load_model("canny", low_threshold=20, high_threshold=60)
    assert canny.info().config["low_threshold"] == 20
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 10:30] = 200
    edges = canny.edge_map(image)
    assert set(np.unique(edges)) == {0.0, 1.0} and edges[20, 5] == 0 and edges[10:30, 8:12].any()


# -- the task end to end ------------------------------------------------------------------------
def test_sobel_run_rescoring_report_and_resume(bsds_root, tmp_path):
    out = tmp_path / "sobel"
    results = run_edges(bsds_root, out, "sobel")
    entry = results["results"][0]
    m = entry["metrics"]
    print("sobel on the fixture:", {k: round(m[k], 3) for k in ("ods", "ois", "ap", "r50")})
    assert entry["task"] == "edges" and entry["n_images"] == 3 and entry["status"] == "ok"
    for name in ("ods", "ois", "ap", "r50"):
        assert 0 < m[name] < 1, (name, m[name])
    assert m["ods"] > 0.9 and m["ois"] >= m["ods"] - 1e-9  # flat colour regions: Sobel finds them
    assert results["model"]["config"] == {"blur_sigma": 1.0, "ksize": 3, "nms": False}
    proto = entry["protocol"]
    assert (proto["nthresh"], proto["max_dist"], proto["boundary"], proto["box_nms_thresh"]) == (99, 0.0075, "outside", 0.7)
    curve = entry["pr_curve"]
    assert len(curve["recall"]) == len(curve["precision"]) == 99 and curve["ods"]["f"] == m["ods"]
    assert max(curve["f"]) <= m["ods"] + 1e-6  # ODS interpolates between thresholds: never below

    maps = sorted((out / "edges" / "bsds500").glob("*.png"))
    assert [p.stem for p in maps] == ["100", "101", "102"]
    assert cv2.imread(str(maps[0]), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    from sambench.metrics.bsds import evaluate_dir

    rescored = evaluate_dir(out / "edges" / "bsds500", bsds_root / "groundTruth" / "test").summary()
    for name in ("ods", "ois", "ap", "r50", "ods_r", "ods_p", "ois_r", "ois_p"):
        assert rescored[name] == m[name], name  # the run scores exactly what it saved

    html = (out / "report.html").read_text()
    assert "Edge detection" in html and "precision-recall curve" in html

    kept = out / "records" / "edges" / "bsds500" / "100.json"
    stamp = kept.stat().st_mtime_ns
    (out / "records" / "edges" / "bsds500" / "101.json").unlink()
    again = run_edges(bsds_root, out, "sobel", "--no-report")
    assert kept.stat().st_mtime_ns == stamp  # resumed: only the missing image was recomputed
    assert again["results"][0]["metrics"] == m and again["results"][0]["pr_curve"] == curve


def test_the_ground_truth_itself_scores_one(bsds_root, tmp_path):
    entry = run_edges(bsds_root, tmp_path / "perfect", "test-perfect-edges", "--no-report")["results"][0]
    m = entry["metrics"]
    assert m["ods"] > 0.995 and m["ois"] > 0.995 and m["ods_p"] > 0.995 and m["r50"] > 0.995
    # a binary map gives one PR point: BSDS's Area_PR is 0 under a single recall value
    assert m["ap"] == 0.0 and len(set(entry["pr_curve"]["recall"])) == 1


def test_unreadable_image_is_scored_as_an_empty_map(bsds_root, tmp_path):
    from sambench.datasets import resolve
    from sambench.tasks import load_task

    root = tmp_path / "broken"
    shutil.copytree(bsds_root, root)
    (root / "images" / "test" / "101.jpg").write_bytes(b"not a jpeg")
    runner = load_task("edges").build()
    ref = resolve(f"bsds500={root}")
    record = runner.run_sample(PerfectEdges(), ref.open().sample("101"), runner.prepare(ref, tmp_path / "out"), seed=0)
    counts = np.array(record.rows[0]["counts"])
    assert [e["kind"] for e in record.errors] == ["image"]
    assert (counts[:, 0] == 0).all() and (counts[:, 1] > 0).all() and (counts[:, 3] == 0).all()


def test_corrupt_ground_truth_is_a_counted_skip_not_a_crash(bsds_root, tmp_path, caplog):
    """The data type of 101's first map changed to miMATRIX (14): scipy.io.loadmat looks it up in
    its type table unchecked and segfaults; the run counts and logs the file and scores the rest."""
    import struct

    root = tmp_path / "corrupt"
    shutil.copytree(bsds_root, root)
    path = root / "groundTruth" / "test" / "101.mat"
    raw = path.read_bytes()
    tag = struct.pack("<2I", 4, H * W * 2)  # the uint16 Segmentation of annotator 0
    assert raw.count(tag) == 2
    path.write_bytes(raw.replace(tag, struct.pack("<2I", 14, H * W * 2), 1))
    entry = run_edges(root, tmp_path / "out", "sobel", "--no-report")["results"][0]
    assert entry["counts"]["unreadable_annotation"] == 1 and entry["status"] == "ok"
    assert "101.mat: numeric data at byte 336 of type 14" in entry["count_examples"]["unreadable_annotation"]
    assert "numeric data at byte 336 of type 14" in caplog.text and str(path) in caplog.text


def test_sam_run_goes_through_the_masks(bsds_root, sam_checkpoint, tmp_path, one_thread):
    import sambench
    from sambench.masks import decode as decode_rle
    from sambench.edges.masks import combine, generate_masks
    from sambench.tasks.edges import quantize

    out = tmp_path / "sam"
    entry = run_edges(bsds_root, out, f"sam:{sam_checkpoint}", "--limit", "1", "--no-report")["results"][0]
    m = entry["metrics"]
    print("random tiny SAM on the fixture:", m)
    for name in ("ods", "ois", "ap"):
        assert 0 <= m[name] <= 1, (name, m[name])
    assert m["r50"] is None or 0 <= m["r50"] <= 1
    assert m["ods"] > 0 and 1 <= m["masks_per_image"] <= 768 and m["edge_pixels_per_image"] > 0
    assert entry["protocol"]["points_per_side"] == 16 and entry["protocol"]["edge_nms"] is True

    model = sambench.load_model("sam", checkpoint=str(sam_checkpoint))
    image = read_image(bsds_root / "images" / "test" / "100.jpg")
    data = generate_masks(model, image, EdgeOptions())
    for rle, logits_of in zip(data["rles"], data["logits"]):  # AMG's return_logits hook
        np.testing.assert_array_equal(logits_of() > 0, decode_rle(rle))
    edges = combine(data, image.shape[:2], EdgeOptions())
    saved = cv2.imread(str(out / "edges" / "bsds500" / "100.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(saved, quantize(edges))  # the runner saved what it scored
    assert len(data) == m["masks_per_image"] and 0 < edges.max() <= 1 and edges.min() == 0
