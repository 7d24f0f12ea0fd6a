"""The bundled demo model (repvit-sam:bundled): shipped inside the package, verified, loaded as
its family, and trained: its masks on the demo data are far from chance, which random weights
can never show (docs/models.md, "RepViT-SAM and the bundled demo model")."""
from __future__ import annotations

import numpy as np
import pytest

import sambench
from sambench import hub
from sambench.datasets import synth
from sambench.tasks import load_suite


@pytest.fixture(scope="module")
def bundled():
    return sambench.load_model("repvit-sam:bundled")


def test_shipped_in_the_package_and_small():
    family, path = hub.resolve("repvit-sam", "bundled")
    assert family == "repvit-sam" and path.endswith("bundled_model.safetensors")
    from pathlib import Path

    assert Path(path).stat().st_size <= 5_000_000


def test_demo_suite_runs_it_by_default():
    assert load_suite("demo").model == "repvit-sam:bundled"


def test_loads_as_the_bundled_architecture_in_float32(bundled):
    info = bundled.info().to_json()
    assert info["family"] == "repvit-sam" and info["config"]["variant"] == "bundled"
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in bundled.sam.parameters())


def test_trained_masks_follow_the_prompts(bundled, tmp_path, one_thread):
    """Box prompts on held-out synthetic images (seed 0, the demo's data; never seen in
    training): a trained model's boxed masks overlap the objects; random weights' do not."""
    root = tmp_path / "synth-shapes"
    synth.write_dataset(root, name="synth-shapes", domain="shapes", n_images=2, seed=0)
    from sambench.datasets import CocoDataset

    ious = []
    for sample in CocoDataset("s", root / "annotations.json", root / "images"):
        image = sample.load_image()
        emb = bundled.embed(image)
        for inst in sample.instances:
            gt = inst.mask().astype(bool)
            ys, xs = np.nonzero(gt)
            pred = bundled.predict(emb, box=[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], multimask=False)
            ious.append((pred.masks[0] & gt).sum() / (pred.masks[0] | gt).sum())
    assert len(ious) >= 10 and np.mean(ious) > 0.5, np.mean(ious)
