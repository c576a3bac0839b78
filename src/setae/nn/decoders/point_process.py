"""A point-process decoder: i.i.d. points from a density f(x | z), with an exact set likelihood.

Model. Given a code z, the size k ~ p(k | z) (a size head, setae.nn.size_heads) and the k points are drawn
i.i.d. from a density f(· | z) on R^d. The density of the unordered set X = {x_1, ..., x_k}, counted once (the
Janossy density of a finite point process: the k! orderings of the draw are the same set), is exactly

    log p(X | z) = log p(k | z) + log k! + Σ_i log f(x_i | z),

with no matching and no bound. `nll(z, batch)` returns, each [B] in nats,

    recon    = −Σ_i log f(x_i | z) − log k!      (0 for an empty set: log 0! = 0)
    size     = −log p(k | z)                      so recon + size = −log p(X | z)
    distance = −(1/k) Σ_i log f(x_i | z)          the mean negative log density of a point, a figure for
                                                  logs (0 for an empty set); not part of the objective

Frame. f is learned in a fixed per-dimension affine frame x̃ = (x − m) / s (buffers `loc` m and `scale` s,
set by `set_frame`; training sets them to the training points' mean and std in the model's units, so a
flow's splines, defined on [−5, 5], cover the data): f(x | z) = f̃(x̃ | z) / Π_d s_d.

Densities (`density`):
    mixture  f̃(x̃) = Σ_m π_m N(x̃; μ_m, L_m L_mᵀ), m = 1..K: weights, means and lower-triangular Cholesky
             factors from z by an MLP, diag(L_m) = softplus(·) + `min_std`. The floor bounds the density
             (det L_m L_mᵀ ≥ min_std^{2d}), which on discrete data could otherwise grow without limit.
    flow     f̃(x̃) = N(T_z(x̃); 0, I) |det ∂T_z(x̃)/∂x̃|, a conditional neural spline flow (zuko.flows.NSF,
             Durkan et al. 2019: autoregressive rational-quadratic splines; the context is z).

Decoding, `forward(z, sizes, generator)` at the given sizes (`sampling`):
    random   i.i.d. draws from f(· | z) made with `generator` (the global RNG when None);
    quasi    deterministic and low-discrepancy: e_j = Φ⁻¹(u_j) for the unscrambled Sobol points u_1, u_2, ...
             (torch.quasirandom.SobolEngine, the origin u_0 skipped, so e_1 = 0). Mixture: the k points are
             allotted to the components in proportion to π by largest-remainder rounding, and component m's
             n_m points are μ_m + L_m e_j, j = 1..n_m. Flow: the points are T_z⁻¹(e_j), j = 1..k. A lone
             point is thus the heaviest component's mean, or the image of the base's mode.

Shapes: z [B, latent]; batch.points [B, N, d], batch.padding_mask [B, N] (True = padding), batch.sizes [B].
Only the valid rows are gathered and scored, so padding rows (even NaN or inf) change neither the NLL nor
its gradient. Densities are evaluated in float32 with autocast off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import zuko
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal
from torch.quasirandom import SobolEngine

from setae.datasets.batch import SetBatch
from setae.nn.decoders.base import DecodedSet, padding_mask_from_sizes
from setae.nn.encoders import mlp
from setae.nn.size_heads import SIZE_HEADS

DENSITIES = ("mixture", "flow")
SAMPLINGS = ("quasi", "random")


class PointProcessDecoder(nn.Module):
    """p(X | z) = p(k | z) k! Π_i f(x_i | z); see the module docstring.

    latent_dim, point_dim d, max_size; density: "mixture" or "flow"; num_components: K, the mixture's
    Gaussians; dim, num_layers: the mixture's MLP has num_layers hidden layers of width 4·dim (as the MLP
    decoder), the flow num_layers spline transforms whose hyper-networks have two hidden layers of width dim;
    size_head: a name in SIZE_HEADS; sampling: "quasi" or "random"; min_std: the floor on the Cholesky
    diagonal, in frame units."""

    def __init__(
        self,
        latent_dim: int,
        point_dim: int,
        max_size: int,
        density: str = "mixture",
        num_components: int = 20,
        dim: int = 64,
        num_layers: int = 3,
        size_head: str = "categorical",
        sampling: str = "quasi",
        min_std: float = 1e-3,
    ):
        super().__init__()
        self.point_dim, self.max_size, self.density, self.sampling = point_dim, max_size, density, sampling
        self.num_components, self.min_std = num_components, min_std
        self.size_head = SIZE_HEADS[size_head](latent_dim, max_size)
        if density == "mixture":
            per_component = 1 + point_dim + point_dim * (point_dim + 1) // 2  # logit, mean, Cholesky entries
            self.net = mlp([latent_dim] + [4 * dim] * num_layers + [num_components * per_component])
            self.register_buffer("tril_index", torch.tril_indices(point_dim, point_dim), persistent=False)
        else:
            self.flow = zuko.flows.NSF(
                features=point_dim, context=latent_dim, transforms=num_layers, hidden_features=(dim, dim)
            )
        self.register_buffer("loc", torch.zeros(point_dim))
        self.register_buffer("scale", torch.ones(point_dim))
        sobol = SobolEngine(point_dim, scramble=False)
        sobol.fast_forward(1)  # skip the origin, whose normal quantile is −∞
        uniform = sobol.draw(max(max_size, 1), dtype=torch.float64).clamp(1e-9, 1 - 1e-9)
        # e_1, e_2, ... [max_size, d]; derived, so not saved
        self.register_buffer("quasi_normal", torch.special.ndtri(uniform).float(), persistent=False)

    def set_frame(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The frame x̃ = (x − mean) / std [d] the density is learned in (module docstring)."""
        self.loc.copy_(mean)
        self.scale.copy_(std.clamp(min=1e-6))

    def mixture(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z [B, latent] -> log weights [B, K], means [B, K, d] and Cholesky factors [B, K, d, d] of f̃."""
        k, d = self.num_components, self.point_dim
        out = self.net(z).view(z.shape[0], k, -1)
        logits, means, entries = out.split([1, d, d * (d + 1) // 2], dim=-1)
        tril = out.new_zeros(z.shape[0], k, d, d)
        tril[..., self.tril_index[0], self.tril_index[1]] = entries
        diagonal = F.softplus(tril.diagonal(dim1=-2, dim2=-1)) + self.min_std
        tril = tril.tril(-1) + torch.diag_embed(diagonal)
        return F.log_softmax(logits[..., 0], dim=-1), means, tril

    def log_density(self, z: torch.Tensor, points: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """log f(x | z) [B, N] of points [B, N, d] in the model's units; 0 at padding rows, which are never
        read."""
        valid = ~padding_mask
        owner = valid.nonzero(as_tuple=True)[0]  # the set of each valid row
        x = (points[valid] - self.loc) / self.scale  # [P, d]
        out = points.new_zeros(padding_mask.shape)
        if x.shape[0] == 0:  # no points at all (zuko and MultivariateNormal reject empty batches)
            return out
        if self.density == "mixture":
            log_weights, means, tril = (t[owner] for t in self.mixture(z))
            f = MixtureSameFamily(
                Categorical(logits=log_weights, validate_args=False),
                MultivariateNormal(means, scale_tril=tril, validate_args=False),
                validate_args=False,
            )
            log_f = f.log_prob(x)
        else:
            log_f = self.flow(z[owner]).log_prob(x)
        out[valid] = log_f - self.scale.log().sum()
        return out

    def nll(self, z: torch.Tensor, batch: SetBatch) -> dict[str, torch.Tensor]:
        """−log p(X | z) = recon + size exactly, and `distance` (module docstring); each [B] in nats."""
        with torch.autocast(z.device.type, enabled=False):
            z = z.float()
            log_f = self.log_density(z, batch.points.float(), batch.padding_mask).sum(1)
            k = batch.sizes.to(z.dtype)
            return {
                "recon": -log_f - torch.lgamma(k + 1),
                "size": self.size_head.nll(z, batch.sizes),
                "distance": -log_f / k.clamp(min=1),
            }

    def _quasi_mixture(self, z: torch.Tensor, sizes: torch.Tensor, n: int) -> torch.Tensor:
        """The quasi decode of the mixture in frame units [B, n, d] (rows from sizes[i] on unused)."""
        log_weights, means, tril = self.mixture(z)
        share = sizes[:, None].to(log_weights.dtype) * log_weights.exp()  # k π_m [B, K]
        counts = share.floor()
        remaining = (sizes.to(counts.dtype) - counts.sum(1)).clamp(0, self.num_components)
        order = torch.argsort(share - counts, dim=1, descending=True, stable=True)  # largest remainders first
        counts = counts + (torch.argsort(order, dim=1) < remaining[:, None])
        ends = counts.long().cumsum(1)  # [B, K]
        slots = torch.arange(n, device=z.device).expand(z.shape[0], n).contiguous()
        component = torch.searchsorted(ends, slots, right=True).clamp(max=self.num_components - 1)
        rank = (slots - (ends - counts.long()).gather(1, component)).clamp(0, self.max_size - 1)
        e = self.quasi_normal[rank]  # [B, n, d]
        rows = torch.arange(z.shape[0], device=z.device)[:, None]
        return means[rows, component] + (tril[rows, component] @ e[..., None])[..., 0]

    def _random_mixture(self, z: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
        log_weights, means, tril = self.mixture(z)
        component = torch.multinomial(log_weights.exp(), n, replacement=True, generator=generator)  # [B, n]
        e = torch.randn(z.shape[0], n, self.point_dim, generator=generator, device=z.device)
        rows = torch.arange(z.shape[0], device=z.device)[:, None]
        return means[rows, component] + (tril[rows, component] @ e[..., None])[..., 0]

    def sample(
        self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Points [B, max(sizes), d] in the model's units, zero at padding, decoded as `sampling` says."""
        n, mask = (int(sizes.max()) if sizes.numel() else 0), padding_mask_from_sizes(sizes)
        if n == 0:
            return z.new_zeros(z.shape[0], 0, self.point_dim)
        if self.density == "mixture":
            if self.sampling == "quasi":
                x = self._quasi_mixture(z, sizes, n)
            else:
                x = self._random_mixture(z, n, generator)
        else:
            if self.sampling == "quasi":
                e = self.quasi_normal[:n].expand(z.shape[0], n, self.point_dim)
            else:
                e = torch.randn(z.shape[0], n, self.point_dim, generator=generator, device=z.device)
            x = self.flow(z[:, None].expand(-1, n, -1)).transform.inv(e)  # base (standard normal) -> data
        return (self.loc + self.scale * x).masked_fill(mask[..., None], 0.0)

    def forward(self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None):
        """Points drawn at the given sizes [B] (`sample`) and −log p(sizes | z), as every decoder returns."""
        points = self.sample(z, sizes, generator)
        return DecodedSet(points, padding_mask_from_sizes(sizes), self.size_head.nll(z, sizes))

    def predict_sizes(self, z: torch.Tensor) -> torch.Tensor:
        """The size head's prediction [B] (its mode; the Poisson head's median)."""
        return self.size_head.predict(z)
