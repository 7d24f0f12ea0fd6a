"""Random weights keyed by tensor name: the same (seed, name, shape) gives the same tensor.

Parity is checked on random weights in a family's official layout. Each tensor is drawn from a
generator seeded by ``sha256(seed, name)``, so the values do not depend on the order in which
modules are built or keys are listed: the reference (built from upstream code) and our model
(built from ours) get identical tensors from nothing but the seed, and golden files need to
store only the seed. Every tensor is randomised, those a fresh init leaves constant included
(biases, norm affines, batch-norm running statistics, ``num_batches_tracked``): a constant
tensor would hide a bug in the code that reads it.

Scales keep activations O(1) through deep conv stacks: fan-in scaling for weights; batch-norm
running variance in [0.5, 2]; the batch-norm scale of a residual branch's last layer small
(``residual_scale_keys``), as the reference inits zero it, so that the residual stream does not
double with every block.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Mapping, Optional

import torch

from sambench.models.sam.random_checkpoint import _random_tensor as sam_random_tensor


def keyed_generator(seed: int, name: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def random_tensor(name: str, shape: Iterable[int], dtype: Optional[torch.dtype], seed: int,
                  small_scale: bool = False) -> torch.Tensor:
    """One tensor for ``name`` (float32, or int64 counters, when ``dtype`` is None);
    ``small_scale`` marks the scale of a residual branch's last norm."""
    shape = torch.Size(shape)
    gen = keyed_generator(seed, name)
    if name.endswith("num_batches_tracked"):
        return torch.randint(1, 10_000, shape, generator=gen, dtype=dtype or torch.int64)
    if name.endswith("running_var"):
        return torch.rand(shape, generator=gen) * 1.5 + 0.5
    if name.endswith("running_mean"):
        return torch.randn(shape, generator=gen) * 0.2
    if small_scale and len(shape) == 1:
        return torch.randn(shape, generator=gen) * 0.05 + 0.2
    return sam_random_tensor(name, shape, gen).to(dtype or torch.float32)


def random_state_dict(shapes: Mapping[str, tuple[torch.Size, torch.dtype]], seed: int,
                      residual_scale: Optional[Callable[[str], bool]] = None) -> dict[str, torch.Tensor]:
    """Random tensors for ``{name: (shape, dtype)}``; ``residual_scale(name)`` marks the
    batch-norm scales of residual branches' last layers (drawn small)."""
    out = {}
    for name, (shape, dtype) in shapes.items():
        small = residual_scale is not None and name.endswith(".weight") and residual_scale(name)
        out[name] = random_tensor(name, shape, dtype, seed, small).contiguous()
    return out


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[torch.Size, torch.dtype]]:
    """``{name: (shape, dtype)}`` of a module's state dict (build it on the meta device)."""
    return {k: (v.shape, v.dtype) for k, v in module.state_dict().items()}


def family_random_tensor(small_scale: Callable[[str], bool]) -> Callable[[str, torch.Size, torch.Generator], torch.Tensor]:
    """A ``Family.random_tensor`` keyed by name: the generator it is handed gives only its seed
    (``initial_seed()``), so ``Family.random_state_dict(config, seed)`` equals
    :func:`random_state_dict` of the same shapes whatever order the keys come in."""
    def draw(name: str, shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
        return random_tensor(name, shape, None, gen.initial_seed(), small_scale(name))
    return draw
