"""JSON-annotated formats: LVIS, YouTube-VIS (OVIS), SA-1B, VISOR, WoodScape, VIA (NDD20)."""
from dataclasses import replace

import numpy as np
import pytest

from sambench import masks as mask_codec
from sambench.datasets import load_cards
from sambench.datasets.base import open_format
from sambench.errors import SambenchError

from fixtures.datasets.write import assert_masks, image, json_file, rect, rect_polygon, rle

H, W = 12, 16


def card(name, **layout):
    base = load_cards().get(name)
    return replace(base, layout={**base.layout, **layout})


def coco_polygon(mask):
    """A COCO polygon whose pycocotools raster is the given rectangle mask."""
    ys, xs = np.nonzero(mask)
    y0, x0, y1, x1 = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
    return [[float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]]


def write_lvis(root, version):
    a, b = rect(H, W, 1, 1, 4, 6), rect(H, W, 6, 8, 10, 14)
    for split, name in (("val2017", "000000000139.jpg"), ("train2017", "000000000009.jpg")):
        image(root / split / name, H, W)
    images = [{"id": 139, "height": H, "width": W, "coco_url": "http://images.cocodataset.org/val2017/000000000139.jpg",
               "not_exhaustive_category_ids": [2], "neg_category_ids": [3]},
              {"id": 9, "height": H, "width": W, "coco_url": "http://images.cocodataset.org/train2017/000000000009.jpg",
               "not_exhaustive_category_ids": [], "neg_category_ids": []}]
    if version == "0.5":
        for img in images:
            img["file_name"] = img["coco_url"].rsplit("/", 1)[1]
    json_file(root / f"lvis_v{version}_val.json", {
        "images": images,
        "categories": [{"id": 1, "name": "aerosol_can", "frequency": "r"},
                       {"id": 2, "name": "apple", "frequency": "f"}, {"id": 3, "name": "bib", "frequency": "c"}],
        "annotations": [
            {"id": 1, "image_id": 139, "category_id": 1, "segmentation": coco_polygon(a), "bbox": [1, 1, 6, 4], "area": 24},
            {"id": 2, "image_id": 139, "category_id": 2, "segmentation": coco_polygon(b), "bbox": [8, 6, 7, 5], "area": 35},
            {"id": 3, "image_id": 139, "category_id": 99, "segmentation": coco_polygon(b), "bbox": [8, 6, 7, 5], "area": 35},
            {"id": 4, "image_id": 9, "category_id": 2, "segmentation": [[3.0, 3.0, 3.0, 3.0, 3.0, 3.0]], "bbox": [3, 3, 0, 0], "area": 0},
        ]})
    return a, b


@pytest.mark.parametrize("version,name", [("0.5", "lvis-v0.5"), ("1", "lvis-v1")])
def test_lvis_coco_url_frequency_and_federated_fields(tmp_path, version, name):
    a, b = write_lvis(tmp_path, version)
    ds = open_format(card(name, annotations=f"lvis_v{version}_val.json"), tmp_path)
    sample = ds.sample(139)
    assert_masks(sample, {"1": a, "2": b})
    assert sample.image_path == tmp_path / "val2017" / "000000000139.jpg"
    assert ds.sample(9).image_path == tmp_path / "train2017" / "000000000009.jpg"
    assert {i.id: i.meta["frequency"] for i in sample.instances} == {"1": "r", "2": "f"}
    assert sample.meta["not_exhaustive_category_ids"] == [2] and sample.meta["neg_category_ids"] == [3]
    assert [p["kind"] for p in sample.problems] == ["unknown_category"]
    assert [p["kind"] for p in ds.sample(9).problems] == ["empty_mask"]  # zero-area polygon


def test_lvis_rejects_a_plain_coco_file(tmp_path):
    json_file(tmp_path / "x.json", {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]})
    with pytest.raises(SambenchError, match="not an LVIS file"):
        open_format(card("lvis-v1", annotations="x.json"), tmp_path)


