"""MMD between a batch of codes and the prior N(0, I): the InfoVAE / WAE term on the aggregate posterior.

The KL of a VAE is per set, KL(q(z | X) ‖ p(z)); it does not see whether the codes of all sets together,
q(z) = E_X q(z | X), fill the prior. The maximum mean discrepancy does (Zhao et al. 2017, InfoVAE;
Tolstikhin et al. 2018, WAE). For codes z_1..z_n and prior draws y_1..y_m, the unbiased estimate is

    MMD²_k = 1/(n(n−1)) Σ_{i≠j} k(z_i, z_j) + 1/(m(m−1)) Σ_{i≠j} k(y_i, y_j) − 2/(nm) Σ_{i,j} k(z_i, y_j)

with WAE's inverse multiquadratic kernel summed over scales, k(a, b) = Σ_s C_s / (C_s + |a − b|²),
C_s = s · 2d for s in SCALES (d: the code's dimension, 2d: E|y − y'|² under N(0, I)). It is 0 in
expectation when q(z) = N(0, I) and can be slightly negative on a finite batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def imq_kernel(a: Tensor, b: Tensor) -> Tensor:
    """k(a_i, b_j) [n, m] for a [n, d], b [m, d]: Σ_s C_s / (C_s + |a_i − b_j|²), C_s = s · 2d."""
    sq = (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)
    base = 2.0 * a.shape[1]
    return sum(s * base / (s * base + sq) for s in SCALES)


def mmd_to_standard_normal(z: Tensor, prior: Tensor | None = None) -> Tensor:
    """Unbiased MMD²(codes, N(0, I)) [] for z [n, d] (n ≥ 2); `prior` [m, d] are the prior draws (default:
    n fresh draws from the global RNG)."""
    if len(z) < 2:
        return z.sum() * 0.0  # no pair of codes: no estimate, and no gradient
    y = torch.randn_like(z) if prior is None else prior.to(z)

    def within(x: Tensor) -> Tensor:
        k = imq_kernel(x, x)
        return (k.sum() - k.diagonal().sum()) / (len(x) * (len(x) - 1))

    return within(z) + within(y) - 2.0 * imq_kernel(z, y).mean()
