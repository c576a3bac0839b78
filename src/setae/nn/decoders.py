"""Vector -> set decoders. A latent code z [B, latent] becomes a padded set [B, n, d] whose size is predicted.

Every decoder has the same interface:

    forward(z, sizes, generator=None) -> DecodedSet: the set at the given sizes [B], its −log p(sizes | z),
                                         and, for iterative decoders, the intermediate sets
    predict_sizes(z)                  -> [B] long, the decoder's own size estimate (inference)

During training `sizes` are the true sizes; at inference they come from predict_sizes. `generator` fixes
any sampling the decoder does (TSPN's and the slot decoder's initial elements).

The decoders:
    MLPDecoder   fixed slots + presence (the baseline the source documents start from)
    RNNDecoder   emits points one at a time until a stop signal
    TSPNDecoder  a transformer over an initial set sampled at the predicted size
    SlotDecoder  slot-attention-style: slots compete (softmax over queries) for tokens of z
    DSPNDecoder  inner gradient descent on a learned set-embedding loss
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from setae.nn.attention import set_attention_stack
from setae.nn.encoders import mlp
from setae.nn.size_heads import SIZE_HEADS


class DecodedSet(NamedTuple):
    """points [B, n, d] (zeros at padding), padding_mask [B, n] (True = padding), size_nll [B] in nats, and
    `steps`: earlier estimates of the set (same shapes) for iterative decoders, each to be supervised too."""

    points: torch.Tensor
    padding_mask: torch.Tensor
    size_nll: torch.Tensor
    steps: tuple[torch.Tensor, ...] = ()


def padding_mask_from_sizes(sizes: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """sizes [B] -> padding_mask [B, n] with True at positions >= size (n defaults to max size)."""
    n = (int(sizes.max()) if sizes.numel() else 0) if n is None else n
    return torch.arange(n, device=sizes.device)[None, :] >= sizes[:, None]


def _first(points: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first sizes[i] rows of points [B, N, d] as a padded batch [B, max(sizes), d] and its mask."""
    mask = padding_mask_from_sizes(sizes)
    return points[:, : mask.shape[1]].masked_fill(mask[..., None], 0.0), mask


