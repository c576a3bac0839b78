"""What every set decoder shares: the output type, masks from sizes, the presence likelihood, the i.i.d.
initial set, and the forward pass of decoders that transform a sampled initial set."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class DecodedSet(NamedTuple):
    """points [B, n, d] (zeros at padding), padding_mask [B, n] (True = padding), size_nll [B] = −log p(n | z)
    in nats, `steps`: earlier estimates of the set (same shapes) for iterative decoders, each to be supervised
    too, and `auxiliary_nll` [B] (or None): a training-only term in nats that supervises the decoder's
    internals (DSPN's presence), not part of −log p(X | z)."""

    points: torch.Tensor
    padding_mask: torch.Tensor
    size_nll: torch.Tensor
    steps: tuple[torch.Tensor, ...] = ()
    auxiliary_nll: torch.Tensor | None = None


def padding_mask_from_sizes(sizes: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """sizes [B] -> padding_mask [B, n] with True at positions >= size (n defaults to max size)."""
    n = (int(sizes.max()) if sizes.numel() else 0) if n is None else n
    return torch.arange(n, device=sizes.device)[None, :] >= sizes[:, None]


def first_rows(points: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first sizes[i] rows of points [B, N, d] as a padded batch [B, max(sizes), d] and its mask."""
    mask = padding_mask_from_sizes(sizes)
    return points[:, : mask.shape[1]].masked_fill(mask[..., None], 0.0), mask


def presence_nll(presence_logits: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Σ_j BCE(presence_j, [j < size]) [B]: −log of the probability that exactly the first `size` slots are
    present, for presence logits [B, N] ordered so that present slots come first."""
    target = (~padding_mask_from_sizes(sizes, presence_logits.shape[1])).to(presence_logits.dtype)
    return F.binary_cross_entropy_with_logits(presence_logits, target, reduction="none").sum(1)


class InitialSet(nn.Module):
    """The i.i.d. initial elements of TSPN and the slot decoder: e ~ N(μ, diag σ²) in R^init_dim, embedded
    linearly to [.., dim]; μ, σ and the embedding are learned (reparameterised draws)."""

    def __init__(self, init_dim: int, dim: int, max_size: int):
        super().__init__()
        self.max_size = max_size
        self.mean = nn.Parameter(torch.zeros(init_dim))
        self.log_std = nn.Parameter(torch.zeros(init_dim))
        self.embed = nn.Linear(init_dim, dim)

    def sample(self, sizes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """sizes [B] -> draws [B, max(sizes), init_dim].

        With a `generator` (inference), a full [B, max_size] pool is drawn and cut, so element j of set i is
        the same draw whatever the sizes in the batch: nearby codes decode to nearby sets, and a set that
        grows by one point keeps the others."""
        n = int(sizes.max()) if sizes.numel() else 0
        drawn = n if generator is None else self.max_size
        eps = torch.randn(
            sizes.shape[0], drawn, self.mean.shape[0], generator=generator, device=self.mean.device
        )[:, :n]
        return self.mean + self.log_std.exp() * eps

    def forward(self, sizes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """sizes [B] -> embedded draws [B, max(sizes), dim]."""
        return self.embed(self.sample(sizes, generator))


class SampledSetDecoder(nn.Module):
    """Shared by TSPN and the slot decoder: k ~ p(k | z) from `size_head` (the true size in training), k
    initial elements from `initial`, then the subclass's equivariant `transform(initial, z, padding_mask)`;
    the size head reads `size_features(z)` (z itself unless the subclass pools it)."""

    def size_features(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def forward(self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None):
        mask = padding_mask_from_sizes(sizes)
        points = self.transform(self.initial(sizes, generator), z, mask)
        return DecodedSet(points, mask, self.size_head.nll(self.size_features(z), sizes))

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        return self.size_head.predict(self.size_features(z))
