"""Multi-process training helpers (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK): rank info, the process group
(NCCL on GPUs, gloo on CPUs), a mean over ranks and a differentiable all-gather of the latents."""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_gather


@dataclasses.dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_name != "cpu"
        dist.init_process_group("nccl" if use_cuda else "gloo")
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return info


def all_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= info.world
    return t


def gather_with_grad(z: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """All ranks' latents, differentiable: the MMD is computed on the global batch, as in one process."""
    if info.world == 1:
        return z
    return torch.cat(all_gather(z), dim=0)
