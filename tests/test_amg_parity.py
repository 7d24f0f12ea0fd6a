"""Our AutomaticMaskGenerator against the official SamAutomaticMaskGenerator, same weights.

The official generator needs torchvision, so it runs in the reference venv (``.venv-official``
or ``$SAMBENCH_OFFICIAL_PYTHON``; scripts/test.sh creates it and sets the variable, so in CI a
missing reference fails instead of skipping). Weights: a tiny random checkpoint tuned so that
the default filters keep some masks and reject others (:func:`sambench.amg.testing.amg_checkpoint`);
two small images. For the default settings and a crop setting (one crop layer, small-region
cleanup), on every image: the same number of masks, each matched mask with IoU >= 0.99 (in
practice identical), predicted IoU and stability within 1e-4, and the same box, area, point and
crop box. Run with ``-s`` to see the numbers.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

import sambench
from sambench.amg import AutomaticMaskGenerator
from sambench.amg.official import ENV_VAR, official_amg, official_available
from sambench.amg.testing import amg_checkpoint, compare_records, shapes_image

# A narrow mask decoder keeps a 32x32 grid at a few seconds per image on one CPU core.
SMALL_DECODER = dict(prompt_embed_dim=32, decoder_mlp_dim=64, iou_head_hidden_dim=32, mask_in_chans=4)
SETTINGS = {"default": {}, "crops": dict(crop_n_layers=1, points_per_side=16, min_mask_region_area=30)}
SIZES = [(90, 120), (150, 200)]
SEED = 1


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    ok, why = official_available()
    if not ok:
        if os.environ.get(ENV_VAR):
            pytest.fail(why)
        pytest.skip(why)
    checkpoint = amg_checkpoint(tmp_path_factory.mktemp("amg") / "amg.pth", "tiny", seed=SEED, **SMALL_DECODER)
    images = [shapes_image(h, w, SEED) for h, w in SIZES]
    with ThreadPoolExecutor(max_workers=1) as pool:  # the reference runs in its own process meanwhile
        official = pool.submit(official_amg, str(checkpoint), images, list(SETTINGS.values()))
        model = sambench.load_model("sam", checkpoint=str(checkpoint))
        ours = [[AutomaticMaskGenerator(model, output_mode="coco_rle", **options).generate(image)
                 for image in images] for options in SETTINGS.values()]
        reference = official.result()["records"]["official"]
    return dict(zip(SETTINGS, zip(reference, ours)))


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_amg_equals_official(runs, setting):
    reference, ours = runs[setting]
    for size, ref, mine in zip(SIZES, reference, ours):
        diff = compare_records(ref, mine)
        print(f"{setting} {size[1]}x{size[0]}: {diff}")
        assert diff["n_reference"] == diff["n_ours"] > 0
        assert diff["min_iou"] >= 0.99
        assert diff["max_score_diff"] <= 1e-4 and diff["max_stability_diff"] <= 1e-4
        assert diff["field_mismatches"] == 0


def test_parity_cases_exercise_the_pipeline(runs):
    """Not vacuous: several masks survive the filters and NMS, some of them from crops."""
    default, crops = runs["default"][0], runs["crops"][0]
    assert all(len(records) >= 3 for records in default)
    full = [[r for r in records if r["crop_box"][2:] != [w, h]] for records, (h, w) in zip(crops, SIZES)]
    assert any(full), "no mask from a zoomed-in crop survived: the crop setting tests nothing"