def _presence_nll(presence_logits: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Σ_j BCE(presence_j, [j < size]) [B]: −log of the probability that exactly the first `size` slots are
    present, for presence logits [B, N] ordered so that present slots come first."""
    target = (~padding_mask_from_sizes(sizes, presence_logits.shape[1])).to(presence_logits.dtype)
    return F.binary_cross_entropy_with_logits(presence_logits, target, reduction="none").sum(1)


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
        return DecodedSet(*_first(slots, sizes), _presence_nll(presence, sizes))

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        return (self.slots(z)[1] > 0).sum(1)


class RNNDecoder(nn.Module):
    """A GRU that emits one point per step and a stop logit before each point:

        h_0 = tanh(W_h z),  h_t = GRU(W_x z, h_{t−1}),  x_t = W_o h_t,  s_t = σ(w_s · h_t)  (t = 1, 2, ...)

    s_t is the probability that the set ends before point t, so p(k | z) = Π_{t≤k} (1 − s_t) · s_{k+1}
    (s_{max_size+1} = 1): a proper distribution over k = 0..max_size, and size_nll = −log p(k | z). The size
    estimate is the median of p(k | z); the stop bias starts at a constant hazard of 2 / max_size (a
    geometric size distribution of mean ~max_size / 2). The input is z at every step; the state carries
    what has been emitted. (Feeding the previous point back
    would need an order of the target points for teacher forcing, which a set loss does not give.) The
    order of the emitted points is arbitrary: the set loss compares them as a set.
    """

    def __init__(self, latent_dim: int, out_dim: int, max_size: int, dim: int = 256, num_layers: int = 1):
        super().__init__()
        self.max_size = max_size
        self.init_state = nn.Linear(latent_dim, num_layers * dim)
        self.embed_z = nn.Linear(latent_dim, dim)
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
        out, _ = self.gru(self.embed_z(z)[:, None, :].expand(b, run_steps, dim), h0)
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
        return DecodedSet(*_first(points, sizes), size_nll)

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        """The median of p(k | z): the smallest k with P(K > k) = Π_{t≤k+1} (1 − s_t) ≤ 1/2."""
        _, stop = self.run(z, self.max_size)
        survival = F.logsigmoid(-stop).cumsum(1)  # log P(K > k) at index k
        return (survival <= -math.log(2)).to(torch.uint8).argmax(1)


class _SampledSetDecoder(nn.Module):
    """Shared by TSPN and the slot decoder: k ~ p(k | z) from `size_head` (the true size in training), k
    initial elements from `initial`, then the subclass's equivariant `transform(initial, z, padding_mask)`."""

    def forward(self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None):
        mask = padding_mask_from_sizes(sizes)
        points = self.transform(self.initial(sizes, generator), z, mask)
        return DecodedSet(points, mask, self.size_head.nll(z, sizes))

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        return self.size_head.predict(z)


class TSPNDecoder(_SampledSetDecoder):
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


class SlotDecoder(_SampledSetDecoder):
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


class DSPNDecoder(nn.Module):
    """Deep Set Prediction Network (Zhang et al., 2019).

    A learned initial set Y⁰ [max_size, d] with presence logits a⁰ [max_size] is refined by T steps of
    gradient descent on the distance between its embedding and the code's:

        L(Y, a) = mean_c (g(Y, σ(a)) − W z)_c²,   g(Y, p) = ρ(Σ_i p_i φ(y_i)),   φ(y) = relu(W_φ y + b_φ)
        Y^{t+1} = Y^t − η ∇_Y L,   a^{t+1} = a^t − η ∇_a L

    g is a presence-weighted Deep Sets embedding of width `dim` with ρ an MLP of `num_layers` layers. In
    training the steps stay in the graph (the paper's create_graph=True), so the outer loss trains g, W,
    Y⁰ and a⁰ through the inner loop. η is per set (the paper's batch-mean loss with rate 800 at batch 32
    is η = 25 here). g is permutation-invariant, so each step is permutation-equivariant in the elements.

    φ is one ReLU layer so that the inner gradient has a closed form with one pass over the elements:
    with u = ∂L/∂(Σ_i p_i φ(y_i)) [B, dim] (autograd through the small ρ),

        ∇_{y_i} L = p_i W_φᵀ (1[W_φ y_i + b_φ > 0] ⊙ u),   ∇_{a_i} L = p_i (1 − p_i) φ(y_i)·u.

    Presence is refined as logits: the paper descends on p ∈ [0, 1] and clamps, but the clamp has zero
    gradient outside [0, 1], and on MNIST every presence was pushed to 0 and stayed there.

    The set at size k is the k most present elements; size_nll is the Bernoulli NLL of "exactly those k
    are present" (an upper bound on −log p(k) with k = #{p_i > 1/2}, the size estimate). `steps` returns
    the sets after each inner step before the last, which the autoencoder also supervises, as the paper does.
    """

    def __init__(
        self,
        latent_dim: int,
        out_dim: int,
        max_size: int,
        dim: int = 256,
        num_layers: int = 2,
        num_steps: int = 10,
        inner_lr: float = 25.0,
    ):
        super().__init__()
        self.num_steps, self.inner_lr = num_steps, inner_lr
        self.representation_weight = 0.1
        self.init_points = nn.Parameter(torch.rand(max_size, out_dim))
        self.init_presence = nn.Parameter(torch.zeros(max_size))  # logits: p = 1/2
        self.phi = nn.Linear(out_dim, dim)
        self.rho = mlp([dim] * (num_layers + 1))
        self.embed_z = nn.Linear(latent_dim, dim)

    def embedding(self, points: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """g(Y, p) [B, dim] for points [B, N, d] and presence weights p [B, N]."""
        return self.rho(torch.einsum("bn,bnc->bc", presence, F.relu(self.phi(points))))

    def representation_loss(self, z: torch.Tensor, points: torch.Tensor, padding_mask: torch.Tensor):
        """mean_c (g(X, 1) − W z)_c² [B] for the target sets X (points [B, n, d], padding_mask [B, n]): the
        paper's term that makes the true set a minimum of the inner objective, added to the training loss
        with weight `representation_weight`. Without it W z is an arbitrary target at first, which the inner
        loop meets by scaling every presence down together."""
        return (self.embedding(points, (~padding_mask).to(points.dtype)) - self.embed_z(z)).square().mean(1)

    def inner_gradients(
        self, points: torch.Tensor, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(∇_Y L [B, N, d], ∇_a L [B, N]) of L = Σ_sets mean_c (g(Y, σ(a)) − target)_c², in closed form.

        The result stays in the autograd graph when grad is enabled (its inputs' gradients then follow)."""
        keep_graph = torch.is_grad_enabled()
        features = F.relu(self.phi(points))
        presence = torch.sigmoid(logits)
        with torch.enable_grad():
            pooled = torch.einsum("bn,bnc->bc", presence, features)
            if not (keep_graph and pooled.requires_grad):  # u from a detached copy, through ρ only
                pooled = pooled.detach().requires_grad_()
            loss = (self.rho(pooled) - target).square().mean(1).sum()
            (u,) = torch.autograd.grad(loss, pooled, create_graph=keep_graph)
        # relu'(pre) = 1[features > 0]; p_i multiplies after the projection to d dimensions (cheaper)
        grad_points = (torch.where(features > 0, u[:, None, :], 0.0) @ self.phi.weight) * presence[..., None]
        grad_logits = presence * (1 - presence) * torch.einsum("bnc,bc->bn", features, u)
        return grad_points, grad_logits

    def refine(
        self, points: torch.Tensor, logits: torch.Tensor, z: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """points [B, N, d], presence logits [B, N], z [B, latent] -> [(points, logits)] after each of the T
        inner steps. In the graph when training with grad enabled; detached otherwise."""
        differentiable = self.training and torch.is_grad_enabled()
        out = []
        with torch.set_grad_enabled(differentiable):
            target = self.embed_z(z)
            for _ in range(self.num_steps):
                grad_points, grad_logits = self.inner_gradients(points, logits, target)
                points = points - self.inner_lr * grad_points
                logits = logits - self.inner_lr * grad_logits
                out.append((points, logits))
        return out

    def refine_initial(self, z: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`refine` from the learned initial set, for codes z [B, latent]."""
        b = z.shape[0]
        return self.refine(self.init_points.expand(b, -1, -1), self.init_presence.expand(b, -1), z)

    def _as_set(self, points: torch.Tensor, logits: torch.Tensor, sizes: torch.Tensor):
        """The sizes[i] most present elements of each set, most present first, and size_nll."""
        order = logits.argsort(dim=1, descending=True, stable=True)
        points = points.gather(1, order[..., None].expand_as(points))
        return *_first(points, sizes), _presence_nll(logits.gather(1, order), sizes)

    def forward(self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None):
        """Deterministic, so `generator` is unused."""
        *earlier, (points, logits) = self.refine_initial(z)
        final = self._as_set(points, logits, sizes)
        return DecodedSet(*final, steps=tuple(self._as_set(p, a, sizes)[0] for p, a in earlier))

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        return (self.refine_initial(z)[-1][1] > 0).sum(1)
