"""Packaging glue that pyproject.toml alone cannot say: the declarative top-level folders
(tasks/, dataset_adapters/, reports/ and their subfolders) are installed inside the package as
sambench.assets.*, so a non-editable install finds them (see sambench/resources.py).

An editable install (`pip install -e .`, scripts/setup.sh) reads those folders at the repository
root instead, so it declares only the plain flat layout: setuptools then installs a `.pth` file
naming the repository root rather than its import hook, which prints an "Editable installation"
notice on every install.
"""
import os
import sys

from setuptools import find_packages, setup

PACKAGES = find_packages(include=["sambench", "sambench.*"])

if "editable_wheel" in sys.argv:  # the command setuptools' build backend runs for `pip install -e`
    setup(packages=PACKAGES, package_dir={"": "."})
else:
    ASSETS = {}
    for top in ("tasks", "dataset_adapters", "reports"):
        for folder, _, _ in os.walk(top):
            # reports/demo holds the committed example runs: documentation, not package data
            if "__pycache__" not in folder and not folder.startswith(os.path.join("reports", "demo")):
                ASSETS["sambench.assets." + folder.replace(os.sep, ".")] = folder
    setup(packages=PACKAGES + sorted(ASSETS), package_dir=ASSETS)
