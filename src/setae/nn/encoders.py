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


def masked_pool(
    x: torch.Tensor, padding_mask: torch.Tensor | None, how: str, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Pool [B, n, dim] over n ignoring padding -> [B, dim]. An empty set pools to zeros for every `how`.

    `weights` [B, n] (sum pooling only) scales each element: Σ_i w_i x_i, for sets with soft membership."""
    if padding_mask is None:
        padding_mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
    valid = ~padding_mask[..., None]
    if weights is not None and how != "sum":
        raise ValueError("weights are only defined for sum pooling")
    if x.shape[1] == 0:
        return x.new_zeros(x.shape[0], x.shape[2])
    if how == "sum":
        if weights is not None:
            x = x * weights[..., None]
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

    def forward(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B, n, in_dim], padding_mask [B, n], element weights [B, n] (sum pooling only) -> [B, dim]."""
        return self.rho(masked_pool(self.phi(x), padding_mask, self.pool, weights))


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
        """x [B, n, in_dim], padding_mask [B, n] -> [B, num_seeds·dim]; padding rows may hold anything
        (NaN included): they are zeroed first, since attention's zero weight times NaN is NaN."""
        h = self.embed(x if padding_mask is None else x.masked_fill(padding_mask[..., None], 0.0))
        for layer in self.layers:
            h = layer(h, padding_mask)
        return self.norm(self.pool(h, padding_mask)).flatten(1)


ORDERS = ("raster", "input")


def raster_order(x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """Indices [B, n] that sort each set lexicographically with the *last* coordinate most significant
    (for MNIST's (x, y) points: row by row, left to right), padding last."""
    order = torch.arange(x.shape[1], device=x.device).expand(x.shape[:2])
    keys = [x[..., k] for k in range(x.shape[-1])] + [padding_mask.to(x.dtype)]
    for key in keys:  # stable sorts from the least to the most significant key
        order = order.gather(1, key.gather(1, order).argsort(dim=1, stable=True))
    return order


class RNNEncoder(nn.Module):
    """A GRU over the points in a fixed order, the order-dependent baseline: [B, n, in_dim] -> [B, dim].

    order="raster" sorts each set first (`raster_order`), which makes the encoder invariant to the input
    order up to ties; order="input" reads the points as given (for sequences, where order is data).
    shuffle=True reads a random order of each set at training time (an augmentation that asks the GRU to
    become order-invariant by itself). The code is the last layer's final state (both directions'
    concatenated when bidirectional, then projected back to dim); an empty set gives zeros.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int = 128,
        num_layers: int = 1,
        order: str = "raster",
        shuffle: bool = False,
        bidirectional: bool = False,
    ):
        super().__init__()
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; expected one of {ORDERS}")
        self.order, self.shuffle, self.out_dim = order, shuffle, dim
        self.embed = nn.Linear(in_dim, dim)
        self.gru = nn.GRU(dim, dim, num_layers, batch_first=True, bidirectional=bidirectional)
        self.out = nn.Linear(2 * dim, dim) if bidirectional else nn.Identity()

    def _reorder(self, x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        if self.training and self.shuffle:
            keys = torch.rand(x.shape[:2], device=x.device).masked_fill(padding_mask, 2.0)
            order = keys.argsort(dim=1)
        elif self.order == "raster":
            order = raster_order(x, padding_mask)
        else:  # input order, with any padding moved last
            order = padding_mask.to(torch.uint8).argsort(dim=1, stable=True)
        return x.gather(1, order[..., None].expand_as(x))

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, n, in_dim], padding_mask [B, n] -> [B, dim]."""
        if padding_mask is None:
            padding_mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        lengths = (~padding_mask).sum(1)
        if x.shape[1] == 0:
            return x.new_zeros(x.shape[0], self.out_dim)
        h = self.embed(self._reorder(x, padding_mask))
        packed = nn.utils.rnn.pack_padded_sequence(
            h, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        _, state = self.gru(packed)  # [layers · directions, B, dim]
        last = state[-2:].transpose(0, 1).flatten(1) if self.gru.bidirectional else state[-1]
        return self.out(last).masked_fill((lengths == 0)[:, None], 0.0)
