"""Masked multi-head attention and the Set Transformer blocks built from it (Lee et al., 2019).

One block, `MultiheadAttentionBlock`, serves every attention module:

    MAB(X, Y) = H + FF(LN(H)),   H = X + Attention(LN(X), LN(Y), LN(Y))

(pre-norm variant). From it:

    SAB(X)  = MAB(X, X)                          self-attention, O(n²), permutation-equivariant
    ISAB(X) = MAB(X, MAB(I, X)), I ∈ R^{m×d}      m learned inducing points, O(n·m), equivariant
    PMA(X)  = MAB(S, FF(X)),     S ∈ R^{k×d}      k learned seeds attend to the set: invariant pooling

Keys marked True in `padding_mask [batch, n]` get zero attention weight, so padding never changes an output
row of a real element. Output rows at padded query positions are meaningless and set to zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def feed_forward(dim: int, hidden: int) -> nn.Sequential:
    """Position-wise two-layer MLP [.., dim] -> [.., dim]."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class MultiheadAttentionBlock(nn.Module):
    """MAB(X, Y): queries X [batch, n, dim] attend to keys/values Y [batch, m, dim] -> [batch, n, dim]."""

    def __init__(self, dim: int, num_heads: int, ff_mult: int = 2):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = feed_forward(dim, ff_mult * dim)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, n, dim], y [B, m, dim], key_padding_mask [B, m] (True = padding) -> [B, n, dim].

        A query whose keys are all padding (an empty set) receives no attention update.
        """
        b, n, dim = x.shape
        m = y.shape[1]
        h = self.num_heads
        q = self.to_q(self.norm_q(x)).view(b, n, h, dim // h).transpose(1, 2)
        k, v = self.to_kv(self.norm_kv(y)).view(b, m, 2, h, dim // h).permute(2, 0, 3, 1, 4)
        attn_mask = None
        empty = None
        if key_padding_mask is not None:
            empty = key_padding_mask.all(dim=1)
            # All-padding keys would give a softmax over nothing (NaN): attend anywhere, then drop the update.
            keep = ~key_padding_mask | empty[:, None]
            attn_mask = keep[:, None, None, :]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        a = self.to_out(a.transpose(1, 2).reshape(b, n, dim))
        if empty is not None:
            a = a.masked_fill(empty[:, None, None], 0.0)
        x = x + a
        return x + self.ff(self.norm_ff(x))


def _zero_padding(x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
    return x if padding_mask is None else x.masked_fill(padding_mask[..., None], 0.0)


class SAB(nn.Module):
    """Set attention block: [B, n, dim] -> [B, n, dim], permutation-equivariant."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.mab = MultiheadAttentionBlock(dim, num_heads)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return _zero_padding(self.mab(x, x, padding_mask), padding_mask)


class ISAB(nn.Module):
    """Induced set attention block with `num_inducing` learned points: [B, n, dim] -> [B, n, dim], O(n·m)."""

    def __init__(self, dim: int, num_heads: int, num_inducing: int):
        super().__init__()
        self.inducing = nn.Parameter(torch.randn(num_inducing, dim) / dim**0.5)
        self.mab_in = MultiheadAttentionBlock(dim, num_heads)
        self.mab_out = MultiheadAttentionBlock(dim, num_heads)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        inducing = self.inducing.expand(x.shape[0], -1, -1)
        h = self.mab_in(inducing, x, padding_mask)
        return _zero_padding(self.mab_out(x, h), padding_mask)


class PMA(nn.Module):
    """Pooling by multi-head attention: [B, n, dim] -> [B, num_seeds, dim], permutation-invariant."""

    def __init__(self, dim: int, num_heads: int, num_seeds: int = 1):
        super().__init__()
        self.seeds = nn.Parameter(torch.randn(num_seeds, dim) / dim**0.5)
        self.ff = feed_forward(dim, 2 * dim)
        self.mab = MultiheadAttentionBlock(dim, num_heads)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mab(self.seeds.expand(x.shape[0], -1, -1), self.ff(x), padding_mask)


def set_attention_stack(dim: int, num_heads: int, num_layers: int, num_inducing: int) -> nn.ModuleList:
    """`num_layers` ISABs with `num_inducing` points, or SABs when num_inducing is 0."""
    make = (
        (lambda: SAB(dim, num_heads)) if num_inducing == 0 else (lambda: ISAB(dim, num_heads, num_inducing))
    )
    return nn.ModuleList(make() for _ in range(num_layers))
