"""Runtime helpers every model family shares: device and dtype, autocast, compile, CPU probes.

One place for the choices that decide how (not what) a model computes, so that every family
resolves ``device``/``dtype`` options, warns about emulated low precision and compiles its
encoder the same way (``sambench.models.sam``, ``sambench.models.official`` and the families
of ``sambench.models.family`` import from here).
"""
from __future__ import annotations

import contextlib
import logging

import torch

from sambench.errors import SambenchError

log = logging.getLogger("sambench")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise SambenchError(f"bad device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SambenchError(f"device {device!r} requested but CUDA is not available")
    return dev


def resolve_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise SambenchError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
    return DTYPES[dtype]


def cpu_has_native(dtype: torch.dtype) -> bool:
    """Whether this CPU multiplies ``dtype`` matrices in hardware (AVX512-BF16 or AMX for bf16,
    AVX512-FP16 / AMX-FP16 for fp16), as oneDNN reports it.

    Without, autocast still runs but every product is emulated, which is far slower than fp32:
    on an AVX2-only AMD EPYC the point task's decoder took 28× longer in bf16 than in fp32.
    """
    if dtype == torch.float32:
        return True
    probe = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}[dtype]
    try:
        return bool(getattr(torch.ops.mkldnn, probe)())
    except (AttributeError, RuntimeError):  # a torch without the probe or without oneDNN
        return False


def warn_if_emulated(device: torch.device, dtype: torch.dtype) -> None:
    """A log line when a low-precision CPU run will be slower than fp32, not faster."""
    if device.type == "cpu" and not cpu_has_native(dtype):
        name = str(dtype).removeprefix("torch.")
        units = "AVX512-BF16 or AMX" if dtype == torch.bfloat16 else "AVX512-FP16 or AMX-FP16"
        log.warning("this CPU has no native %s matrix units (%s): %s runs emulated and is much "
                    "slower than float32 here; numbers are valid, only the speed suffers",
                    name, units, name)


def autocast_for(device: torch.device, dtype: torch.dtype):
    """No-op for fp32 (the parity path), else ``torch.autocast`` to ``dtype``."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compiled(module: torch.nn.Module):
    """``module`` under ``torch.compile`` with inductor's *freezing*, for inference.

    Freezing folds the weights into the graph as constants and lets oneDNN prepack them; on a
    CPU that, more than the fused kernels, is where the speed-up is (ViT-B bf16 at 1024:
    ~1.1 s per image frozen, ~1.8 s compiled without freezing, ~2.2 s eager, on the 2-core
    machine of ``benchmarks/bench_sam.py``). Freezing is a process-wide inductor setting, so it
    is switched on only around the calls; the weights must not change afterwards. Each new
    input shape (e.g. another image batch size) compiles once more (tens of seconds).
    """
    from torch._dynamo.exc import BackendCompilerFailed
    from torch._inductor import config as inductor_config

    fn = torch.compile(module, dynamic=False)

    def run(*args):
        try:
            with inductor_config.patch(freezing=True):
                return fn(*args)
        except BackendCompilerFailed as exc:  # e.g. no C++ compiler on the machine
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SambenchError(f"torch.compile failed ({first[:200]}); run without compile=true") from None
    return run
