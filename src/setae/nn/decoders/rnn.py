"""The recurrent decoder: one point per step and a stop signal."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from setae.nn.decoders.base import DecodedSet, first_rows, padding_mask_from_sizes


class RNNDecoder(nn.Module):
    """A GRU that emits one point per step and a stop logit before each point:

        h_0 = tanh(W_h z),  h_t = GRU(W_x z + W_t τ_t, h_{t−1}),  x_t = W_o h_t,  s_t = σ(w_s · h_t)
        (t = 1, 2, ...;  τ_t = [t / max_size, log(1 + t) / log(1 + max_size)], the position)

    s_t is the probability that the set ends before point t, so p(k | z) = Π_{t≤k} (1 − s_t) · s_{k+1}
    (s_{max_size+1} = 1): a proper distribution over k = 0..max_size, and size_nll = −log p(k | z). The size
    estimate is the median of p(k | z); the stop bias starts at a constant hazard of 2 / max_size (a
    geometric size distribution of mean ~max_size / 2). The input is z and the position at every step, so the
    hazard can depend on how far the set has come without the GRU having to count; the state carries what has
    been emitted. (Feeding the previous point back
    would need an order of the target points for teacher forcing, which a set loss does not give.) The
    order of the emitted points is arbitrary: the set loss compares them as a set.
    """

    def __init__(self, latent_dim: int, out_dim: int, max_size: int, dim: int = 256, num_layers: int = 1):
        super().__init__()
        self.max_size = max_size
        self.init_state = nn.Linear(latent_dim, num_layers * dim)
        self.embed_z = nn.Linear(latent_dim, dim)
        self.embed_step = nn.Linear(2, dim)
        self.gru = nn.GRU(dim, dim, num_layers=num_layers, batch_first=True)
        self.to_point = nn.Linear(dim, out_dim)
        self.to_stop = nn.Linear(dim, 1)
        nn.init.constant_(self.to_stop.bias, math.log(2 / (max_size - 2)) if max_size > 2 else 0.0)

    def run(self, z: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, latent] -> points [B, steps, d] and stop logits [B, steps + 1] (the last one for steps + 1,
        +inf when that exceeds max_size)."""
        b, layers, dim = z.shape[0], self.gru.num_layers, self.gru.hidden_size
        h0 = torch.tanh(self.init_state(z)).view(b, layers, dim).transpose(0, 1).contiguous()
        run_steps = min(steps + 1, self.max_size)
        t = torch.arange(1, run_steps + 1, device=z.device, dtype=z.dtype)[:, None]
        position = torch.cat([t / self.max_size, torch.log1p(t) / math.log1p(self.max_size)], 1)
        out, _ = self.gru(self.embed_z(z)[:, None, :] + self.embed_step(position)[None], h0)
        stop = self.to_stop(out)[..., 0]
        if run_steps == steps:  # the step after max_size always stops
            stop = torch.cat([stop, stop.new_full((b, 1), math.inf)], 1)
        return self.to_point(out[:, :steps]), stop

    def forward(self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None):
        n = int(sizes.max()) if sizes.numel() else 0
        points, stop = self.run(z, n)
        # −log p(k): −Σ_{t≤k} log(1 − s_t) − log s_{k+1}; logsigmoid keeps it finite.
        not_stopping = torch.where(padding_mask_from_sizes(sizes, n + 1), 0.0, F.logsigmoid(-stop))
        stopping = F.logsigmoid(stop).gather(1, sizes[:, None])[:, 0]
        stopping = torch.where(sizes >= self.max_size, 0.0, stopping)
        size_nll = -(not_stopping[:, :n].sum(1) + stopping)
        return DecodedSet(*first_rows(points, sizes), size_nll)

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        """The median of p(k | z): the smallest k with P(K > k) = Π_{t≤k+1} (1 − s_t) ≤ 1/2."""
        _, stop = self.run(z, self.max_size)
        survival = F.logsigmoid(-stop).cumsum(1)  # log P(K > k) at index k
        return (survival <= -math.log(2)).to(torch.uint8).argmax(1)
