"""Random-number state across devices: seeded blocks that leave every generator as they found it, and the
state a checkpoint must hold to resume exactly (the CPU generator and, on a GPU, the CUDA one)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with the CPU and every CUDA generator seeded with `seed`; restore them all after
    (`fork_rng(devices=[])` would restore only the CPU one while `manual_seed` reseeds CUDA too)."""
    with torch.random.fork_rng(devices=_cuda_devices()):
        torch.manual_seed(seed)
        yield


@contextmanager
def preserved() -> Iterator[None]:
    """Run the block, then put the CPU and CUDA generators back as they were."""
    with torch.random.fork_rng(devices=_cuda_devices()):
        yield


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """{"cpu": state} plus {"cuda": state of `device`} when training on a GPU."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor] | torch.Tensor, device: torch.device) -> None:
    """Restore `rng_state`'s result (a bare tensor: a CPU state, as checkpoints before CUDA states held)."""
    if isinstance(state, torch.Tensor):
        state = {"cpu": state}
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
