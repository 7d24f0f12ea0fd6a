"""MATLAB 5 ``.mat`` files from untrusted sources: the structure is checked before scipy parses it.

scipy's MAT-5 reader (``scipy.io.matlab._mio5_utils``) is C code that trusts the file: it looks
a data element's type code up in a 20-entry table of type objects without a bounds or NULL check
(numeric or char data of type 0, 8, 10, 11, 14 (a matrix), 15 or 19 has no entry, 20 and up
fall past the table: a NULL or foreign pointer, a segfault), recurses through nested cells and
structs on the C stack (deep nesting overflows it), and allocates whatever byte count an element
declares before reading it. A segfault cannot be caught, so one corrupted BSDS ground-truth file
would kill the whole run.

:func:`read_mat` therefore walks the file first (:func:`check_mat5`) and hands scipy only what
passed: every element's type legal at its place, every byte count inside its container, every
array's data exactly ``prod(dims)`` items, cells and structs at most :data:`MAX_DEPTH` deep, and
the compressed variables inflated here, within :data:`MAX_INFLATED` bytes, so scipy reads the
checked bytes and never a zlib stream. Only the classes ground truth is made of are admitted
(numeric, logical, char, cell, struct); MAT-4, v7.3 (HDF5), sparse, object, function and opaque
variables are refused. Checking the container is cheaper and simpler than parsing in a child
process (a process per file, or a worker to keep alive and restart), gives a message that says
what is wrong, and changes no value: scipy still decodes every array.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from math import prod

from sambench.errors import SambenchError

MAX_DEPTH = 16  # cells and structs nested deeper are refused (BSDS ground truth: 3 levels)
MAX_INFLATED = 1 << 30  # bytes the compressed variables of one file may inflate to, together

MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 14, 15
NUMERIC = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8}  # miTYPE -> item size
CHAR_DATA = {1, 2, 4, 16, 17, 18}  # int8, uint8, uint16, utf8, utf16, utf32
CELL, STRUCT, CHAR = 1, 2, 4
NUMERIC_CLASSES = range(6, 16)  # double, single, int8 ... uint64
CLASS_NAMES = {3: "object", 5: "sparse", 16: "function handle", 17: "opaque"}


class _Corrupt(Exception):
    """A structural violation, at a byte offset of the buffer being walked."""


class _Walker:
    """One pass over a MAT-5 buffer (the file, or one inflated variable), element by element,
    in the order and with the rules of scipy's reader, plus the checks scipy leaves out."""

    def __init__(self, data: bytes, order: str):
        self.data, self.order = data, order

    def u32(self, pos: int, n: int = 1) -> tuple[int, ...]:
        return struct.unpack_from(f"{self.order}{n}I", self.data, pos)

    def element(self, pos: int, end: int, small: bool = True) -> tuple[int, int, int, int]:
        """``(type, byte count, data offset, next offset)`` of the element at pos; a small
        data element (<= 4 bytes inside its 8-byte tag) when ``small``. Full elements are
        padded to 8 bytes."""
        if pos + 8 > end:
            raise _Corrupt(f"element tag at byte {pos} runs past its container (ends at {end})")
        mdtype, count = self.u32(pos, 2)
        if mdtype >> 16:
            if not small or mdtype >> 16 > 4:
                raise _Corrupt(f"bad element tag at byte {pos}")
            return mdtype & 0xFFFF, mdtype >> 16, pos + 4, pos + 8
        nxt = pos + 8 + count + (-count % 8)
        if nxt > end:
            raise _Corrupt(f"element at byte {pos} declares {count} bytes, past its container (ends at {end})")
        return mdtype, count, pos + 8, nxt

    def matrix(self, pos: int, end: int, depth: int) -> int:
        """Check the miMATRIX element at pos; return the offset after it."""
        mdtype, count, start, nxt = self.element(pos, end, small=False)
        if mdtype != MI_MATRIX:
            raise _Corrupt(f"element at byte {pos} has type {mdtype}, a matrix (14) expected")
        if count and self.array(start, start + count, depth) != start + count:
            raise _Corrupt(f"matrix at byte {pos} declares {count} bytes but its parts fill another amount")
        return nxt

    def array(self, pos: int, end: int, depth: int) -> int:
        """Check an array's parts (flags, dims, name, data); return the offset after them."""
        if depth > MAX_DEPTH:
            raise _Corrupt(f"cells or structs nested more than {MAX_DEPTH} deep at byte {pos}")
        mdtype, count, start, pos = self.element(pos, end, small=False)
        if (mdtype, count) != (MI_UINT32, 8):
            raise _Corrupt(f"bad array flags at byte {start - 8}")
        flags = self.u32(start)[0]
        mclass, is_complex = flags & 0xFF, flags >> 11 & 1
        mdtype, count, start, pos = self.element(pos, end)
        if mdtype not in (MI_INT32, MI_UINT32) or count % 4 or not 2 <= count // 4 <= 32:
            raise _Corrupt(f"bad dimensions at byte {start - 8}")
        dims = struct.unpack_from(f"{self.order}{count // 4}i", self.data, start)
        if min(dims) < 0:
            raise _Corrupt(f"negative dimension {list(dims)} at byte {start}")
        n = prod(dims)
        mdtype, _, start, pos = self.element(pos, end)
        if mdtype != MI_INT8:
            raise _Corrupt(f"bad array name at byte {start - 8}")
        if mclass in NUMERIC_CLASSES:
            for _ in range(1 + is_complex):
                mdtype, count, start, pos = self.element(pos, end)
                size = NUMERIC.get(mdtype)
                if size is None or count != n * size:
                    raise _Corrupt(f"numeric data at byte {start - 8} of type {mdtype} and {count} bytes "
                                   f"for {n} values")
        elif mclass == CHAR:
            mdtype, count, start, pos = self.element(pos, end)
            if mdtype not in CHAR_DATA or count < n:  # every character takes a byte at least
                raise _Corrupt(f"character data at byte {start - 8} of type {mdtype} and {count} bytes "
                               f"for {n} characters")
        elif mclass == CELL:
            for _ in range(n):
                pos = self.matrix(pos, end, depth + 1)
        elif mclass == STRUCT:
            mdtype, count, start, pos = self.element(pos, end)
            length = self.u32(start)[0] if mdtype in (MI_INT32, MI_UINT32) and count == 4 else 0
            mdtype, count, start, pos = self.element(pos, end)
            if not 0 < length < 2**31 or mdtype != MI_INT8 or count % length:
                raise _Corrupt(f"bad struct field names at byte {start - 8}")
            names = self.data[start:start + count]
            if any(b"\0" not in names[k:k + length] for k in range(0, count, length)):
                raise _Corrupt(f"struct field name without its terminating NUL at byte {start}")
            fields = count // length
            if not fields and n > 1:
                raise _Corrupt(f"struct array of {n} elements without fields at byte {start}")
            for _ in range(n * fields):
                pos = self.matrix(pos, end, depth + 1)
        else:
            kind = CLASS_NAMES.get(mclass, f"unknown class {mclass}")
            raise _Corrupt(f"a {kind} variable (ground truth holds numbers, text, cells and structs)")
        return pos


