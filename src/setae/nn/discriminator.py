"""The set discriminator of the adversarial set generator (setae.models.gan): a padded set batch
[B, n, d] -> one real-valued score per set [B].

    D(X) = w · GELU(W [e(X), n/N, log(1+n)/log(1+N)] + b) + c,   e(X) = a permutation-invariant encoder

e is one of setae.nn.encoders (a masked Set Transformer by default); as in the autoencoder's encoder the
set size enters directly, since attention pooling is a weighted mean and cannot count. Rows marked True in
`padding_mask` are zeroed before the encoder reads them, so the score depends on the real rows only, even
when padding holds NaN or inf. With `spectral=True` every linear map is spectrally normalised
(torch.nn.utils.parametrizations.spectral_norm; Miyato et al., 2018).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class SetDiscriminator(nn.Module):
    """D: `body` (an encoder [B, n, d] -> [B, body.out_dim]) and a one-hidden-layer head on its output
    plus the size features; `max_size` is N."""

    def __init__(self, body: nn.Module, max_size: int, hidden: int = 128, spectral: bool = False):
        super().__init__()
        self.max_size = max_size
        self.body = body
        self.head = nn.Sequential(nn.Linear(body.out_dim + 2, hidden), nn.GELU(), nn.Linear(hidden, 1))
        if spectral:
            for module in list(self.modules()):
                if isinstance(module, nn.Linear):
                    spectral_norm(module)

    def forward(self, points: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """points [B, n, d], padding_mask [B, n] (True = padding) -> scores [B]."""
        points = points.masked_fill(padding_mask[..., None], 0.0)
        n = (~padding_mask).sum(1).to(points.dtype)[:, None]
        size = torch.cat([n / self.max_size, torch.log1p(n) / math.log1p(self.max_size)], 1)
        return self.head(torch.cat([self.body(points, padding_mask), size], 1))[:, 0]
