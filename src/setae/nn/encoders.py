"""Permutation-invariant set encoders: a padded set batch [B, n, d] -> one vector per set [B, out_dim].

Both follow the Deep Sets recipe f(X) = ρ(pool_{x∈X} φ(x)) (Zaheer et al., 2017): `DeepSets` uses a
per-element MLP φ and a masked sum / mean / max; `SetTransformer` lets elements interact through SAB/ISAB
layers first and pools with PMA. Padding (True in `padding_mask`) never changes the output.
"""

from __future__ import annotations

import torch
from torch import nn

from setae.nn.attention import PMA, set_attention_stack

POOLINGS = ("sum", "mean", "max")


def masked_pool(x: torch.Tensor, padding_mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """Pool [B, n, dim] over n ignoring padding -> [B, dim]. An empty set pools to zeros for every `how`."""
    if padding_mask is None:
        padding_mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
    valid = ~padding_mask[..., None]
    if x.shape[1] == 0:
        return x.new_zeros(x.shape[0], x.shape[2])
    if how == "sum":
        return x.masked_fill(~valid, 0.0).sum(1)
    if how == "mean":
        count = valid.sum(1).clamp(min=1)
        return x.masked_fill(~valid, 0.0).sum(1) / count
    if how == "max":
        pooled = x.masked_fill(~valid, float("-inf")).amax(1)
        return torch.where(valid.any(1), pooled, torch.zeros_like(pooled))
    raise ValueError(f"unknown pooling {how!r}; expected sum, mean or max")


def mlp(sizes: list[int], final_activation: bool = False) -> nn.Sequential:
    """Linear layers of the given widths with GELU between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class DeepSets(nn.Module):
    """ρ(pool φ(x)): φ an MLP [d -> dim], pool ∈ {sum, mean, max}, ρ an MLP [dim -> dim]. Output [B, dim]."""

    def __init__(self, in_dim: int, dim: int = 128, num_layers: int = 3, pool: str = "max"):
        super().__init__()
        if pool not in POOLINGS:
            raise ValueError(f"unknown pooling {pool!r}; expected one of {POOLINGS}")
        self.pool = pool
        self.out_dim = dim
        self.phi = mlp([in_dim] + [dim] * num_layers, final_activation=True)
        self.rho = mlp([dim, dim, dim])

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, n, in_dim], padding_mask [B, n] -> [B, dim]."""
        return self.rho(masked_pool(self.phi(x), padding_mask, self.pool))


class SetTransformer(nn.Module):
    """Linear embedding, `num_layers` SAB (num_inducing=0) or ISAB blocks, then PMA with `num_seeds` seeds.

    Output [B, num_seeds·dim].
    """

    def __init__(
        self,
        in_dim: int,
        dim: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        num_inducing: int = 16,
        num_seeds: int = 1,
    ):
        super().__init__()
        self.out_dim = dim * num_seeds
        self.embed = nn.Linear(in_dim, dim)
        self.layers = set_attention_stack(dim, num_heads, num_layers, num_inducing)
        self.pool = PMA(dim, num_heads, num_seeds)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, n, in_dim], padding_mask [B, n] -> [B, num_seeds·dim]."""
        h = self.embed(x)
        for layer in self.layers:
            h = layer(h, padding_mask)
        return self.norm(self.pool(h, padding_mask)).flatten(1)
