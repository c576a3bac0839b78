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


class LabelCentering(nn.Module):
    """x [B, dim], labels [B] -> x − m_y: each label's mean code m [classes, dim] removed.

    Every label's codes then have the same mean (zero), the condition under which no linear classifier reads
    the label from them better than a constant guess (LEACE, Belrose et al. 2023). In training m follows
    each label's batch means (a running average, outside the gradient); `fit` sets it to exact means."""

    def __init__(self, num_classes: int, dim: int, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("label_mean", torch.zeros(num_classes, dim))

    def _means(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each label's mean of x [classes, dim] and whether the label occurs [classes]."""
        counts = torch.bincount(labels, minlength=len(self.label_mean))
        sums = x.new_zeros(self.label_mean.shape).index_add_(0, labels, x)
        return sums / counts.clamp(min=1)[:, None], counts > 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                means, present = self._means(x.float(), labels)
                self.label_mean[present] = self.label_mean[present].lerp(means[present], self.momentum)
        return x - self.label_mean[labels]

    @torch.no_grad()
    def fit(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        """Set m to the exact means of the uncentred codes x [N, dim] of each label present in `labels`."""
        means, present = self._means(x.float(), labels)
        self.label_mean[present] = means[present]