def test_ovis_frames_as_images(tmp_path):
    a0, a1, b1 = rect(H, W, 0, 0, 3, 3), rect(H, W, 1, 1, 4, 4), rect(H, W, 6, 6, 10, 12)
    uncompressed = {"size": [H, W], "counts": uncompressed_counts(b1)}
    json_file(tmp_path / "annotations_train.json", {
        "videos": [{"id": 5, "height": H, "width": W, "length": 2,
                    "file_names": ["v5/img_0000001.jpg", "v5/img_0000002.jpg"]}],
        "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}],
        "annotations": [
            {"id": 10, "video_id": 5, "category_id": 1, "iscrowd": 0, "segmentations": [rle(a0), rle(a1)]},
            {"id": 11, "video_id": 5, "category_id": 2, "iscrowd": 0, "segmentations": [None, uncompressed]},
            {"id": 12, "video_id": 5, "category_id": 2, "iscrowd": 0,
             "segmentations": [rle(np.zeros((H + 2, W), bool)), rle(np.zeros((H, W), bool))]},
            {"id": 13, "video_id": 5, "category_id": 7, "iscrowd": 0, "segmentations": [rle(a0), None]},
        ]})
    for name in ("v5/img_0000001.jpg", "v5/img_0000002.jpg"):
        image(tmp_path / "train" / name, H, W)
    ds = open_format(card("ovis"), tmp_path)
    assert ds.image_ids == ["v5/img_0000001.jpg", "v5/img_0000002.jpg"]
    first, second = ds.sample(ds.image_ids[0]), ds.sample(ds.image_ids[1])
    assert_masks(first, {"10": a0})
    assert sorted(p["kind"] for p in first.problems) == ["bad_segmentation", "unknown_category"]
    assert_masks(second, {"10": a1, "11": b1})
    assert [p["kind"] for p in second.problems] == ["empty_mask"]
    assert second.image_path == tmp_path / "train" / "v5" / "img_0000002.jpg"


def uncompressed_counts(mask):
    flat = mask.ravel(order="F").astype(np.uint8)
    runs, prev, count = [], 0, 0
    for v in flat:
        if v != prev:
            runs.append(count)
            prev, count = v, 0
        count += 1
    return runs + [count]


def test_sa1b_per_image_json(tmp_path):
    a, b = rect(H, W, 0, 0, 5, 5), rect(H, W, 4, 4, 11, 15)
    image(tmp_path / "sa_1.jpg", H, W)
    anns = [{"id": 100, "segmentation": rle(a), "bbox": [0, 0, 6, 6], "area": 36, "predicted_iou": 0.93,
             "stability_score": 0.97, "crop_box": [0, 0, W, H], "point_coords": [[2.0, 2.0]]},
            {"id": 101, "segmentation": rle(b), "bbox": [4, 4, 12, 8], "area": 96, "predicted_iou": 0.9,
             "stability_score": 0.96, "crop_box": [0, 0, W, H], "point_coords": [[8.0, 8.0]]},
            {"id": 102, "segmentation": rle(np.zeros((4, 4), bool)), "bbox": [0, 0, 0, 0], "area": 0}]
    json_file(tmp_path / "sa_1.json", {"image": {"image_id": 1, "width": W, "height": H, "file_name": "sa_1.jpg"},
                                       "annotations": anns})
    (tmp_path / "sa_2.json").write_text("{not json")
    image(tmp_path / "sa_2.jpg", H, W)
    ds = open_format(card("sa1b"), tmp_path)
    assert ds.image_ids == ["sa_1", "sa_2"]
    sample = ds.sample("sa_1")
    assert_masks(sample, {"100": a, "101": b})  # overlapping masks stay as annotated
    assert sample.instances[0].meta["predicted_iou"] == 0.93 and sample.instances[0].meta["point_coords"] == [[2.0, 2.0]]
    assert [p["kind"] for p in sample.problems] == ["bad_segmentation"]  # RLE of the wrong size
    broken = ds.sample("sa_2")
    assert broken.problems[0]["kind"] == "unreadable_annotation" and "sa_2.json" in broken.problems[0]["detail"]


