"""Vector -> set decoders. A latent code z [B, latent] becomes a padded set [B, n, d] whose size is predicted.

Every decoder has the same interface:

    forward(z, sizes, generator=None) -> points [B, max(sizes), d], padding_mask [B, max(sizes)]
    size_nll(z, sizes)  -> [B] negative log-likelihood of the true sizes, in nats
    predict_sizes(z)    -> [B] long, the decoder's own size estimate (inference)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from setae.nn.attention import set_attention_stack
from setae.nn.encoders import mlp


def padding_mask_from_sizes(sizes: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """sizes [B] -> padding_mask [B, n] with True at positions >= size (n defaults to max size)."""
    n = int(sizes.max()) if n is None else n
    return torch.arange(n, device=sizes.device)[None, :] >= sizes[:, None]


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


class MLPDecoder(nn.Module):
    """The fixed-size baseline: an MLP emits `max_size` ordered slots [max_size, d] and a presence logit each.

    Training presents the first n slots as the set (presence target 1 for slots < n, 0 after); the size
    estimate is the number of slots with presence probability > 1/2. size_nll is the summed Bernoulli NLL of
    the presence pattern, which is the likelihood of k under this model.
    """

    def __init__(self, latent_dim: int, out_dim: int, max_size: int, hidden: int = 512, num_layers: int = 3):
        super().__init__()
        self.max_size, self.out_dim = max_size, out_dim
        self.net = mlp([latent_dim] + [hidden] * num_layers + [max_size * (out_dim + 1)])

    def _slots(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(z).view(z.shape[0], self.max_size, self.out_dim + 1)
        return out[..., : self.out_dim], out[..., self.out_dim]

    def forward(
        self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first max(sizes) slots; deterministic, so `generator` is unused."""
        points, _ = self._slots(z)
        mask = padding_mask_from_sizes(sizes)
        points = points[:, : mask.shape[1]].masked_fill(mask[..., None], 0.0)
        return points, mask

    def size_nll(self, z: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        _, presence = self._slots(z)
        target = (~padding_mask_from_sizes(sizes, self.max_size)).float()
        return F.binary_cross_entropy_with_logits(presence, target, reduction="none").sum(1)

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        _, presence = self._slots(z)
        return (presence > 0).sum(1)


class TSPNDecoder(nn.Module):
    """Transformer Set Prediction Network (Kosiorek et al., 2020).

    1. k ~ p(k | z) (categorical head; the true size during training),
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
    ):
        super().__init__()
        self.size_head = CategoricalSizeHead(latent_dim, max_size)
        self.init_mean = nn.Parameter(torch.zeros(init_dim))
        self.init_log_std = nn.Parameter(torch.zeros(init_dim))
        self.embed_init = nn.Linear(init_dim, dim)
        self.layers = set_attention_stack(dim, num_heads, num_layers, num_inducing)
        self.embed_z = nn.ModuleList(nn.Linear(latent_dim, dim) for _ in self.layers)
        self.norm = nn.LayerNorm(dim)
        self.to_points = nn.Linear(dim, out_dim)

    def initial_set(self, sizes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """sizes [B] -> i.i.d. samples [B, max(sizes), init_dim] from the learned initial distribution.

        With a `generator` (inference), a full [B, max_size] pool is drawn and cut, so element j of set i is
        the same draw whatever the sizes in the batch: nearby codes decode to nearby sets, and a set that
        grows by one point keeps the others."""
        n = int(sizes.max()) if sizes.numel() else 0
        drawn = n if generator is None else self.size_head.max_size
        eps = torch.randn(
            sizes.shape[0], drawn, self.init_mean.shape[0], generator=generator, device=self.init_mean.device
        )[:, :n]
        return self.init_mean + self.init_log_std.exp() * eps

    def transform(self, initial: torch.Tensor, z: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """initial [B, n, init_dim], z [B, latent], padding_mask [B, n] -> points [B, n, out_dim].

        Permutation-equivariant in the initial elements.
        """
        h = self.embed_init(initial)
        for layer, embed_z in zip(self.layers, self.embed_z, strict=True):
            h = layer(h + embed_z(z)[:, None, :], padding_mask)
        return self.to_points(self.norm(h)).masked_fill(padding_mask[..., None], 0.0)

    def forward(
        self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = padding_mask_from_sizes(sizes)
        return self.transform(self.initial_set(sizes, generator), z, mask), mask

    def size_nll(self, z: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        return self.size_head.nll(z, sizes)

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        return self.size_head.predict(z)
