"""The Transformer Set Prediction Network decoder, conditioned on one code vector or on a latent set."""

from __future__ import annotations

import torch
from torch import nn

from setae.nn.attention import MultiheadAttentionBlock, set_attention_stack
from setae.nn.decoders.base import InitialSet, SampledSetDecoder
from setae.nn.encoders import mlp
from setae.nn.size_heads import SIZE_HEADS


class TSPNDecoder(SampledSetDecoder):
    """Transformer Set Prediction Network (Kosiorek et al., 2020).

    1. k ~ p(k | z) (size head; the true size during training),
    2. an initial set of k elements e_i ~ N(μ, diag σ²) i.i.d., μ and σ learned (reparameterised),
    3. h_i = W_e e_i, transformed by SAB/ISAB layers (permutation-equivariant), each layer l seeing
       h_i + W_l z, so every layer is conditioned on the code,
    4. points x_i = W_o LN(h_i).

    With `latent_set` = K > 0 the code z [B, K·d_k] is read as a set of K vectors z_1..z_K ∈ R^{d_k}
    (Set Transformer's set-to-set route through a smaller set): tokens t_j = W_t z_j [B, K, dim], and each
    layer first cross-attends, h ← MAB_l(h, t), then applies its SAB/ISAB; the size head reads the pooled
    (1/K) Σ_j φ(z_j). Nothing tells the tokens apart but their values, so the decoded set is invariant to
    the order of z_1..z_K.

    Because the initial elements are i.i.d., the decoded set is exchangeable; `generator` fixes the draw.
    """

    def __init__(
        self,
        latent_dim: int,
        out_dim: int,
        max_size: int,
        dim: int = 128,
        num_heads: int = 4,
        num_layers: int = 3,
        num_inducing: int = 16,
        init_dim: int = 16,
        size_head: str = "categorical",
        latent_set: int = 0,
    ):
        super().__init__()
        self.latent_set = latent_set
        self.initial = InitialSet(init_dim, dim, max_size)
        self.layers = set_attention_stack(dim, num_heads, num_layers, num_inducing)
        if latent_set:
            element = latent_dim // latent_set
            self.embed_tokens = nn.Linear(element, dim)
            self.cross = nn.ModuleList(MultiheadAttentionBlock(dim, num_heads) for _ in self.layers)
            self.pool_latent = mlp([element, dim, dim])
            self.size_head = SIZE_HEADS[size_head](dim, max_size)
        else:
            self.embed_z = nn.ModuleList(nn.Linear(latent_dim, dim) for _ in self.layers)
            self.size_head = SIZE_HEADS[size_head](latent_dim, max_size)
        self.norm = nn.LayerNorm(dim)
        self.to_points = nn.Linear(dim, out_dim)

    def latent_elements(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, K·d_k] -> the latent set [B, K, d_k] (latent_set > 0)."""
        return z.view(z.shape[0], self.latent_set, -1)

    def size_features(self, z: torch.Tensor) -> torch.Tensor:
        """What the size head reads: z, or for a latent set the mean of φ(z_j) over its K elements."""
        return self.pool_latent(self.latent_elements(z)).mean(1) if self.latent_set else z

    def transform(self, h: torch.Tensor, z: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """Embedded initial set h [B, n, dim], z [B, latent], padding_mask [B, n] -> points [B, n, out_dim].

        Permutation-equivariant in the initial elements.
        """
        if self.latent_set:
            tokens = self.embed_tokens(self.latent_elements(z))
            for layer, cross in zip(self.layers, self.cross, strict=True):
                h = layer(cross(h, tokens), padding_mask)
        else:
            for layer, embed_z in zip(self.layers, self.embed_z, strict=True):
                h = layer(h + embed_z(z)[:, None, :], padding_mask)
        return self.to_points(self.norm(h)).masked_fill(padding_mask[..., None], 0.0)
