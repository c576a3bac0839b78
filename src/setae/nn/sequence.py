"""An autoregressive decoder of pen-stroke sequences (sketch-RNN style, Ha & Eck 2017): p(S | z).

Data. A sequence S = (s_1, ..., s_n) of n stroke-3 steps s_t = (Δx_t, Δy_t, q_t): an offset Δ_t ∈ R² from the
previous point (from the origin for t = 1) and q_t = pen_lifted ∈ {0, 1} (1: the pen lifts after this point).
A batch is a SetBatch with points [B, N, 3] whose rows are in time order, padding_mask [B, N] and sizes [B]
(= n per sequence); the sequence ends after its last valid step. Inside the decoder a step is read as
stroke-5, (Δx/s, Δy/s, 1 − q, q, 0) with s the `scale`, and the first step reads the start token
s_0 = (0, 0, 1, 0, 0). With a `position_scale` P > 0 the network also reads the pen's absolute position
before the step, p_{t−1} = Σ_{j<t} Δ_j (p_0 = 0), divided by P: the input is stroke-5 ⊕ p_{t−1}/P, so a
free-running decoder knows where its own drawing has got to and can steer back when its steps drift.

Network. A GRU (one layer; chosen over an LSTM for having one state tensor to initialise from the code)
with initial state h_0 = tanh(W z); step t = 1, 2, ... reads x_t = [input of s_{t−1}, z] and a linear
head on its output h_t gives the step's distribution:

    offset:  p(Δ | h_t) = Σ_m π_m N(Δ; μ_m, Σ_m),  Σ_m = [[σx², ρσxσy], [ρσxσy, σy²]],  m = 1..M,
    pen:     P(c_t = k | h_t) = softmax_k(ℓ_t),  k ∈ {down, lifted, end},

with the bivariate normal log-density, u = (Δx − μx)/σx, v = (Δy − μy)/σy,

    log N(Δ; μ, Σ) = −log(2π σx σy √(1 − ρ²)) − (u² − 2ρuv + v²) / (2(1 − ρ²)).

Factorisation. The decoder runs n + 1 steps on a sequence of n points: steps 1..n emit the points, step n + 1
emits `end` (its offset is not part of S), and offset and pen are independent given the state:

    p(S | z) = Π_{t=1..n} p(Δ_t | h_t) P(c_t = q_t | h_t) · P(c_{n+1} = end | h_{n+1}).

Writing P(c_t = q) = P(c_t = q | c_t ≠ end) · P(c_t ≠ end), −log p(S | z) = recon + size exactly, with

    recon = −Σ_{t=1..n} [log p(Δ_t | h_t) + log P(c_t = q_t | c_t ≠ end, h_t)]
    size  = −Σ_{t=1..n} log(1 − P(c_t = end | h_t)) − log P(c_{n+1} = end | h_{n+1})

`recon` scores the points, `size` the length in hazard form (go on at steps 1..n, stop at n + 1), so `size`
plays the part of a set decoder's size NLL; an empty sequence has recon = 0 and a single step.

Units. The network reads offsets divided by `scale`, s, and its head emits means and widths in units of s;
they are mapped back, μ = s μ̃ and σ = σ_min + s softplus(σ̃_raw), so the density is evaluated in the data's
units: p(Δ) = p̃(Δ/s) / s², the change-of-variables (Jacobian) correction, and NLLs are nats of the original
units whatever the scale.

Integer offsets. The offsets in our MNIST strokes are integers, on which a continuous density can grow without
bound (σ → 0, or |ρ| → 1 along a diagonal). Hence σ ≥ σ_min (`min_std`, default 0.1 data units) and
|ρ| ≤ ρ_max (`max_corr`, default 0.95), which bound log p(Δ) ≤ −log(2π σ_min² √(1 − ρ_max²)) ≈ 3.93 nats per
step with the defaults. Targets are not dequantised: the NLL stays a deterministic function of (z, S), which
padding invariance, evaluation and importance-weighted bounds rely on, and no noise generator has to reach
training. The price: `recon` is a density, it can be negative, and it does not bound the discrete NLL.

Generation samples step by step, feeding each sampled step back, until c_t = end (that step is not emitted)
or `max_len` points; at temperature τ the component and pen logits are divided by τ and σ multiplied by √τ
(as in sketch-RNN), and τ = 0 is greedy: the heaviest component's mean and the most likely pen state.
Sampled offsets are continuous (not rounded to integers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from setae.datasets.batch import SetBatch
from setae.errors import SetaeError
from setae.nn.decoders import padding_mask_from_sizes

DOWN, LIFTED, END = 0, 1, 2  # pen states, the order of the pen logits


def bivariate_mixture_log_prob(
    log_weights: torch.Tensor, means: torch.Tensor, stds: torch.Tensor, corr: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """log Σ_m π_m N(x; μ_m, Σ_m) for a mixture of M bivariate normals (see the module docstring).

    log_weights [..., M] (normalised: logsumexp = 0), means [..., M, 2], stds [..., M, 2] (> 0),
    corr [..., M] (in (−1, 1)), x [..., 2] -> [...].
    """
    u, v = ((x[..., None, :] - means) / stds).unbind(-1)
    one_minus_rho2 = 1.0 - corr**2
    log_norm = -(math.log(2 * math.pi) + stds.log().sum(-1) + 0.5 * one_minus_rho2.log())
    quadratic = (u**2 - 2 * corr * u * v + v**2) / (2 * one_minus_rho2)
    return torch.logsumexp(log_weights + log_norm - quadratic, dim=-1)


@dataclass
class StrokeStepDistribution:
    """The output distribution of decoder steps with leading shape [...] ([B] for one step, [B, n + 1] for a
    teacher-forced batch), in the data's units:

    log_weights [..., M] log mixture weights log π (normalised), means [..., M, 2], stds [..., M, 2],
    corr [..., M] correlations ρ, pen_logits [..., 3] unnormalised logits of (down, lifted, end).
    """

    log_weights: torch.Tensor
    means: torch.Tensor
    stds: torch.Tensor
    corr: torch.Tensor
    pen_logits: torch.Tensor

    def offset_log_prob(self, offsets: torch.Tensor) -> torch.Tensor:
        """offsets [..., 2] -> log p(Δ) [...], in nats of the data's units."""
        return bivariate_mixture_log_prob(self.log_weights, self.means, self.stds, self.corr, offsets)


