"""Set autoencoders: a permutation-invariant encoder, a latent code, and a set decoder that predicts the size.

Encoding. The encoder pools the set to a vector e; since attention pooling is a weighted mean and cannot
count, the set size enters directly: h = [e, n/N_max, log(1+n)/log(1+N_max)]. A linear map gives the code
(or the posterior mean), followed by an affine-free batch norm: standardising the code across a batch stops
the reconstruction gradient from shrinking the codes' variation until z carries nothing (a collapse seen
with Chamfer training; for the VAE this is the BN-VAE remedy, Zhu et al. 2020, which keeps KL > 0).

Objective, per set X of n points in R^d, in nats:

    recon(X) = Σ_matched |x − y|² / (2σ²)      Gaussian point likelihood with std σ (`point_sigma`), up to
                                                 a constant; for Chamfer the two directed sums are averaged
    size(X)  = −log p(n | z)                    the decoder's size model
    kl(X)    = KL(q(z | X) ‖ N(0, I))            variational models only

and training minimises mean(recon + size + β·kl), so β = 1 gives the negative ELBO.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from setae.datasets.batch import SetBatch, as_point_sets
from setae.errors import SetaeError
from setae.nn.decoders import MLPDecoder, TSPNDecoder
from setae.nn.encoders import DeepSets, SetTransformer
from setae.nn.losses import chamfer_loss, hungarian_loss
from setae.nn.normalization import BatchStandardize

# loss name -> (per-set loss, how many times each point is counted by n · loss)
LOSSES = {"chamfer": (chamfer_loss, 2.0), "hungarian": (hungarian_loss, 1.0)}
ENCODERS = ("settransformer", "deepsets")
DECODERS = ("tspn", "mlp")


@dataclass
class ModelConfig:
    """Everything that defines a model's architecture and objective (saved with every checkpoint)."""

    point_dim: int = 2
    max_size: int = 342
    latent_dim: int = 64
    variational: bool = True
    encoder: str = "settransformer"
    encoder_dim: int = 64
    encoder_layers: int = 2
    encoder_heads: int = 4
    encoder_inducing: int = 16
    deepsets_pool: str = "max"
    decoder: str = "tspn"
    decoder_dim: int = 64
    decoder_layers: int = 3
    decoder_heads: int = 4
    decoder_inducing: int = 16
    decoder_init_dim: int = 16
    loss: str = "chamfer"
    point_sigma: float = 1 / 27
    normalize: bool = False

    def validate(self) -> None:
        for name, value, allowed in (
            ("encoder", self.encoder, ENCODERS),
            ("decoder", self.decoder, DECODERS),
            ("loss", self.loss, tuple(LOSSES)),
        ):
            if value not in allowed:
                raise SetaeError(f"config: {name}={value!r} is not one of {', '.join(allowed)}")
        for name in ("point_dim", "max_size", "latent_dim"):
            if getattr(self, name) < 1:
                raise SetaeError(f"config: {name} must be >= 1, got {getattr(self, name)}")


def build_encoder(c: ModelConfig) -> nn.Module:
    if c.encoder == "deepsets":
        return DeepSets(c.point_dim, c.encoder_dim, c.encoder_layers, c.deepsets_pool)
    return SetTransformer(c.point_dim, c.encoder_dim, c.encoder_heads, c.encoder_layers, c.encoder_inducing)


def build_decoder(c: ModelConfig) -> nn.Module:
    if c.decoder == "mlp":
        return MLPDecoder(c.latent_dim, c.point_dim, c.max_size, hidden=4 * c.decoder_dim)
    return TSPNDecoder(
        c.latent_dim,
        c.point_dim,
        c.max_size,
        c.decoder_dim,
        c.decoder_heads,
        c.decoder_layers,
        c.decoder_inducing,
        c.decoder_init_dim,
    )


