"""MAT-5 structure checks before scipy (sambench/matfile.py): corrupt files that crash or blow up
scipy's reader are one SambenchError; valid files read exactly as scipy reads them."""
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from sambench import matfile
from sambench.errors import SambenchError
from sambench.matfile import check_mat5, read_mat

FIXTURES = sorted((Path(__file__).parent / "fixtures").rglob("*.mat"))
DOUBLE, CHAR, CELL, STRUCT, SPARSE = 6, 4, 1, 2, 5


def element(mdtype: int, payload: bytes) -> bytes:
    return struct.pack("<2I", mdtype, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def matrix(mclass: int, dims, *parts: bytes, flags: int = 0) -> bytes:
    return element(14, element(6, struct.pack("<2I", mclass | flags, 0))
                   + element(5, struct.pack(f"<{len(dims)}i", *dims)) + element(1, b"x") + b"".join(parts))


def mat_file(*variables: bytes, version: int = 0x0100) -> bytes:
    return b"MATLAB 5.0 MAT-file".ljust(116, b" ") + bytes(8) + struct.pack("<H", version) + b"IM" + b"".join(variables)


def nested_cells(depth: int) -> bytes:
    """A double inside ``depth`` 1x1 cells, built outside in (no quadratic copying)."""
    inner = matrix(DOUBLE, [1, 1], element(9, struct.pack("<d", 1.0)))
    head = element(6, struct.pack("<2I", CELL, 0)) + element(5, struct.pack("<2i", 1, 1)) + element(1, b"x")
    tags = [struct.pack("<2I", 14, len(inner) + (depth - k) * (len(head) + 8) - 8) + head for k in range(depth)]
    return b"".join(tags) + inner


def test_nested_cells_helper_builds_a_valid_file():
    assert scipy.io.loadmat(io.BytesIO(mat_file(nested_cells(3))))["x"][0, 0][0, 0][0, 0][0, 0] == 1.0


# Each of the first five crashes scipy.io.loadmat 1.17 with SIGSEGV (checked in a subprocess when
# this suite was written): type codes without an entry in its type table, and C-stack recursion.
CORRUPT = {
    "numeric data of type miMATRIX (the fuzz case)": (matrix(DOUBLE, [1, 1], element(14, b"")), "of type 14"),
    "numeric data of type 200": (matrix(DOUBLE, [1, 1], element(200, bytes(8))), "of type 200"),
    "numeric data of reserved type 8": (matrix(DOUBLE, [1, 1], element(8, bytes(8))), "of type 8"),
    "char data of type miMATRIX": (matrix(CHAR, [1, 2], element(14, b"ab")), "character data"),
    "100,000 nested cells": (nested_cells(100_000), "nested more than 16 deep"),
    "complex without an imaginary part": (matrix(DOUBLE, [1, 1], element(9, bytes(8)), flags=1 << 11),
                                          "runs past its container"),
    "fewer values than dims": (matrix(DOUBLE, [2, 2], element(9, bytes(8))), "for 4 values"),
    "negative dimension": (matrix(DOUBLE, [-1, 1]), "negative dimension"),
    "data past the file's end": (matrix(DOUBLE, [1, 1], struct.pack("<2I", 9, 0xFFFFFFF0)), "declares"),
    "field-less struct of 1.6e9 elements": (matrix(STRUCT, [40000, 40000], element(5, struct.pack("<i", 8)),
                                                   element(1, b"")), "without fields"),
    "field name without NUL": (matrix(STRUCT, [1, 1], element(5, struct.pack("<i", 4)), element(1, b"abcd"),
                                      matrix(DOUBLE, [0, 0], element(9, b""))), "terminating NUL"),
    "sparse variable": (matrix(SPARSE, [1, 1]), "sparse variable"),
    "top-level element that is not a matrix": (element(9, bytes(8)), "of type 9"),
    "compressed garbage": (element(15, b"not zlib at all!"), "does not inflate"),
    "stray bytes at the end": (matrix(DOUBLE, [0, 0], element(9, b"")) + b"abc", "stray bytes"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_structure_is_one_clear_error(tmp_path, case):
    variable, message = CORRUPT[case]
    path = tmp_path / "x.mat"
    path.write_bytes(mat_file(variable))
    with pytest.raises(SambenchError, match=message) as exc:
        read_mat(path, "ground-truth file")
    assert str(exc.value).startswith(f"unreadable ground-truth file {path}: ") and "\n" not in str(exc.value)


@pytest.mark.parametrize("raw, message", [
    (b"", "shorter than a MAT-file header"),
    (bytes(4) + bytes(200), "MATLAB 4"),
    (mat_file(version=0x0200), "MATLAB 7.3 files are HDF5"),
    (mat_file()[:126] + b"XX", "no endian mark"),
])
def test_not_a_mat5_file(tmp_path, raw, message):
    (tmp_path / "x.mat").write_bytes(raw)
    with pytest.raises(SambenchError, match=message):
        read_mat(tmp_path / "x.mat")


def test_decompression_is_bounded(tmp_path, monkeypatch):
    packed = zlib.compress(matrix(DOUBLE, [1, 200], element(9, bytes(1600))))
    (tmp_path / "x.mat").write_bytes(mat_file(struct.pack("<2I", 15, len(packed)) + packed))  # not padded
    assert read_mat(tmp_path / "x.mat")["x"].shape == (1, 200)
    monkeypatch.setattr(matfile, "MAX_INFLATED", 1000)
    with pytest.raises(SambenchError, match="inflate to more than 1000 bytes"):
        read_mat(tmp_path / "x.mat")
    monkeypatch.setattr(matfile, "MAX_INFLATED", 3000)  # one variable fits, two do not
    (tmp_path / "y.mat").write_bytes(mat_file(*[struct.pack("<2I", 15, len(packed)) + packed] * 2))
    with pytest.raises(SambenchError, match="inflate to more than 3000 bytes"):
        read_mat(tmp_path / "y.mat")


def test_truncated_fixture_is_refused(tmp_path):
    data = FIXTURES[0].read_bytes()
    for cut in (127, 200, len(data) // 2, len(data) - 1):
        (tmp_path / "x.mat").write_bytes(data[:cut])
        with pytest.raises(SambenchError, match="unreadable"):
            read_mat(tmp_path / "x.mat")


def assert_same(a, b):
    if isinstance(a, np.ndarray) and a.dtype.names:
        assert a.dtype.names == b.dtype.names and a.shape == b.shape
        for name in a.dtype.names:
            for x, y in zip(a[name].flat, b[name].flat):
                assert_same(x, y)
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert a.shape == b.shape
        for x, y in zip(a.flat, b.flat):
            assert_same(x, y)
    else:
        assert type(a) is type(b) and np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_bsds_fixtures_read_exactly_as_scipy_reads_them(path):
    assert len(FIXTURES) == 5
    ours, theirs = read_mat(path), scipy.io.loadmat(str(path))
    assert ours.keys() == theirs.keys()
    for key in ours:
        if not key.startswith("__"):
            assert_same(ours[key], theirs[key])


@pytest.mark.parametrize("compress", [False, True])
def test_valid_variables_of_every_admitted_class_pass(compress):
    values = {"d": np.arange(6.0).reshape(2, 3), "u": np.arange(4, dtype=np.uint16), "b": np.eye(2) > 0,
              "c": 1 + 2j, "s": "héllo", "e": np.zeros((0, 3)),
              "cell": np.array([[1, "a", np.zeros((0, 0))]], dtype=object), "st": {"a": 1, "b": {"deep": [1, 2]}}, "empty_st": {}, "nested": np.empty((0, 0), dtype=object)}
    buf = io.BytesIO()
    scipy.io.savemat(buf, values, do_compression=compress)
    raw = buf.getvalue()
    theirs, ours = scipy.io.loadmat(io.BytesIO(raw)), scipy.io.loadmat(io.BytesIO(check_mat5(raw)))
    for key in values:
        assert_same(ours[key], theirs[key])
