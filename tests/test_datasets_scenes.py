"""Cityscapes (instanceIds and polygons, panoptic rule) and ADE20K (objects and parts)."""
from dataclasses import replace

import numpy as np

from sambench.datasets import load_cards
from sambench.datasets.base import open_format

from fixtures.datasets.write import assert_masks, image, json_file, png, rect, rect_polygon

H, W = 16, 24


def card(name, **layout):
    base = load_cards().get(name)
    return replace(base, layout={**base.layout, **layout})


def cityscapes_truth():
    """Visible masks: road (stuff), sky (stuff), car #0, car #1 partly behind a person,
    a car group (crowd) and an ego-vehicle region (void)."""
    road, sky = rect(H, W, 10, 0, 15, 23), rect(H, W, 0, 0, 3, 23)
    car0, car1 = rect(H, W, 4, 1, 8, 6), rect(H, W, 4, 10, 9, 16)
    person = rect(H, W, 5, 14, 9, 18)
    group, ego = rect(H, W, 4, 20, 6, 23), rect(H, W, 14, 8, 15, 12)
    return road, sky, car0, car1, person, group, ego


def write_cityscapes(root):
    road, sky, car0, car1, person, group, ego = cityscapes_truth()
    ids = np.zeros((H, W), int)  # drawn in the order json2instanceImg would
    for mask, value in ((road, 7), (sky, 23), (car0, 26000), (car1, 26001), (person, 24000),
                        (group, 26), (ego, 1)):
        ids[mask] = value
    base = "frankfurt_000000_000294"
    image(root / "leftImg8bit" / "val" / "frankfurt" / f"{base}_leftImg8bit.png", H, W)
    png(root / "gtFine" / "val" / "frankfurt" / f"{base}_gtFine_instanceIds.png", ids, "I;16")
    objects = [("road", road), ("sky", sky), ("car", car0), ("car", car1), ("person", person),
               ("cargroup", group), ("ego vehicle", ego), ("unicorn", rect(H, W, 0, 0, 1, 1))]
    json_file(root / "gtFine" / "val" / "frankfurt" / f"{base}_gtFine_polygons.json", {
        "imgHeight": H, "imgWidth": W,
        "objects": [{"label": label, "polygon": rect_polygon(*bbox(m))} for label, m in objects]
        + [{"label": "car", "polygon": rect_polygon(0, 0, 2, 2), "deleted": 1}]})
    return f"frankfurt/{base}"


def bbox(mask):
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())


def test_cityscapes_instance_ids_panoptic(tmp_path):
    sample_id = write_cityscapes(tmp_path)
    road, sky, car0, car1, person, group, ego = cityscapes_truth()
    ds = open_format(card("cityscapes"), tmp_path)
    assert ds.image_ids == [sample_id]
    sample = ds.sample(sample_id)
    road_visible = road & ~ego
    assert_masks(sample, {"7": road_visible, "23": sky, "26000": car0, "26001": car1 & ~person,
                          "24000": person, "26": group})
    by_id = {i.id: i for i in sample.instances}
    assert by_id["26"].iscrowd and not by_id["26000"].iscrowd
    assert by_id["7"].meta["kind"] == "stuff" and by_id["24000"].category == "person"
    without_stuff = open_format(card("cityscapes", stuff=False), tmp_path).sample(sample_id)
    assert sorted(i.id for i in without_stuff.instances) == ["24000", "26", "26000", "26001"]
    # the ignore region: void classes (unlabelled = 0, ego vehicle) and the crowd region
    drawn = road | sky | car0 | car1 | person | group | ego
    assert (sample.ignore_mask() == (~drawn | ego | group)).all()


def test_cityscapes_polygons_give_the_same_instances(tmp_path):
    sample_id = write_cityscapes(tmp_path)
    from_png = open_format(card("cityscapes"), tmp_path).sample(sample_id)
    from_json = open_format(card("cityscapes", source="polygons"), tmp_path).sample(sample_id)
    assert_masks(from_json, {i.id: i.mask() for i in from_png.instances})
    assert [p["kind"] for p in from_json.problems] == ["unknown_category"]  # the unicorn


def ade_colour(cls: int, inst: int) -> tuple[int, int, int]:
    """The (R, G, B) of ADE20K's encoding: class = R // 10 * 256 + G, instance = B."""
    return (cls // 256) * 10, cls % 256, inst


def test_ade20k_objects_and_parts(tmp_path):
    wall, door, handle, person = (rect(H, W, 0, 0, 15, 23), rect(H, W, 3, 3, 12, 9),
                                  rect(H, W, 7, 7, 8, 8), rect(H, W, 4, 14, 14, 19))
    seg = np.zeros((H, W, 3), np.uint8)
    for mask, cls, inst in ((wall, 2978, 1), (door, 775, 2), (person, 1831, 3)):
        seg[mask] = ade_colour(cls, inst)
    seg[15, :] = 0  # unlabelled strip
    parts = np.zeros((H, W, 3), np.uint8)
    parts[handle] = ade_colour(1181, 1)
    folder = tmp_path / "images" / "ADE" / "validation" / "home_or_hotel" / "bedroom"
    image(folder / "ADE_val_00000001.jpg", H, W)
    png(folder / "ADE_val_00000001_seg.png", seg)
    png(folder / "ADE_val_00000001_parts_1.png", parts)
    image(folder / "ADE_train_00000001.jpg", H, W)  # the other split: not picked up
    ds = open_format(card("ade20k"), tmp_path)
    assert ds.image_ids == ["ADE_val_00000001"]
    sample = ds.sample("ADE_val_00000001")
    wall_visible = wall & ~door & ~person
    wall_visible[15, :] = False
    assert_masks(sample, {"o1": wall_visible, "o2": door, "o3": person, "p1-1": handle})
    assert {i.id: i.category_id for i in sample.instances} == {"o1": 2978, "o2": 775, "o3": 1831, "p1-1": 1181}
    objects_only = open_format(card("ade20k", part_levels=[]), tmp_path).sample("ADE_val_00000001")
    assert sorted(i.id for i in objects_only.instances) == ["o1", "o2", "o3"]
    # the card makes unlabelled pixels the ignore region; without that flag there is none
    strip = np.zeros((H, W), bool)
    strip[15, :] = True
    assert (sample.ignore_mask() == strip).all()
    assert open_format(card("ade20k", unlabeled_is_void=False), tmp_path).sample("ADE_val_00000001").ignore_mask() is None
