"""A point-wise refinement of decoded sets, fitted after training: every point moves along a field Δ(x, z).

A decoder trained with a one-to-one loss regresses each point to the mean of the positions it could be
matched to, so its points sit between the data's points (on MNIST, uniformly spread over each pixel's cell
rather than at its centre). The refiner

    x' = x + Δ(x, z),   Δ(x, z) = D GELU(C GELU(A γ(x) + a(z)) ⊙ (1 + c(z)))

reads the point through Fourier features γ(x) = [x, sin(2π x / λ_k), cos(2π x / λ_k)], λ_k = s · 2^k for
k = 0..K−1, with s the data's point spacing, so Δ can vary within one point's neighbourhood; the code
enters as a bias and a gain of the hidden layer (FiLM). Fitted with the Chamfer loss, whose output-to-target
term moves each point towards its nearest data point, on the frozen model's decoded training sets, it
learns where the data's points can be (on MNIST: the pixel centres on the strokes). The same Δ for every
point of a set: permutation-equivariant. Until fitted (`fitted` is 0) it is not applied.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class PointRefiner(nn.Module):
    def __init__(self, latent_dim: int, point_dim: int, hidden: int, spacing: float, frequencies: int = 6):
        super().__init__()
        self.register_buffer("angular", 2 * math.pi / (spacing * 2.0 ** torch.arange(frequencies)))  # [K]
        self.features = nn.Linear(point_dim * (1 + 2 * frequencies), hidden)
        self.hidden = nn.Linear(hidden, hidden)
        self.film = nn.Linear(latent_dim, 2 * hidden)
        self.displacement = nn.Linear(hidden, point_dim)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.uint8))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """A fresh initialisation from the global RNG, Δ = 0, not fitted."""
        for layer in (self.features, self.hidden, self.film):
            layer.reset_parameters()
        nn.init.zeros_(self.displacement.weight)
        nn.init.zeros_(self.displacement.bias)
        self.fitted.zero_()

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def forward(self, points: Tensor, z: Tensor, padding_mask: Tensor) -> Tensor:
        """points [B, n, d], z [B, latent], padding_mask [B, n] (True = padding) -> x + Δ(x, z) [B, n, d],
        zeros at padding."""
        padding = padding_mask[..., None]
        points = points.masked_fill(padding, 0.0)
        phase = points[..., None] * self.angular  # [B, n, d, K]
        gamma = torch.cat([points, phase.sin().flatten(2), phase.cos().flatten(2)], dim=-1)
        bias, gain = self.film(z)[:, None].chunk(2, dim=-1)  # [B, 1, hidden] each
        h = F.gelu(self.features(gamma) + bias)
        h = F.gelu(self.hidden(h) * (1 + gain))
        return (points + self.displacement(h)).masked_fill(padding, 0.0)
