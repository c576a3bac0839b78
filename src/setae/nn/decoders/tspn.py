"""The Transformer Set Prediction Network decoder."""

from __future__ import annotations

import torch
from torch import nn

from setae.nn.attention import set_attention_stack
from setae.nn.decoders.base import InitialSet, SampledSetDecoder
from setae.nn.size_heads import SIZE_HEADS


class TSPNDecoder(SampledSetDecoder):
    """Transformer Set Prediction Network (Kosiorek et al., 2020).

    1. k ~ p(k | z) (size head; the true size during training),
    2. an initial set of k elements e_i ~ N(μ, diag σ²) i.i.d., μ and σ learned (reparameterised),
    3. h_i = W_e e_i, transformed by SAB/ISAB layers (permutation-equivariant), each layer l seeing
       h_i + W_l z, so every layer is conditioned on the code,
    4. points x_i = W_o LN(h_i).

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
    ):
        super().__init__()
        self.size_head = SIZE_HEADS[size_head](latent_dim, max_size)
        self.initial = InitialSet(init_dim, dim, max_size)
        self.layers = set_attention_stack(dim, num_heads, num_layers, num_inducing)
        self.embed_z = nn.ModuleList(nn.Linear(latent_dim, dim) for _ in self.layers)
        self.norm = nn.LayerNorm(dim)
        self.to_points = nn.Linear(dim, out_dim)

    def transform(self, h: torch.Tensor, z: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """Embedded initial set h [B, n, dim], z [B, latent], padding_mask [B, n] -> points [B, n, out_dim].

        Permutation-equivariant in the initial elements.
        """
        for layer, embed_z in zip(self.layers, self.embed_z, strict=True):
            h = layer(h + embed_z(z)[:, None, :], padding_mask)
        return self.to_points(self.norm(h)).masked_fill(padding_mask[..., None], 0.0)
