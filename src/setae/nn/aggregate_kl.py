"""KL from the moments of the aggregate posterior to the prior N(0, I): a training regulariser.

A VAE's KL is per set. Whether the codes of all sets together, q(z) = E_X N(z; μ_X, diag σ²_X), fill the
prior is a property of q(z): N(0, I) samples land where q(z) has no mass when some direction of its
covariance is far below 1, and miss codes where one is far above it. With mean m = E μ_X and covariance
C = Cov(μ_X) + E diag σ²_X, the Gaussian with q(z)'s first two moments is N(m, C), and

    KL(N(m, C) ‖ N(0, I)) = ½ (tr C + |m|² − D − log det C)

is 0 exactly when those moments are the prior's. Unlike a Frobenius penalty ‖C − I‖² (DIP-VAE, Kumar et
al. 2018), −log det C grows without bound as a direction's variance goes to 0.

The moments of one batch of B ≈ D codes are noisy (the eigenvalues of a sample covariance spread as
Marchenko–Pastur's law says), so the regulariser is taken at running moments: with the batch's m_B and
C_B, the running m̄ ← (1 − λ)·m̄ + λ·m_B and C̄ ← (1 − λ)·C̄ + λ·C_B (outside the gradient; about 1/λ
batches), its value is KL(N(m̄, C̄) ‖ N(0, I)) and its gradient with respect to the batch's moments is the
KL's at the running ones, (m̄, ½(I − C̄⁻¹)). Each process keeps its own running moments (under DDP, rank 0's
are broadcast with the other buffers).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def gaussian_kl_to_standard_normal(mean: Tensor, cov: Tensor) -> Tensor:
    """KL(N(mean, cov) ‖ N(0, I)) [] for mean [D] and a positive-definite cov [D, D], in nats."""
    log_det = 2.0 * torch.linalg.cholesky(cov).diagonal().log().sum()
    return 0.5 * (cov.diagonal().sum() + mean.pow(2).sum() - len(mean) - log_det)


def mixture_moments(mean: Tensor, log_var: Tensor) -> tuple[Tensor, Tensor]:
    """Mean [D] and covariance [D, D] of the mixture (1/B) Σ_i N(μ_i, diag σ²_i), for μ, log σ² [B, D]:
    m = mean_i μ_i and C = (1/B) Σ_i (μ_i − m)(μ_i − m)ᵀ + mean_i diag σ²_i."""
    m = mean.mean(0)
    centred = mean - m
    return m, centred.T @ centred / len(mean) + torch.diag(log_var.exp().mean(0))


class AggregatePosteriorKL(nn.Module):
    """(μ [B, D], log σ² [B, D]) -> KL(N(m, C) ‖ N(0, I)) [] of the running aggregate moments (above)."""

    def __init__(self, dim: int, mix: float = 0.02):
        super().__init__()
        self.mix = mix
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_cov", torch.eye(dim))

    def forward(self, mean: Tensor, log_var: Tensor) -> Tensor:
        # float32 at least: a covariance and its Cholesky are not for bf16, even under autocast
        dtype = torch.promote_types(mean.dtype, torch.float32)
        with torch.autocast(mean.device.type, enabled=False):
            batch_mean, batch_cov = mixture_moments(mean.to(dtype), log_var.to(dtype))
            with torch.no_grad():
                self.running_mean.lerp_(batch_mean, self.mix)
                self.running_cov.lerp_(batch_cov, self.mix)
            # the running moments' value, the batch's moments' gradient (straight through)
            m = self.running_mean + (batch_mean - batch_mean.detach())
            cov = self.running_cov + (batch_cov - batch_cov.detach())
            return gaussian_kl_to_standard_normal(m, cov)
