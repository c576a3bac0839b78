"""Data-parallel training through PyTorch's own engine: `torchrun --nproc_per_node=N -m setae train ...`.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous variables; `Distributed.from_env` joins the
process group (NCCL on GPUs, gloo on CPUs) and picks this process's device. A single process without those
variables gets a context of world size 1 and no process group, so the same training loop serves both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Distributed:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "auto") -> Distributed:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
        if world_size == 1:
            return cls(0, 1, torch.device(("cuda" if cuda else "cpu") if device == "auto" else device))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda:
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        return cls(
            dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local_rank}" if cuda else "cpu")
        )

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The average of `values` over processes (a copy; no gradient)."""
        values = values.detach().clone()
        if self.world_size > 1:
            dist.all_reduce(values)
            values /= self.world_size
        return values

    def any(self, flag: bool) -> bool:
        """True on every process when `flag` is True on any (so all take the same branch)."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def gather(self, obj: object) -> list[object]:
        """[obj of rank 0, obj of rank 1, ...] on every process."""
        if self.world_size == 1:
            return [obj]
        out: list[object] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
