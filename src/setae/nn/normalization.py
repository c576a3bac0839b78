"""Affine-free batch standardisation that also works across processes (CPU/gloo included).

In training, y = (x − μ_B) / sqrt(σ²_B + eps) per feature, with μ_B and the biased σ²_B taken over the whole
batch — over every process of the default torch.distributed group when one is initialised, so a run on
k processes with batch b normalises exactly like one process with batch k·b (PyTorch's SyncBatchNorm is
GPU-only). At inference the running estimates are used; `calibrate` sets them to an exact average.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of every process's input is the sum of all processes' gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _global_sum(x: torch.Tensor, sync: bool) -> torch.Tensor:
    if sync and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return _AllReduceSum.apply(x)
    return x


class BatchStandardize(nn.Module):
    """[B, dim] -> [B, dim], zero mean and unit variance per feature over the (global) batch."""

    def __init__(self, dim: int, eps: float = 1e-12, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self._calibration: list[torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()  # statistics in float32, also under bf16 autocast
        if not self.training:
            return (x - self.running_mean) / (self.running_var + self.eps).sqrt()
        sync = self._calibration is None  # calibration is local: every process sees the same batches
        stats = _global_sum(torch.cat([x.sum(0), x.new_tensor([x.shape[0]])]), sync)
        count = stats[-1]
        mean = stats[:-1] / count
        var = _global_sum(((x - mean) ** 2).sum(0), sync) / count  # two passes: no cancellation
        with torch.no_grad():
            unbiased = var * count / (count - 1).clamp(min=1)
            if self._calibration is not None:
                self._calibration.append(torch.stack([mean, unbiased]))
            else:
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        return (x - mean) / (var + self.eps).sqrt()

    def start_calibration(self) -> None:
        """Collect batch statistics instead of updating the running average…"""
        self._calibration = []

    def finish_calibration(self) -> None:
        """…and set the running estimates to their exact average."""
        collected, self._calibration = self._calibration, None
        if collected:
            mean, var = torch.stack(collected).mean(0)
            self.running_mean.copy_(mean)
            self.running_var.copy_(var)
