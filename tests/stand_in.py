"""A fast, prompt-sensitive stand-in model for engine and report tests (registered as
``test-disk``): disks around the mean positive click, with a cacheable embedding."""
import numpy as np

from sambench.models import MODELS
from sambench.models.base import ModelInfo, batch_prompts, unbatch
from sambench.types import Prediction

RADII = (3, 8, 20)


class DiskModel:
    """Disks around the mean positive click: a fast, prompt-sensitive stand-in model."""

    calls = 0

    def info(self):
        return ModelInfo("disk", "test", config={"radii": list(RADII)})

    def embed(self, image):
        DiskModel.calls += 1
        return image.shape[:2]

    def embedding_key(self):
        return "test-disk-v1"

    def embedding_to_arrays(self, embedding):
        return {"size": np.array(embedding, np.int64)}

    def embedding_from_arrays(self, arrays):
        return tuple(int(v) for v in arrays["size"])

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=True):
        batch = batch_prompts(points, labels, box, mask_input)
        h, w = embedding
        ys, xs = np.mgrid[0:h, 0:w]
        radii = RADII if multimask else RADII[1:2]
        masks = np.zeros((batch.size, len(radii), h, w), bool)
        for b in range(batch.size):
            pos = batch.points[b][batch.labels[b] == 1].mean(axis=0)
            for k, r in enumerate(radii):
                masks[b, k] = (xs - pos[0]) ** 2 + (ys - pos[1]) ** 2 <= r * r
        scores = np.tile(np.array([0.2, 0.9, 0.5][: len(radii)] if multimask else [0.9], np.float32),
                         (batch.size, 1))
        return unbatch(Prediction(masks, scores, np.zeros((batch.size, len(radii), 256, 256), np.float32)), batch)


if "test-disk" not in MODELS:
    MODELS.add("test-disk", lambda checkpoint=None, device="cpu", dtype="float32": DiskModel(), "test stand-in")


