"""The Deep Set Prediction Network decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from setae.nn.decoders.base import DecodedSet, first_rows, presence_nll
from setae.nn.encoders import mlp
from setae.nn.size_heads import SIZE_HEADS


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

    The size comes from a size head on z, p(k | z) (`size_head`; its mode is the estimate): the paper's
    k = #{p_i > 1/2} depends on z only through the inner loop, and on MNIST it stayed at the median size for
    every digit. The set at size k is the k most present elements; the Bernoulli NLL of "exactly those k are
    present" trains the presence (`auxiliary_nll`). `steps` returns the sets after each inner step before
    the last, which the autoencoder also supervises, as the paper does, by Chamfer whatever the final set's
    loss (a matching at every inner step is slow).
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
        size_head: str = "categorical",
    ):
        super().__init__()
        self.num_steps, self.inner_lr = num_steps, inner_lr
        self.size_head = SIZE_HEADS[size_head](latent_dim, max_size)
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
        """The sizes[i] most present elements of each set, most present first, and the presence NLL."""
        order = logits.argsort(dim=1, descending=True, stable=True)
        points = points.gather(1, order[..., None].expand_as(points))
        return *first_rows(points, sizes), presence_nll(logits.gather(1, order), sizes)

    def forward(self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None):
        """Deterministic, so `generator` is unused."""
        *earlier, (points, logits) = self.refine_initial(z)
        final, mask, presence = self._as_set(points, logits, sizes)
        steps = tuple(self._as_set(p, a, sizes)[0] for p, a in earlier)
        return DecodedSet(final, mask, self.size_head.nll(z, sizes), steps, presence)

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        return self.size_head.predict(z)