class SetAutoencoder(nn.Module):
    """Vanilla (variational=False) or variational set autoencoder; see the module docstring for the maths."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = build_encoder(config)
        out = 2 * config.latent_dim if config.variational else config.latent_dim
        self.to_latent = nn.Linear(self.encoder.out_dim + 2, out)
        # A tiny eps: with BatchNorm's 1e-5 the encoder escaped the standardisation by shrinking the pre-norm
        # variance below eps (observed under the VAE's KL pressure), and the codes collapsed again.
        self.latent_norm = BatchStandardize(config.latent_dim, eps=1e-12)
        self.decoder = build_decoder(config)
        # Per-dimension standardisation of points (config.normalize), set from the training data; outputs are
        # mapped back, so users see their own units.
        self.register_buffer("point_mean", torch.zeros(config.point_dim))
        self.register_buffer("point_std", torch.ones(config.point_dim))

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardise points with the training points' per-dimension mean and std [D]."""
        self.point_mean.copy_(mean)
        self.point_std.copy_(std.clamp(min=1e-6))

    def _normalize(self, batch: SetBatch) -> SetBatch:
        if not self.config.normalize:
            return batch
        points = ((batch.points - self.point_mean) / self.point_std).masked_fill(
            batch.padding_mask[..., None], 0
        )
        return SetBatch(points, batch.padding_mask, batch.sizes, batch.labels)

    # ---- training-time computation on padded batches -------------------------------------------------

    def posterior(self, batch: SetBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Code (vanilla) or posterior mean and log-variance (VAE), each [B, latent]."""
        return self._posterior(self._normalize(batch))

    def _posterior(self, batch: SetBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        c = self.config
        n = batch.sizes.to(batch.points.dtype)[:, None]
        size_features = torch.cat([n / c.max_size, torch.log1p(n) / math.log1p(c.max_size)], dim=1)
        h = self.to_latent(torch.cat([self.encoder(batch.points, batch.padding_mask), size_features], 1))
        if not c.variational:
            return self.latent_norm(h), None
        mean, log_var = h.chunk(2, dim=1)
        return self.latent_norm(mean), log_var.clamp(-12.0, 8.0)

    @torch.no_grad()
    def calibrate_latent_norm(self, batches: Sequence[SetBatch]) -> None:
        """Set the code standardisation's inference statistics to the exact average over `batches`.

        The pre-norm codes can have a small variance and a drifting mean, so the usual running average
        lags behind and shifts codes at inference by several standard deviations; a fresh average over
        training batches with the current weights does not ("precise BN")."""
        was_training = self.training
        self.train()
        self.latent_norm.start_calibration()
        for batch in batches:
            self.posterior(batch)
        self.latent_norm.finish_calibration()
        self.train(was_training)

    def forward(self, batch: SetBatch) -> dict[str, torch.Tensor]:
        """Per-set objective terms, each [B] in nats: `recon`, `size`, `kl`; and `distance`, the set loss
        (in normalised units when config.normalize)."""
        batch = self._normalize(batch)
        mean, log_var = self._posterior(batch)
        if log_var is None:
            z, kl = mean, torch.zeros_like(mean[:, 0])
        else:
            z = mean + (0.5 * log_var).exp() * torch.randn_like(mean)
            kl = 0.5 * (mean.pow(2) + log_var.exp() - log_var - 1.0).sum(1)
        return {**self._negative_log_likelihood(batch, z), "kl": kl}

    def _negative_log_likelihood(self, batch: SetBatch, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """−log p(X | z) split into `recon` and `size` [B] (nats), and `distance`, for a normalised batch."""
        points, padding_mask = self.decoder(z, batch.sizes)
        points = points.float()  # distances in float32, also under bf16 autocast
        loss_fn, count = LOSSES[self.config.loss]
        distance = loss_fn(points, batch.points, padding_mask, batch.padding_mask, reduction="none")
        recon = distance * batch.sizes / (count * 2 * self.config.point_sigma**2)
        size = self.decoder.size_nll(z, batch.sizes)
        return {"recon": recon, "size": size, "distance": distance}

    @torch.no_grad()
    def importance_bound(self, batch: SetBatch, num_samples: int = 64) -> torch.Tensor:
        """The importance-weighted bound (Burda et al., 2016) per set [B], in nats, VAEs only:

            log p(X) ≥ log (1/K) Σ_k p(X | z_k) p(z_k) / q(z_k | X),   z_k ~ q(z | X),

        with −log p(X | z) = recon + size as in training; K = 1 gives the ELBO in expectation, larger K a
        tighter bound.
        """
        if not self.config.variational:
            raise SetaeError("importance_bound() needs a variational model")
        batch = self._normalize(batch)
        mean, log_var = self._posterior(batch)
        std = (0.5 * log_var).exp()
        prior, posterior = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(mean, std)
        log_weights = []
        for _ in range(num_samples):
            z = mean + std * torch.randn_like(mean)
            nll = self._negative_log_likelihood(batch, z)
            log_weights.append(
                -(nll["recon"] + nll["size"]) + prior.log_prob(z).sum(1) - posterior.log_prob(z).sum(1)
            )
        return torch.logsumexp(torch.stack(log_weights, 1), 1) - math.log(num_samples)

    # ---- the public API on lists of sets -------------------------------------------------------------

    @torch.no_grad()
    def encode(self, sets: Sequence, batch_size: int = 512) -> torch.Tensor:
        """sets: list of [n_i, d] tensors or arrays (n_i may be 0) -> codes [B, latent].

        For a VAE the code is the posterior mean."""
        c = self.config
        checked = as_point_sets(sets, dim=c.point_dim, max_size=c.max_size)
        if not checked:
            return torch.zeros(0, c.latent_dim)
        device = next(self.parameters()).device
        with _eval_mode(self):
            codes = [
                self.posterior(SetBatch.from_sets(checked[i : i + batch_size]).to(device))[0]
                for i in range(0, len(checked), batch_size)
            ]
        return torch.cat(codes).cpu()

    @torch.no_grad()
    def decode(self, z: torch.Tensor, seed: int = 0, batch_size: int = 512) -> list[torch.Tensor]:
        """z [B, latent] -> B sets [m_i, d], m_i predicted by the model; `seed` fixes any sampling."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise SetaeError(f"decode: z has shape {tuple(z.shape)}; expected [B, {self.config.latent_dim}]")
        device = next(self.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        out: list[torch.Tensor] = []
        with _eval_mode(self):
            for i in range(0, z.shape[0], batch_size):
                chunk = z[i : i + batch_size].to(device)
                sizes = self.decoder.predict_sizes(chunk)
                points, _ = self.decoder(chunk, sizes, generator=generator)
                if self.config.normalize:
                    points = points * self.point_std + self.point_mean
                out.extend(p[: int(n)].cpu() for p, n in zip(points, sizes, strict=True))
        return out

    def reconstruct(self, sets: Sequence, seed: int = 0) -> list[torch.Tensor]:
        """decode(encode(sets))."""
        return self.decode(self.encode(sets), seed=seed)

    def sample(self, k: int, seed: int = 0) -> list[torch.Tensor]:
        """k sets decoded from prior samples z ~ N(0, I) (variational models only)."""
        if not self.config.variational:
            raise SetaeError(
                "sample() needs a variational model (this one was trained with variational=False)"
            )
        generator = torch.Generator().manual_seed(seed)
        return self.decode(torch.randn(k, self.config.latent_dim, generator=generator), seed=seed)


class _eval_mode:
    """Context manager: run a module in eval mode, then restore its previous mode."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self) -> None:
        self.was_training = self.module.training
        self.module.eval()

    def __exit__(self, *exc) -> None:
        self.module.train(self.was_training)
