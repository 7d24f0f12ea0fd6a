"""Shared by the benchmarks: a model wrapper that times ``embed``, so the image-encoder cost
can be told apart from the prompt/decoder side."""
import time


class TimedModel:
    """Counts the seconds spent in ``embed``; everything else is the wrapped model's."""

    def __init__(self, model):
        self.model, self.embed_s = model, 0.0

    def embed(self, image):
        t0 = time.perf_counter()
        out = self.model.embed(image)
        self.embed_s += time.perf_counter() - t0
        return out

    def __getattr__(self, name):
        return getattr(self.model, name)
