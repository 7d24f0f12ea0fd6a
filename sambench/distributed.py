"""Scale-out over processes with torch.distributed (launched by ``torchrun``).

Each rank scores the images whose index in the dataset is ``index % world_size == rank`` and
writes their records; after a barrier, rank 0 reads every record in dataset order and writes
the results, so the numbers are identical for 1 and N ranks (random prompts are seeded per
mask). CPU runs use gloo, CUDA runs nccl.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, index: int) -> bool:
        return index % self.world_size == self.rank

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def device(self, device: str) -> str:
        """One GPU per local rank when several ranks share a CUDA machine."""
        if self.world_size > 1 and device == "cuda":
            return f"cuda:{self.local_rank}"
        return device


def init(device: str = "cpu") -> Dist:
    """Join the process group torchrun set up (environment variables); single process if none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")))