class StrokeDecoder(nn.Module):
    """Autoregressive GRU decoder of stroke-3 sequences conditioned on a code z [B, latent_dim].

    latent_dim: code size; hidden: GRU width; num_components: M, the mixture size; scale: s, offsets are
    divided by it before the network (pick the offsets' typical size); min_std: σ_min, the floor on the
    mixture's standard deviations, and max_corr: ρ_max, the bound on |ρ|, both guarding against unbounded
    densities on integer offsets (module docstring); position_scale: P, the pen's absolute position divided
    by it is an input too (0: offsets only); input_dropout: in training, each step's view of the previous
    step (its stroke-5, not the position) is blanked with this probability, so the decoder must read where
    the drawing goes from z (word dropout, Bowman et al. 2016).
    """

    def __init__(
        self,
        latent_dim: int,
        hidden: int = 256,
        num_components: int = 20,
        scale: float = 1.0,
        min_std: float = 0.1,
        max_corr: float = 0.95,
        position_scale: float = 0.0,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        if scale <= 0 or min_std <= 0 or not 0 < max_corr < 1 or not position_scale >= 0:
            raise SetaeError(
                f"StrokeDecoder: need scale > 0, min_std > 0, 0 < max_corr < 1 and position_scale >= 0; got "
                f"scale={scale}, min_std={min_std}, max_corr={max_corr}, position_scale={position_scale}"
            )
        self.latent_dim, self.num_components = latent_dim, num_components
        self.scale, self.min_std, self.max_corr = scale, min_std, max_corr
        self.position_scale = position_scale
        if not 0 <= input_dropout < 1:
            raise SetaeError(f"StrokeDecoder: input_dropout must be in [0, 1), got {input_dropout}")
        self.input_dropout = input_dropout
        self.input_dim = 7 if position_scale else 5
        self.init_state = nn.Linear(latent_dim, hidden)
        self.rnn = nn.GRU(self.input_dim + latent_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 6 * num_components + 3)
        start = [0.0, 0.0, 1.0, 0.0, 0.0] + [0.0, 0.0] * bool(position_scale)
        self.register_buffer("start", torch.tensor(start), persistent=False)

    def _input(self, steps: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """stroke-3 steps [..., 3] and the absolute positions after them [..., 2] -> the network's input
        [..., input_dim]: stroke-5 (offsets divided by scale), then positions / position_scale if used."""
        lifted = (steps[..., 2:] > 0.5).to(steps.dtype)
        parts = [steps[..., :2] / self.scale, 1 - lifted, lifted, torch.zeros_like(lifted)]
        if self.position_scale:
            parts.append(positions / self.position_scale)
        return torch.cat(parts, -1)

    def _distribution(self, out: torch.Tensor) -> StrokeStepDistribution:
        """GRU outputs [..., hidden] -> the step distributions with leading shape [...]."""
        m = self.num_components
        params = self.head(out)
        logits, means, raw_stds, raw_corr, pen_logits = params.split([m, 2 * m, 2 * m, m, 3], dim=-1)
        pairs = (*out.shape[:-1], m, 2)
        return StrokeStepDistribution(
            log_weights=F.log_softmax(logits, dim=-1),
            means=self.scale * means.reshape(pairs),
            stds=self.min_std + self.scale * F.softplus(raw_stds.reshape(pairs)),
            corr=self.max_corr * torch.tanh(raw_corr),
            pen_logits=pen_logits,
        )

    def _initial_state(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, latent] -> h_0 [1, B, hidden]."""
        return torch.tanh(self.init_state(z))[None]

    def _step(
        self, previous: torch.Tensor, z: torch.Tensor, state: torch.Tensor
    ) -> tuple[StrokeStepDistribution, torch.Tensor]:
        """One free-running step: previous input [B, input_dim], z [B, latent], state [1, B, hidden] ->
        (the step's distribution, leading shape [B]; the next state [1, B, hidden])."""
        out, state = self.rnn(torch.cat([previous, z], -1)[:, None], state)
        return self._distribution(out[:, 0]), state

    def first_step(self, z: torch.Tensor) -> StrokeStepDistribution:
        """z [B, latent] -> the distribution of step 1 (leading shape [B]), computed as `generate` does."""
        start = self.start.to(z.dtype).expand(z.shape[0], self.input_dim)
        return self._step(start, z, self._initial_state(z))[0]

    def teacher_forced(self, z: torch.Tensor, batch: SetBatch) -> StrokeStepDistribution:
        """z [B, latent], batch of stroke-3 sequences (points [B, N, 3], sizes [B]) -> the distributions of
        steps 1..L+1, leading shape [B, L + 1] with L = max(sizes): entry t (0-based) is the distribution of
        step t + 1 given the true steps before it. Padded rows are zeroed before use, so entries 0..n_i of
        sequence i never depend on them."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise SetaeError(f"StrokeDecoder: z has shape {tuple(z.shape)}; expected [B, {self.latent_dim}]")
        if batch.points.ndim != 3 or batch.points.shape[2] != 3 or batch.points.shape[0] != z.shape[0]:
            raise SetaeError(
                f"StrokeDecoder: points have shape {tuple(batch.points.shape)}; expected [{z.shape[0]}, N, 3]"
            )
        length = int(batch.sizes.max()) if batch.sizes.numel() else 0
        steps = batch.points[:, :length].masked_fill(
            padding_mask_from_sizes(batch.sizes, length)[..., None], 0
        )
        start = self.start.to(steps.dtype).expand(z.shape[0], 1, self.input_dim)
        inputs = torch.cat([start, self._input(steps, steps[..., :2].cumsum(1))], dim=1)
        if self.training and self.input_dropout:  # blank the previous step's stroke-5, keep the position
            blank = torch.rand(inputs.shape[:2], device=inputs.device) < self.input_dropout
            inputs = torch.cat([inputs[..., :5].masked_fill(blank[..., None], 0.0), inputs[..., 5:]], -1)
        out, _ = self.rnn(
            torch.cat([inputs, z[:, None].expand(-1, length + 1, -1)], -1), self._initial_state(z)
        )
        return self._distribution(out)

    def nll(self, z: torch.Tensor, batch: SetBatch) -> dict[str, torch.Tensor]:
        """−log p(S | z) by teacher forcing, split as in the module docstring; each term [B], in nats:

        recon     −Σ_t [log p(Δ_t) + log P(q_t | not end)] over the n valid steps,
        size      −Σ_{t≤n} log P(not end at t) − log P(end at n + 1), so recon + size = −log p(S | z),
        distance  recon / n, a per-step figure for logs (0 for an empty sequence).
        """
        dist = self.teacher_forced(z, batch)
        length = dist.pen_logits.shape[1] - 1
        steps = batch.points[:, :length]
        valid = ~padding_mask_from_sizes(batch.sizes, length)
        pen = (steps[..., 2] > 0.5).long().masked_fill(~valid, DOWN)
        offsets = steps[..., :2].masked_fill(~valid[..., None], 0)
        log_pen = F.log_softmax(dist.pen_logits, dim=-1)  # [B, L + 1, 3]
        log_not_end = torch.logsumexp(log_pen[..., :END], dim=-1)  # [B, L + 1]
        offset_lp = dist.offset_log_prob(F.pad(offsets, (0, 0, 0, 1)))[:, :length]  # step n + 1: no offset
        pen_given_not_end = log_pen[:, :length].gather(-1, pen[..., None])[..., 0] - log_not_end[:, :length]
        recon = -(offset_lp + pen_given_not_end).masked_fill(~valid, 0).sum(1)
        log_end = log_pen[..., END].gather(1, batch.sizes[:, None])[:, 0]
        size = -log_not_end[:, :length].masked_fill(~valid, 0).sum(1) - log_end
        return {"recon": recon, "size": size, "distance": recon / batch.sizes.clamp(min=1)}

    @staticmethod
    def _sample(
        dist: StrokeStepDistribution, temperature: float, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step's distribution (leading shape [B]) -> (offset [B, 2], pen state [B] long), drawn at the
        given temperature (0: greedy, no draws)."""
        if temperature == 0:
            component, pen = dist.log_weights.argmax(-1), dist.pen_logits.argmax(-1)
        else:
            weights = F.softmax(dist.log_weights / temperature, -1)
            component = torch.multinomial(weights, 1, generator=generator)[:, 0]
            pen_probs = F.softmax(dist.pen_logits / temperature, -1)
            pen = torch.multinomial(pen_probs, 1, generator=generator)[:, 0]
        rows = torch.arange(component.shape[0], device=component.device)
        mean = dist.means[rows, component]
        if temperature == 0:
            return mean, pen
        std, rho = math.sqrt(temperature) * dist.stds[rows, component], dist.corr[rows, component]
        e = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        correlated = torch.stack([e[:, 0], rho * e[:, 0] + (1 - rho**2).sqrt() * e[:, 1]], -1)
        return mean + std * correlated, pen

    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor,
        generator: torch.Generator | None = None,
        max_len: int = 250,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Free-running decoding: z [B, latent] -> (steps [B, L, 3], padding_mask [B, L]), L = the longest.

        Each step draws a mixture component m ~ softmax(log π / τ), an offset ~ N(μ_m, τ Σ_m) and a pen state
        ~ softmax(ℓ / τ) with `generator` (τ = temperature; τ = 0 takes the argmaxes and the mean, and draws
        nothing). A sequence ends at the first step whose pen state is `end`, which is not emitted, or after
        `max_len` points (not marked: such a sequence simply has length max_len). Rows are stroke-3 in the
        data's units with pen_lifted ∈ {0, 1}; padding rows are zero and padding_mask is True from each
        sequence's length on. Draws are made for the whole batch at every step, so a sequence's draws depend
        on the batch it is decoded in.
        """
        if temperature < 0:
            raise SetaeError(f"StrokeDecoder.generate: temperature must be >= 0, got {temperature}")
        batch_size = z.shape[0]
        previous, state = self.start.to(z.dtype).expand(batch_size, self.input_dim), self._initial_state(z)
        position = z.new_zeros(batch_size, 2)
        running = torch.ones(batch_size, dtype=torch.bool, device=z.device)
        lengths = torch.zeros(batch_size, dtype=torch.long, device=z.device)
        emitted: list[torch.Tensor] = []
        while len(emitted) < max_len:
            dist, state = self._step(previous, z, state)
            offset, pen = self._sample(dist, temperature, generator)
            running &= pen != END
            if not running.any():
                break
            step = torch.cat([offset, (pen == LIFTED).to(z.dtype)[:, None]], -1)
            emitted.append(step.masked_fill(~running[:, None], 0))
            lengths += running
            position = position + step[:, :2]
            previous = self._input(step, position)
        steps = torch.stack(emitted, 1) if emitted else z.new_zeros(batch_size, 0, 3)
        return steps, padding_mask_from_sizes(lengths, steps.shape[1])
