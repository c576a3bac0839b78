"""The slot-attention decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from setae.nn.decoders.base import InitialSet, SampledSetDecoder
from setae.nn.encoders import mlp
from setae.nn.size_heads import SIZE_HEADS


class SlotDecoder(SampledSetDecoder):
    """Slot-attention-style decoder (after Locatello et al., 2020), slots = the output elements.

    z becomes m tokens u = reshape(W z) [m, dim]. k slots start as TSPN's i.i.d. initial elements and are
    refined `num_iters` times with shared weights:

        A_ij = softmax_i(q(s_i) · k(u_j) / √dim)        normalised over the *slots* i (queries), so slots
                                                         compete for each token
        U_i  = Σ_j A_ij v(u_j) / Σ_j A_ij                a weighted mean of the tokens' values
        s_i  ← GRU(U_i, s_i);  s_i ← s_i + MLP(LN(s_i))

    and x_i = W_o LN(s_i). Padded slots take no part in the softmax. Every step is permutation-equivariant
    in the slots. The softmax over queries is not the keys-normalised attention of MultiheadAttentionBlock,
    hence its own small module.
    """

    def __init__(
        self,
        latent_dim: int,
        out_dim: int,
        max_size: int,
        dim: int = 64,
        num_tokens: int = 16,
        num_iters: int = 3,
        init_dim: int = 16,
        size_head: str = "categorical",
    ):
        super().__init__()
        self.dim, self.num_tokens, self.num_iters = dim, num_tokens, num_iters
        self.size_head = SIZE_HEADS[size_head](latent_dim, max_size)
        self.initial = InitialSet(init_dim, dim, max_size)
        self.to_tokens = nn.Linear(latent_dim, num_tokens * dim)
        self.norm_tokens = nn.LayerNorm(dim)
        self.norm_slots = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = mlp([dim, 2 * dim, dim])
        self.norm_out = nn.LayerNorm(dim)
        self.to_points = nn.Linear(dim, out_dim)

    def attention(self, slots: torch.Tensor, keys: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """slots [B, n, dim], token keys [B, m, dim], padding_mask [B, n] -> A [B, n, m], each column a
        distribution over the real slots (zeros at padded slots; all zeros for an empty set)."""
        logits = torch.einsum("bnd,bmd->bnm", self.to_q(self.norm_slots(slots)), keys) / math.sqrt(self.dim)
        logits = logits.masked_fill(padding_mask[..., None], torch.finfo(logits.dtype).min)
        return logits.softmax(dim=1).masked_fill(padding_mask[..., None], 0.0)

    def transform(self, slots: torch.Tensor, z: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """Initial slots [B, n, dim], z [B, latent], padding_mask [B, n] -> points [B, n, out_dim]."""
        b, n, dim = slots.shape
        tokens = self.norm_tokens(self.to_tokens(z).view(b, self.num_tokens, dim))
        keys, values = self.to_kv(tokens).chunk(2, dim=-1)
        for _ in range(self.num_iters):
            a = self.attention(slots, keys, padding_mask)
            updates = (a @ values) / (a.sum(-1, keepdim=True) + 1e-8)
            slots = self.gru(updates.reshape(-1, dim), slots.reshape(-1, dim)).view(b, n, dim)
            slots = slots + self.ff(self.norm_ff(slots))
        return self.to_points(self.norm_out(slots)).masked_fill(padding_mask[..., None], 0.0)
