"""Packaging glue that pyproject.toml alone cannot say: the declarative top-level folders
(tasks/, dataset_adapters/, reports/ and their subfolders) are installed inside the package as
sambench.assets.*, so a non-editable install finds them (see sambench/resources.py)."""
import os

from setuptools import find_packages, setup

ASSETS = {}
for top in ("tasks", "dataset_adapters", "reports"):
    for folder, _, _ in os.walk(top):
        # reports/demo holds the committed example runs: documentation, not package data
        if "__pycache__" not in folder and not folder.startswith(os.path.join("reports", "demo")):
            ASSETS["sambench.assets." + folder.replace(os.sep, ".")] = folder

setup(packages=find_packages(include=["sambench", "sambench.*"]) + sorted(ASSETS), package_dir=ASSETS)
