"""Packaging glue that pyproject.toml alone cannot say: the declarative top-level folders
(tasks/, dataset_adapters/, reports/) are installed inside the package as sambench.assets.*,
so a non-editable install finds them (see sambench/resources.py)."""
from setuptools import find_packages, setup

ASSETS = {
    "sambench.assets.tasks": "tasks",
    "sambench.assets.dataset_adapters": "dataset_adapters",
    "sambench.assets.reports": "reports",
    "sambench.assets.reports.templates": "reports/templates",
    "sambench.assets.reports.reference": "reports/reference",
}

setup(packages=find_packages(include=["sambench", "sambench.*"]) + list(ASSETS), package_dir=ASSETS)
