"""Fuzz targets: one per parser of untrusted input, each a hypothesis strategy and a probe.

A probe feeds one generated input to the parser the way a run does (files on disk, then
every sample built and every mask and image decoded) and returns its outcome: ``ok``,
``skip`` (a counted problem) or ``error`` (a :class:`SambenchError`). Any other exception
escapes and is a crash. Strategies mix valid structures with junk in every field (NaN,
1e30, negative, huge, wrong types) and mutated bytes of valid files.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from sambench.errors import SambenchError

# ---- shared strategies -----------------------------------------------------------------

NASTY_NUMBERS = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e30, -1e30, -1, 0, 2**31,
                                 2**63, -(2**63), 1e-300, 0.5, 65535, 60000, 10001])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), NASTY_NUMBERS)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
JUNK = st.one_of(JSON, NASTY_NUMBERS)
COORD = st.one_of(st.floats(-40, 80), st.integers(-40, 80), NASTY_NUMBERS)
SIZE = st.one_of(st.integers(1, 40), st.integers(-3, 0), NASTY_NUMBERS, JUNK)
SMALL = st.integers(1, 24)


def maybe(valid, junk=JUNK, p_valid: int = 12):
    """Mostly a valid value, junk about once in ``p_valid + 1`` draws. (The junk band sits
    mid-range: hypothesis favours the ends of an integer range, and ``one_of`` does not
    weight repeated branches.)"""
    band = range(500, 500 + max(1, 1000 // (p_valid + 1)))
    return st.integers(0, 999).flatmap(lambda k: junk if k in band else valid)


def mutate(data: bytes, edits) -> bytes:
    """Apply (position fraction, byte, mode) edits: overwrite, insert, or truncate."""
    out = bytearray(data)
    for frac, value, mode in edits:
        if not out:
            break
        pos = int(frac * (len(out) - 1))
        if mode == 0:
            out[pos] = value
        elif mode == 1:
            out.insert(pos, value)
        else:
            del out[pos:]
    return bytes(out)


EDITS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255), st.integers(0, 2)), max_size=6)


def dump(value) -> str:
    return json.dumps(value)  # NaN and Infinity as JSON's common extension (Python reads them)


COMPRESSED_COUNTS = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=130), max_size=40)
RLE = st.fixed_dictionaries({"size": maybe(st.lists(SIZE, min_size=2, max_size=2)),
                             "counts": st.one_of(st.lists(st.integers(-5, 3000), max_size=12),
                                                 st.lists(COORD, max_size=6), COMPRESSED_COUNTS, JUNK)})
RAW_RLE = st.fixed_dictionaries({"size": st.lists(SIZE, min_size=2, max_size=2), "counts": st.binary(max_size=20)})


@st.composite
def polygon(draw, height: int = 16, width: int = 16):
    """A flat COCO polygon: mostly 3-8 vertices on or near the image, sometimes a nasty
    coordinate or an odd count."""
    n = draw(st.integers(0, 8))
    coords = [draw(st.floats(-1, (width if i % 2 == 0 else height) + 1)) for i in range(2 * n)]
    if coords and draw(st.integers(0, 3)) == 0:
        coords[draw(st.integers(0, len(coords) - 1))] = draw(NASTY_NUMBERS)
    if coords and draw(st.integers(0, 9)) == 0:
        coords.pop()
    return coords


POLYGONS = st.one_of(st.lists(polygon(), min_size=1, max_size=3), st.lists(st.lists(COORD, max_size=8), max_size=2))
SEGMENTATION = st.one_of(POLYGONS, RLE, JUNK)


class Outcome:
    def __init__(self):
        self.skips = 0

    def sample(self, sample) -> None:
        """Build what a run builds of a sample: every mask decoded, the image read."""
        self.skips += len(sample.problems)
        for inst in sample.instances:
            mask = inst.mask()
            assert mask.shape == (sample.height, sample.width)
            inst.bbox_xyxy
        try:
            sample.load_image()
        except SambenchError:
            self.skips += 1

    @property
    def result(self) -> str:
        return "skip" if self.skips else "ok"


def _write_images(root: Path, size: int = 16) -> None:
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(3):
        if not (root / "images" / f"{i}.png").exists():
            Image.fromarray(np.full((size, size, 3), 60 * i, np.uint8)).save(root / "images" / f"{i}.png")


# ---- COCO / LVIS JSON ------------------------------------------------------------------

COCO_IMAGE = st.fixed_dictionaries(
    {"id": maybe(st.integers(0, 3), p_valid=30), "file_name": maybe(st.sampled_from(["0.png", "1.png", "2.png", "none.png"])),
     "height": maybe(st.sampled_from([16, 16, 16, 8]), SIZE), "width": maybe(st.sampled_from([16, 16, 16, 8]), SIZE)},
    optional={"coco_url": maybe(st.just("http://x/val2017/0.png")), "neg_category_ids": JUNK})
COCO_ANN = st.fixed_dictionaries(
    {"id": maybe(st.integers(0, 50), p_valid=30), "image_id": maybe(st.integers(0, 3), p_valid=30),
     "segmentation": st.one_of(polygon().map(lambda p: [p]), SEGMENTATION)},
    optional={"category_id": maybe(st.integers(0, 3)), "iscrowd": maybe(st.integers(0, 1)),
              "ignore": JUNK, "bbox": JUNK, "area": JUNK})
COCO_CAT = st.fixed_dictionaries({"id": maybe(st.integers(0, 3)), "name": maybe(st.text(max_size=5))},
                                 optional={"frequency": maybe(st.sampled_from("rcf"))})
COCO_DOC = maybe(
    st.fixed_dictionaries({"images": maybe(st.lists(maybe(COCO_IMAGE, p_valid=30), max_size=4), p_valid=30),
                           "annotations": maybe(st.lists(maybe(COCO_ANN, p_valid=30), max_size=6), p_valid=30)},
                          optional={"categories": maybe(st.lists(maybe(COCO_CAT, p_valid=30), max_size=3))}),
    JSON, p_valid=10)


def probe_coco(doc, work: Path, lvis: bool = False) -> str:
    from sambench.datasets.coco import CocoDataset
    from sambench.datasets.lvis import LvisDataset

    _write_images(work)
    (work / "annotations.json").write_text(dump(doc))
    try:
        dataset = (LvisDataset if lvis else CocoDataset)("fuzz", work / "annotations.json", work / "images")
    except SambenchError:
        return "error"
    outcome = Outcome()
    outcome.skips += len(dataset.problems)
    for sample in dataset:
        outcome.sample(sample)
    return outcome.result


# ---- RLE and polygons ------------------------------------------------------------------

@st.composite
def rle_cases(draw):
    """(segmentation, height, width): an RLE of a real mask of that size (compressed or
    not), possibly with its size or counts edited, or junk."""
    from sambench import masks

    height, width = draw(SMALL), draw(SMALL)
    kind = draw(st.integers(0, 3))
    if kind == 3:
        return draw(st.one_of(SEGMENTATION, RAW_RLE)), height, width
    mask = np.random.default_rng(draw(st.integers(0, 2**31))).random((height, width)) < draw(st.floats(0, 1))
    rle = masks.encode(mask)
    if kind == 1:  # uncompressed
        flat = mask.flatten(order="F").astype(np.int8)
        changes = np.flatnonzero(np.diff(flat)) + 1
        bounds = np.concatenate(([0], changes, [flat.size]))
        runs = np.diff(bounds).tolist()
        rle = {"size": [height, width], "counts": ([0] if flat[0] else []) + runs}
    edit = draw(st.integers(0, 4))
    if edit == 1:
        rle["size"] = draw(st.lists(SIZE, min_size=2, max_size=2))
    elif edit == 2 and isinstance(rle["counts"], list):
        rle["counts"] = [c + draw(st.integers(-3, 3)) for c in rle["counts"]]
    elif edit == 2:
        rle["counts"] = mutate(rle["counts"].encode(), draw(EDITS)).decode("latin-1")
    elif edit == 3:
        rle["counts"] = rle["counts"][:-1] if rle["counts"] else rle["counts"]
    return rle, height, width


def probe_rle(args, work: Path) -> str:
    from sambench import masks

    segmentation, height, width = args
    try:
        rle = masks.from_annotation(segmentation, height, width)
    except SambenchError:
        return "error"
    mask = masks.decode(rle)
    assert mask.shape == (height, width) and masks.area(rle) == int(mask.sum())
    return "ok"


@st.composite
def polygon_cases(draw):
    height, width = draw(SMALL), draw(SMALL)
    flat = draw(st.one_of(st.lists(polygon(height, width), min_size=1, max_size=3), POLYGONS))
    pairs = draw(st.lists(st.one_of(
        polygon(height, width).map(lambda c: [c[i:i + 2] for i in range(0, len(c), 2)]),
        st.lists(maybe(st.lists(COORD, min_size=2, max_size=2)), max_size=8), JUNK), max_size=3))
    return flat, pairs, height, width


def probe_polygons(args, work: Path) -> str:
    from sambench.datasets.polygons import PolygonObject, paint

    polygons, pairs, height, width = args
    result = probe_rle((polygons, height, width), work)
    objects = [PolygonObject(id=str(k), category="c", polygons=p) for k, p in enumerate(pairs)]
    instances, problems = paint(objects, height, width)
    for inst in instances:
        inst.mask()
    return "skip" if problems and result == "ok" else result



# ---- label PNGs (and images) -----------------------------------------------------------

PNG_ARRAYS = st.tuples(st.sampled_from(["L", "P", "RGB", "RGBA", "I;16", "1", "LA", "F"]),
                       st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31))


def _png(spec) -> bytes:
    from PIL import Image

    mode, h, w, seed = spec
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16))
    elif mode == "F":
        im = Image.fromarray(rng.random((h, w)).astype(np.float32))
    elif mode in ("RGB", "RGBA"):
        im = Image.fromarray(rng.integers(0, 256, (h, w, len(mode))).astype(np.uint8), mode)
    else:
        im = Image.fromarray(rng.integers(0, 4, (h, w)).astype(np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="TIFF" if mode == "F" else "PNG")
    return buf.getvalue()


IMAGE_BYTES = st.one_of(st.tuples(PNG_ARRAYS, EDITS).map(lambda t: mutate(_png(t[0]), t[1])),
                        st.binary(max_size=200), st.binary(max_size=40).map(lambda b: b"\x89PNG\r\n\x1a\n" + b))


def probe_label_png(raw: bytes, work: Path) -> str:
    from sambench.datasets.base import read_label
    from sambench.datasets.labels import LabelRule, extract
    from sambench.types import read_image

    path = work / "label.png"
    path.write_bytes(raw)
    try:
        label = read_label(path)
        instances, problems = extract(label, LabelRule(mode="ids"))
        for inst in instances:
            inst.mask()
        image = read_image(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    except SambenchError:
        return "error"
    return "skip" if problems else "ok"


# ---- BSDS .mat -------------------------------------------------------------------------

# 32-bit values that mean something in a MAT-5 element tag or array header: type codes (valid,
# reserved, matrix, compressed, past the table), small sizes, sign and width limits
MAT_WORDS = [0, 1, 2, 4, 5, 6, 8, 9, 14, 15, 16, 19, 200, 0xFFFF, 0x10000, 0x40001, 2**31 - 1, 2**31, 2**32 - 1]
MAT_FIELD = st.one_of(st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31)),
                      st.integers(-3, 3), st.text(max_size=4), st.none())
MAT_SPEC = st.tuples(st.lists(st.fixed_dictionaries({}, optional={"Segmentation": MAT_FIELD, "Boundaries": MAT_FIELD,
                                                                  "Other": MAT_FIELD}), max_size=3),
                     st.sampled_from(["groundTruth", "groundTruth", "other"]), st.booleans(), EDITS,
                     st.lists(st.tuples(st.floats(0, 1), st.sampled_from(MAT_WORDS) | st.integers(0, 2**32 - 1)),
                              max_size=3))


def _mat(spec) -> bytes:
    import scipy.io

    annotators, name, compress, edits, words = spec
    cell = np.empty((1, len(annotators)), dtype=object)
    for k, fields in enumerate(annotators):
        struct = {}
        for key, value in fields.items():
            if isinstance(value, tuple):
                h, w, seed = value
                value = np.random.default_rng(seed).integers(0, 3, (h, w)).astype(np.uint16)
            struct[key] = value if value is not None else np.zeros((0, 0))
        cell[0, k] = struct
    buf = io.BytesIO()
    scipy.io.savemat(buf, {name: cell}, do_compression=compress)
    raw = bytearray(buf.getvalue())
    for frac, word in words:  # an aligned word after the header: a tag, a size, a dimension
        pos = 128 + 4 * int(frac * (len(raw) - 132) // 4)
        raw[pos:pos + 4] = word.to_bytes(4, "little")
    return mutate(bytes(raw), edits)


def probe_bsds_mat(raw: bytes, work: Path) -> str:
    from sambench.datasets.bsds import BsdsDataset

    folder = work / "groundTruth" / "test"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x.mat").write_bytes(raw)
    outcome = Outcome()
    for sample in BsdsDataset("fuzz", work):
        if sample.height and sample.width:  # the image the annotation describes
            from PIL import Image

            (work / "images" / "test").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((sample.height, sample.width, 3), np.uint8)).save(work / "images" / "test" / "x.jpg")
        outcome.sample(sample)
        for boundary in sample.meta.get("boundaries", []):
            assert boundary.shape == (sample.height, sample.width)
    return outcome.result


# ---- SA-1B JSON ------------------------------------------------------------------------

SA1B_DOC = st.one_of(st.fixed_dictionaries(
    {"image": maybe(st.fixed_dictionaries({"height": maybe(st.just(16), SIZE), "width": maybe(st.just(16), SIZE),
                                           "file_name": maybe(st.just("sa_1.jpg")),
                                           "image_id": maybe(st.integers(0, 9))})),
     "annotations": maybe(st.lists(maybe(st.fixed_dictionaries(
         {"id": maybe(st.integers(0, 9)), "segmentation": SEGMENTATION},
         optional={"bbox": JUNK, "area": JUNK, "predicted_iou": JUNK, "point_coords": JUNK})), max_size=4))}), JSON)


def probe_sa1b(doc, work: Path) -> str:
    from PIL import Image

    from sambench.datasets.sa1b import Sa1bDataset

    if not (work / "sa_1.jpg").exists():
        Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(work / "sa_1.jpg")
    (work / "sa_1.json").write_text(dump(doc))
    outcome = Outcome()
    for sample in Sa1bDataset("fuzz", work):
        outcome.sample(sample)
    return outcome.result


# ---- detections JSON, sample lists -----------------------------------------------------

DETECTIONS = st.one_of(st.lists(maybe(st.fixed_dictionaries(
    {"image_id": maybe(st.integers(0, 3)), "category_id": maybe(st.integers(0, 3)),
     "bbox": maybe(st.lists(COORD, min_size=4, max_size=4)), "score": maybe(st.floats(0, 1))}), p_valid=20),
    max_size=6), JSON)
_counter = iter(range(10**9))


def probe_detections(doc, work: Path) -> str:
    from sambench.tasks.detections import load_detections, match_detections

    path = work / f"dets-{next(_counter)}.json"  # a new name: the loader caches by path and mtime
    path.write_text(dump(doc))
    try:
        dets = load_detections(path)
        match_detections(dets, "fuzz", {"0": 0, "1": 1}, {0, 1}, max_dets=3)
    except SambenchError:
        return "error"
    finally:
        path.unlink()
    return "ok"


SAMPLE_LIST = st.one_of(st.fixed_dictionaries(
    {"schema": maybe(st.just("sambench.sample-list/1")), "dataset": maybe(st.just("fuzz")),
     "seed": maybe(st.integers(0, 9)),
     "images": maybe(st.lists(maybe(st.fixed_dictionaries({"id": maybe(st.integers(0, 3)),
                                                            "instances": maybe(st.lists(JUNK, max_size=3))})),
                              max_size=3))}, optional={"subsampled": JUNK, "rule": JUNK}), JSON)


def probe_sample_list(doc, work: Path) -> str:
    from sambench.datasets.sampling import SCHEMA, read_sample_list

    if isinstance(doc, dict) and doc.get("schema") == "sambench.sample-list/1":
        doc = {**doc, "schema": SCHEMA}
    (work / "list.json").write_text(dump(doc))
    try:
        chosen = read_sample_list(work / "list.json")
        chosen.n_masks
    except SambenchError:
        return "error"
    return "ok"


# ---- checkpoints: safetensors and .pth -------------------------------------------------

SAFETENSORS_HEADER = st.one_of(st.dictionaries(st.text(max_size=6), st.one_of(
    st.fixed_dictionaries({"dtype": maybe(st.sampled_from(["F32", "F16", "I64", "BOOL"])),
                           "shape": maybe(st.lists(st.integers(-2, 5), max_size=3)),
                           "data_offsets": maybe(st.lists(st.integers(-4, 400), min_size=2, max_size=2))}),
    JUNK), max_size=3), JSON)
SAFETENSORS = st.one_of(
    st.tuples(SAFETENSORS_HEADER, st.binary(max_size=64), st.integers(-8, 8)).map(
        lambda t: (len(dump(t[0]).encode()) + t[2]).to_bytes(8, "little", signed=True) + dump(t[0]).encode() + t[1]),
    st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=64)).map(lambda t: t[0].to_bytes(8, "little") + t[1]),
    st.tuples(st.binary(min_size=0, max_size=8), EDITS).map(lambda t: mutate(_valid_safetensors(), t[1])))


def _valid_safetensors() -> bytes:
    from safetensors.numpy import save

    return save({"image_encoder.pos_embed": np.zeros((1, 2, 2, 4), np.float32)})


def probe_checkpoint(suffix: str):
    """The probe of a checkpoint file named ``ckpt<suffix>`` (the loader picks by suffix)."""
    def probe(raw: bytes, work: Path) -> str:
        from sambench.models.sam.checkpoint import read_state_dict

        (work / f"ckpt{suffix}").write_bytes(raw)
        try:
            read_state_dict(work / f"ckpt{suffix}")
        except SambenchError:
            return "error"
        return "ok"
    return probe


_PTH: dict = {}


def _valid_pth(kind: int) -> bytes:
    import torch

    if kind not in _PTH:
        buf = io.BytesIO()
        state = [{"model": {"image_encoder.w": torch.zeros(2, 3)}}, {"a": torch.ones(4), "b": [1, 2]},
                 {"x": torch.arange(3)}][kind]
        torch.save(state, buf, _use_new_zipfile_serialization=kind != 2)
        _PTH[kind] = buf.getvalue()
    return _PTH[kind]


PTH = st.one_of(st.tuples(st.integers(0, 2), EDITS).map(lambda t: mutate(_valid_pth(t[0]), t[1])),
                st.binary(max_size=300), st.binary(max_size=200).map(lambda b: b"\x80\x02" + b),
                st.binary(max_size=200).map(lambda b: b"PK\x03\x04" + b))


# ---- cache entries and records ---------------------------------------------------------

def _valid_entry() -> bytes:
    from safetensors.numpy import save

    from sambench.cache import _payload_digest

    arrays = {"features": np.ones((2, 3), np.float32)}
    return save(arrays, metadata={"model_key": "k" * 16, "image_hash": "ab" * 32,
                                  "payload": _payload_digest(arrays)})


CACHE_ENTRY = st.one_of(st.tuples(st.just(0), EDITS).map(lambda t: mutate(_valid_entry(), t[1])), SAFETENSORS)


def probe_cache_entry(raw: bytes, work: Path) -> str:
    from sambench.cache import EmbeddingCache

    cache = EmbeddingCache(work / "cache")
    path = cache.path("k" * 16, "ab" * 32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    arrays = cache.get("k" * 16, "ab" * 32)
    if arrays is None:
        assert not path.exists()  # a bad entry is removed, to be recomputed
        return "skip"
    return "ok"


RECORD = st.one_of(
    st.fixed_dictionaries({"sample_id": maybe(st.just("s")), "rows": maybe(st.lists(maybe(
        st.dictionaries(st.text(max_size=5), SCALARS, max_size=3)), max_size=3)),
        "errors": maybe(st.lists(maybe(st.fixed_dictionaries({"kind": st.text(max_size=5),
                                                              "detail": st.text(max_size=5)})), max_size=2))},
        optional={"seconds": JUNK}).map(lambda d: dump(d).encode()),
    JSON.map(lambda d: dump(d).encode()), st.binary(max_size=100),
    st.tuples(st.just(0), EDITS).map(lambda t: mutate(b'{"sample_id": "s", "rows": [], "errors": []}', t[1])))


def probe_record(raw: bytes, work: Path) -> str:
    from sambench.rundir import read_record

    path = work / "records" / "point" / "d" / "s.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    record = read_record(path, "s")
    if record is None:
        assert not path.exists()  # moved aside to records/.damaged/
        return "skip"
    for row in record.rows:
        row.get("iou")
    return "ok"


TARGETS = {
    "coco_json": (COCO_DOC, probe_coco),
    "lvis_json": (COCO_DOC, lambda doc, work: probe_coco(doc, work, lvis=True)),
    "rle": (rle_cases(), probe_rle),
    "polygons": (polygon_cases(), probe_polygons),
    "label_png": (IMAGE_BYTES, probe_label_png),
    "bsds_mat": (st.one_of(MAT_SPEC.map(_mat), st.binary(max_size=200)), probe_bsds_mat),
    "sa1b_json": (SA1B_DOC, probe_sa1b),
    "detections_json": (DETECTIONS, probe_detections),
    "sample_list": (SAMPLE_LIST, probe_sample_list),
    "safetensors_header": (SAFETENSORS, probe_checkpoint(".safetensors")),
    "pth_header": (PTH, probe_checkpoint(".pth")),
    "cache_entry": (CACHE_ENTRY, probe_cache_entry),
    "record": (RECORD, probe_record),
}
