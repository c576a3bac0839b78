"""The fixed-slot MLP decoder."""

from __future__ import annotations

import torch
from torch import nn

from setae.nn.decoders.base import DecodedSet, first_rows, presence_nll
from setae.nn.encoders import mlp


class MLPDecoder(nn.Module):
    """The fixed-size baseline: an MLP emits `max_size` ordered slots [max_size, d] and a presence logit each.

    Training presents the first n slots as the set (presence target 1 for slots < n, 0 after); the size
    estimate is the number of slots with presence probability > 1/2. size_nll is the summed Bernoulli NLL of
    the presence pattern: −log p(k) for the size model "the first k slots are present, the rest not".
    """

    def __init__(self, latent_dim: int, out_dim: int, max_size: int, hidden: int = 512, num_layers: int = 3):
        super().__init__()
        self.max_size, self.out_dim = max_size, out_dim
        self.net = mlp([latent_dim] + [hidden] * num_layers + [max_size * (out_dim + 1)])

    def slots(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, latent] -> slots [B, max_size, d], presence logits [B, max_size]."""
        out = self.net(z).view(z.shape[0], self.max_size, self.out_dim + 1)
        return out[..., : self.out_dim], out[..., self.out_dim]

    def forward(self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None):
        """Deterministic, so `generator` is unused."""
        slots, presence = self.slots(z)
        return DecodedSet(*first_rows(slots, sizes), presence_nll(presence, sizes))

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        return (self.slots(z)[1] > 0).sum(1)