def test_visor_painted_in_order(tmp_path):
    H2, W2 = 20, 30
    hand = rect(H2, W2, 2, 2, 15, 12)
    knife = rect(H2, W2, 10, 8, 14, 16) | rect(H2, W2, 10, 18, 14, 25)  # an object in two pieces
    root = tmp_path
    frame = {"image": {"name": "P01_107_frame_0000000140.jpg", "image_path": "P01_107/P01_107_frame_0000000140.jpg",
                       "video": "P01_107", "subsequence": "P01_107_seq_00001"},
             "annotations": [{"id": "a1", "name": "left hand", "class_id": 300, "segments": [rect_polygon(2, 2, 15, 12)]},
                             {"id": "a2", "name": "knife", "class_id": 4,
                              "segments": [rect_polygon(10, 8, 14, 16), rect_polygon(10, 18, 14, 25)]},
                             {"id": "a3", "name": "plate", "class_id": 9, "segments": [[[1, 1], [2, 2]]]}]}
    json_file(root / "GroundTruth-SparseAnnotations" / "annotations" / "val" / "P01_107.json",
              {"video_annotations": [frame]})
    image(root / "GroundTruth-SparseAnnotations" / "rgb_frames" / "val" / "P01" / "P01_107" / "P01_107_frame_0000000140.jpg", H2, W2)
    ds = open_format(card("visor", resolution=[H2, W2]), root)
    sample = ds.sample("P01_107_frame_0000000140")
    assert_masks(sample, {"a1": hand & ~knife, "a2": knife})
    assert [p["kind"] for p in sample.problems] == ["empty_mask"]  # a 2-point polygon
    assert sample.image_path.is_file() and sample.load_image().shape == (H2, W2, 3)


def test_woodscape_z_order_and_tags(tmp_path):
    road, car = rect(H, W, 6, 0, 11, 15), rect(H, W, 4, 3, 8, 9)
    json_file(tmp_path / "instance_annotations" / "00001_FV.json", {"00001_FV.png": {
        "annotation": [{"id": 2, "tags": ["vehicles"], "z_order": 2, "segmentation": rect_polygon(4, 3, 8, 9)},
                       {"id": 1, "tags": ["road_surface"], "z_order": 1, "segmentation": rect_polygon(6, 0, 11, 15)},
                       {"id": 3, "tags": ["a", "b"], "z_order": 3, "segmentation": rect_polygon(0, 0, 2, 2)}],
        "image_width": W, "image_height": H}})
    image(tmp_path / "rgb_images" / "00001_FV.png", H, W)
    (tmp_path / "instance_annotations" / "00002_MVL.json").write_text('{"00002_MVL.png": {"annot')
    ds = open_format(card("woodscape"), tmp_path)
    sample = ds.sample("00001_FV")
    assert_masks(sample, {"1": road & ~car, "2": car})
    assert [p["kind"] for p in sample.problems] == ["ambiguous_tags"]
    broken = ds.sample("00002_MVL")  # one bad file spoils one sample, not the dataset
    assert broken.problems[0]["kind"] == "unreadable_annotation" and "00002_MVL.json" in broken.problems[0]["detail"]


def test_ndd20_via_polygons_in_two_parts(tmp_path):
    fin = rect(H, W, 2, 3, 9, 11)
    for part in ("ABOVE", "BELOW"):
        image(tmp_path / part / "0001.jpg", H, W)
        poly = rect_polygon(2, 3, 9, 11)
        json_file(tmp_path / f"{part}_LABELS.json", {"0001.jpg123": {
            "filename": "0001.jpg", "size": 123, "file_attributes": {},
            "regions": [{"shape_attributes": {"name": "polygon", "all_points_x": [p[0] for p in poly],
                                              "all_points_y": [p[1] for p in poly]},
                         "region_attributes": {"species": "WBD"}},
                        {"shape_attributes": {"name": "circle", "cx": 1, "cy": 1, "r": 1}, "region_attributes": {}}]}})
    ds = open_format(card("ndd20"), tmp_path)
    assert ds.image_ids == ["above/0001", "below/0001"]
    sample = ds.sample("below/0001")
    assert_masks(sample, {"0": fin})
    assert sample.instances[0].category == "WBD" and [p["kind"] for p in sample.problems] == ["unsupported_shape"]


def test_malformed_json_is_fatal_with_the_file_name(tmp_path):
    (tmp_path / "annotations_train.json").write_text('{"videos": [')
    with pytest.raises(SambenchError, match="malformed JSON in .*annotations_train.json"):
        open_format(card("ovis"), tmp_path)


def test_coco_rle_round_trip_helper():
    m = rect(H, W, 3, 3, 5, 9)
    assert np.array_equal(mask_codec.decode(rle(m)), m)
