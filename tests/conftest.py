"""Shared fixtures: a per-test cache folder and a tiny synthetic COCO dataset."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write into the user's ~/.cache during tests."""
    monkeypatch.setenv("SAMBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def one_thread():
    """Small models gain nothing from threads, and on a shared CI core every small op would
    wait for a descheduled peer thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    from sambench.datasets import synth

    root = tmp_path_factory.mktemp("synth") / "synth-shapes"
    synth.write_dataset(root, name="synth-shapes", domain="shapes", n_images=3, seed=0)
    return root