def _inflate(raw: bytes, budget: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, max(budget, 1))
    except zlib.error as exc:
        raise _Corrupt(f"compressed variable does not inflate ({exc})") from None
    if inflater.unconsumed_tail or len(out) > budget:
        raise _Corrupt(f"compressed variables inflate to more than {MAX_INFLATED} bytes")
    return out


def check_mat5(data: bytes) -> bytes:
    """The file ``data`` with its compressed variables inflated, once its whole structure has
    passed; ``ValueError`` naming the first violation otherwise."""
    if len(data) < 128:
        raise ValueError(f"{len(data)} bytes, shorter than a MAT-file header")
    if 0 in data[:4]:
        raise ValueError("a MATLAB 4 file or not a .mat file (MAT-5 expected)")
    order = {b"IM": "<", b"MI": ">"}.get(data[126:128])
    if order is None:
        raise ValueError("not a MAT-5 file (no endian mark in the header)")
    major = struct.unpack_from(f"{order}H", data, 124)[0] >> 8
    if major != 1:
        hdf5 = " (MATLAB 7.3 files are HDF5: save with -v7)" if major == 2 else ""
        raise ValueError(f"MAT-file version {major} is not MAT-5{hdf5}")
    walker, parts, pos, inflated = _Walker(data, order), [data[:128]], 128, 0
    try:
        while pos < len(data):
            if pos + 8 > len(data):
                raise _Corrupt(f"{len(data) - pos} stray bytes at the end")
            mdtype, count = walker.u32(pos, 2)
            start, end = pos + 8, pos + 8 + count  # top-level elements are not padded
            if end > len(data):
                raise _Corrupt(f"variable at byte {pos} declares {count} bytes, past the end ({len(data)})")
            if count == 0 or mdtype not in (MI_MATRIX, MI_COMPRESSED):
                raise _Corrupt(f"variable at byte {pos} of type {mdtype} and {count} bytes")
            if mdtype == MI_COMPRESSED:
                inner = _inflate(data[start:end], MAX_INFLATED - inflated)
                inflated += len(inner)
                try:
                    size = _Walker(inner, order).matrix(0, len(inner), 1)
                except _Corrupt as exc:
                    raise _Corrupt(f"in the compressed variable at byte {pos}: {exc}") from None
                if size != len(inner) or struct.unpack_from(f"{order}I", inner, 4)[0] == 0:
                    raise _Corrupt(f"compressed variable at byte {pos} holds no single matrix")
                parts.append(inner)
            else:
                walker.matrix(pos, end, 1)
                parts.append(data[pos:end])
            pos = end
    except _Corrupt as exc:
        raise ValueError(str(exc)) from None
    return b"".join(parts)


def read_mat(path: str | os.PathLike, what: str = ".mat file") -> dict:
    """``scipy.io.loadmat`` of a MAT-5 file whose structure passed :func:`check_mat5`; any
    problem is one :class:`SambenchError`: ``unreadable <what> <path>: <reason>``."""
    import scipy.io

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise SambenchError(f"unreadable {what} {path}: {exc.strerror or exc}") from None
    try:
        return scipy.io.loadmat(io.BytesIO(check_mat5(data)))
    except Exception as exc:  # scipy still refuses some checked files (bad UTF-8 names, ...)
        detail = "it declares more data than fits in memory" if isinstance(exc, MemoryError) else exc
        raise SambenchError(f"unreadable {what} {path}: {detail}") from None
