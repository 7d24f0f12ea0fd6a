"""The one registry mechanism: lazy ``module:attr`` targets, close-match errors, optional deps."""
import subprocess
import sys

import pytest

from sambench.errors import SambenchError, UnknownNameError
from sambench.registry import Registry


def test_targets_are_imported_only_when_asked_for():
    code = ("import sys; from sambench.models import list_models; from sambench.tasks import RUNNERS; "
            "names = [n for n, _ in list_models()] + list(RUNNERS); "
            "assert 'sambench.models.official' not in sys.modules and 'sambench.tasks.text' not in sys.modules; "
            "RUNNERS.get('text'); assert 'sambench.tasks.text' in sys.modules; print(len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) >= 10


def test_unknown_names_and_bad_registrations():
    reg = Registry("widget")
    reg.register("round", "math:floor", "a target that exists")
    assert reg.get("round") is __import__("math").floor and reg.descriptions["round"] == "a target that exists"
    with pytest.raises(UnknownNameError, match="unknown widget 'rond'; did you mean round"):
        reg.get("rond")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("round", "math:ceil")
    reg.register("round", "math:floor")  # the same line twice (a module imported again) is fine
    with pytest.raises(ValueError, match="module:attr"):
        reg.register("square", "math.floor")


def test_a_missing_optional_dependency_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "needs_extra.py").write_text("import sambench_no_such_package_xyz\n\nthing = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("model")
    reg.register("fancy", "needs_extra:thing")
    with pytest.raises(SambenchError, match="model fancy needs the package 'sambench_no_such_package_xyz'"):
        reg.get("fancy")
    reg.register("typo", "sambench.no_such_module:thing")  # a wrong target is a bug, not a user error
    with pytest.raises(ModuleNotFoundError):
        reg.get("typo")
