"""Size models p(k | z): distributions over the number of elements k = 0..max_size of the decoded set.

Each head maps a code z [B, latent] to a distribution and offers

    nll(z, sizes)  -> [B]  −log p(k = sizes | z), in nats
    predict(z)     -> [B]  long, the most likely size (the mode)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from setae.nn.encoders import mlp


class CategoricalSizeHead(nn.Module):
    """p(k | z) = softmax_k(a_k(z) − (k − μ(z))² / (2 s(z)²)) over k = 0..max_size.

    A categorical distribution whose logits are free (a_k) plus a discretised-Gaussian bump at a regressed
    location μ(z) ∈ [0, max_size] with width s(z): the free part can express any distribution, the bump
    makes "the size is about μ" easy to learn from a code that varies smoothly with the size.
    """

    def __init__(self, latent_dim: int, max_size: int, hidden: int = 256):
        super().__init__()
        self.max_size = max_size
        self.net = mlp([latent_dim, hidden, max_size + 3])
        self.register_buffer("support", torch.arange(max_size + 1, dtype=torch.float32), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, latent] -> logits [B, max_size + 1]."""
        out = self.net(z)
        free, location, log_width = out[:, :-2], out[:, -2:-1], out[:, -1:]
        mean = self.max_size * torch.sigmoid(location)
        width = 0.5 + (max(self.max_size, 1) / 8) * log_width.clamp(max=5.0).exp()  # starts broad
        return free - 0.5 * ((self.support - mean) / width) ** 2

    def nll(self, z: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(z), sizes.clamp(max=self.max_size), reduction="none")

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        return self(z).argmax(-1)


class PoissonSizeHead(nn.Module):
    """p(k | z) = λ^k e^{−λ} / k!, λ = softplus(MLP(z)) + 1e-3: one parameter, so it cannot be sharper than
    a Poisson (variance = mean), but it extrapolates to sizes never seen. The prediction is the median,
    ⌊λ + 1/3 − 0.02/λ⌋ (Choi, 1994), which minimises the expected absolute error, capped at max_size."""

    def __init__(self, latent_dim: int, max_size: int, hidden: int = 256):
        super().__init__()
        self.max_size = max_size
        self.net = mlp([latent_dim, hidden, 1])
        # Start near a typical size rather than at softplus(0) ≈ 0.7 points.
        nn.init.constant_(self.net[-1].bias, max_size / 4)

    def rate(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, latent] -> λ [B]."""
        return F.softplus(self.net(z)[:, 0]) + 1e-3

    def nll(self, z: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        rate, k = self.rate(z), sizes.to(z.dtype)
        return rate - k * rate.log() + torch.lgamma(k + 1)

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        rate = self.rate(z)
        return (rate + 1 / 3 - 0.02 / rate).floor().long().clamp(0, self.max_size)  # ≥ 0 for λ < 0.046


SIZE_HEADS = {"categorical": CategoricalSizeHead, "poisson": PoissonSizeHead}
