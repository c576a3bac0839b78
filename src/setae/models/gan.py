"""Adversarial set generation (`objective="gan"`): a set generator trained against a set discriminator,
after Stelzner et al., "Generative Adversarial Set Transformers" (2020). There is no encoder and no
likelihood: the model learns by matching distributions, so its training figures are objectives, not nats.

Generator G. A size k ~ p_data(k), the empirical distribution of the training sets' sizes (`size_probs`,
set from the data when training starts), and noise z ~ N(0, I) in R^latent give the decoder input

    g = z + MLP([k/N, log(1+k)/log(1+N)])                       [B, latent]

and a set decoder that transforms k i.i.d. initial elements (TSPN or the slot decoder, setae.nn.decoders)
maps (g, k) to X̃ [B, k, d] (padding rows zero): exchangeable, with exactly the size drawn. The decoder's own
size head is not used (the size comes from the data's distribution) and stays untrained.

Discriminator D (setae.nn.discriminator): a masked set encoder (Set Transformer by default) plus the size
features, one score per set [B]; padding never changes it. Real sets X and generated X̃ are both in the
model's units (standardised when config.normalize); real points on a grid of spacing h = config.dequantize
(MNIST's pixels: 1/27) get uniform noise U(−h/2, h/2)^d first, so that D cannot tell generated sets by
their being off the grid. Losses per set, with `gan_loss`:

    nonsaturating:  L_D = softplus(−D(X)) + softplus(D(X̃)),     L_G = softplus(−D(X̃))
    hinge:          L_D = relu(1 − D(X)) + relu(1 + D(X̃)),       L_G = −D(X̃)

plus, for D, the R1 penalty (Mescheder et al., 2018) on real sets, `gan_r1` = γ > 0,

    R1(X) = (γ/2) Σ_{i ≤ n, j ≤ d} (∂D(X)/∂x_ij)²,

which only sees real rows (padding rows are zeroed before D reads them, so their gradient is zero), and
optionally spectral normalisation of every linear map of D (`gan_spectral`). Training (setae.training.
engine) alternates one step of D on L_D + R1 (X̃ detached) and one step of G on L_G with fresh noise and
sizes, with an Adam optimiser each; all draws use the global torch RNG, so a resumed run repeats exactly.

Sampling: `sample(k, seed)` draws z, the sizes and the initial elements from seeded generators.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from setae.datasets.batch import SetBatch
from setae.errors import SetaeError
from setae.models.autoencoder import SetAutoencoder
from setae.models.config import ModelConfig, build_decoder, build_encoder
from setae.nn.discriminator import SetDiscriminator
from setae.nn.encoders import mlp


class SetGAN(nn.Module):
    """Generator and discriminator of sets; see the module docstring for the maths."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        if config.objective != "gan":
            raise SetaeError(f"SetGAN needs objective='gan', not {config.objective!r}")
        if config.unresolved():
            raise SetaeError(
                f"model config: {', '.join(config.unresolved())} not set; give them, or let training derive "
                "them from the data (setae.training.data.resolve_from_data)"
            )
        self.config = config
        self.size_to_latent = mlp([2, config.latent_dim, config.latent_dim])
        self.generator = build_decoder(config)
        self.discriminator = SetDiscriminator(
            build_encoder(config), config.max_size, 2 * config.encoder_dim, config.gan_spectral
        )
        probs = torch.zeros(config.max_size + 1)
        probs[1:] = 1.0 / config.max_size  # uniform over 1..N until `set_size_distribution`
        self.register_buffer("size_probs", probs)
        self.register_buffer("point_mean", torch.zeros(config.point_dim))
        self.register_buffer("point_std", torch.ones(config.point_dim))

    # ---- set-up from the training data ---------------------------------------------------------------

    def set_point_moments(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The training points' per-dimension mean and std [D]: the standardisation when config.normalize."""
        if self.config.normalize:
            self.point_mean.copy_(mean)
            self.point_std.copy_(std.clamp(min=1e-6))

    def set_size_distribution(self, sizes) -> None:
        """p_data(k): the empirical distribution of the training sets' `sizes` [B] (each <= max_size)."""
        sizes = torch.as_tensor(sizes, dtype=torch.long).reshape(-1)
        if not len(sizes) or int(sizes.min()) < 0 or int(sizes.max()) > self.config.max_size:
            raise SetaeError(f"set_size_distribution: sizes must lie in 0..{self.config.max_size}")
        counts = torch.bincount(sizes, minlength=self.config.max_size + 1).float()
        self.size_probs.copy_(counts / counts.sum())

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.size_to_latent.parameters(), *self.generator.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    # ---- the two players on padded batches (model units) ---------------------------------------------

    def draw_sizes(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """k ~ p_data(k), [count] long, on the model's device."""
        probs = self.size_probs if generator is None else self.size_probs.cpu()
        sizes = torch.multinomial(probs, count, replacement=True, generator=generator) if count else None
        return (sizes if sizes is not None else torch.zeros(0, dtype=torch.long)).to(self.size_probs.device)

    def generate(
        self, z: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, latent], sizes [B] -> points [B, max(sizes), d] (model units, zero padding), padding_mask."""
        n = sizes.to(z.dtype)[:, None]
        features = torch.cat([n / self.config.max_size, torch.log1p(n) / math.log1p(self.config.max_size)], 1)
        out = self.generator(z + self.size_to_latent(features), sizes, generator=generator)
        return out.points, out.padding_mask

    def _fake(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(count, self.config.latent_dim, device=self.size_probs.device)
        return self.generate(z, self.draw_sizes(count))

    def _real(self, batch: SetBatch) -> torch.Tensor:
        """The real points D reads [B, n, d]: dequantised (+ U(−h/2, h/2), h = config.dequantize, data
        units), then in model units, padding rows zero."""
        points = batch.points
        if self.config.dequantize:
            points = points + self.config.dequantize * (torch.rand_like(points) - 0.5)
        if self.config.normalize:
            points = (points - self.point_mean) / self.point_std
        return points.masked_fill(batch.padding_mask[..., None], 0.0)

    def discriminator_terms(self, batch: SetBatch) -> dict[str, torch.Tensor]:
        """D's objective on real sets `batch` and as many generated ones (detached), each [B]: `d_objective`
        (L_D), `r1` (γ/2 ‖∇_X D(X)‖², zeros when γ = 0), `real_score` D(X), `fake_score` D(X̃)."""
        c = self.config
        real = self._real(batch)
        with torch.no_grad():
            fake, fake_mask = self._fake(len(batch))
        if c.gan_r1 > 0:
            real.requires_grad_(True)
        with (
            sdpa_kernel(SDPBackend.MATH) if c.gan_r1 > 0 else contextlib.nullcontext()
        ):  # twice differentiable
            real_score = self.discriminator(real, batch.padding_mask)
            if c.gan_r1 > 0:
                (grad,) = torch.autograd.grad(real_score.sum(), real, create_graph=True)
                r1 = 0.5 * c.gan_r1 * grad.float().pow(2).sum((1, 2))
            else:
                r1 = torch.zeros_like(real_score)
        fake_score = self.discriminator(fake, fake_mask)
        if c.gan_loss == "hinge":
            objective = F.relu(1 - real_score) + F.relu(1 + fake_score)
        else:
            objective = F.softplus(-real_score) + F.softplus(fake_score)
        return {
            "d_objective": objective,
            "r1": r1,
            "real_score": real_score.detach(),
            "fake_score": fake_score.detach(),
        }

    def generator_terms(self, count: int) -> dict[str, torch.Tensor]:
        """G's objective L_G [count] on `count` fresh generated sets (`g_objective`)."""
        score = self.discriminator(*self._fake(count))
        objective = -score if self.config.gan_loss == "hinge" else F.softplus(-score)
        return {"g_objective": objective}

    # ---- the public API on lists of sets -------------------------------------------------------------

    has_likelihood_bound = False  # no likelihood: no nats, no bound
    has_exact_likelihood = False
    has_fitted_prior = False

    save = SetAutoencoder.save  # weights + config, read back by setae.load

    @torch.no_grad()
    def decode(self, z: torch.Tensor, seed: int = 0, batch_size: int = 512, sizes=None) -> list[torch.Tensor]:
        """z [B, latent] -> B generated sets [k_i, d] in data units; the sizes k_i are `sizes` [B] or drawn
        from p_data(k) under `seed`, which also fixes the initial elements."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise SetaeError(f"decode: z has shape {tuple(z.shape)}; expected [B, {self.config.latent_dim}]")
        device = self.size_probs.device
        if sizes is None:
            sizes = self.draw_sizes(z.shape[0], torch.Generator().manual_seed(seed + 2_000_003))
        sizes = torch.as_tensor(sizes, dtype=torch.long).reshape(-1).to(device)
        bad = len(sizes) and not 0 <= int(sizes.min()) <= int(sizes.max()) <= self.config.max_size
        if len(sizes) != z.shape[0] or bad:
            raise SetaeError(f"decode: need {z.shape[0]} sizes in 0..{self.config.max_size}")
        initial = torch.Generator(device=device).manual_seed(seed + 1_000_003)
        out: list[torch.Tensor] = []
        was_training = self.training
        self.eval()
        try:
            for i in range(0, z.shape[0], batch_size):
                chunk = sizes[i : i + batch_size]
                points, _ = self.generate(z[i : i + batch_size].to(device), chunk, generator=initial)
                if self.config.normalize:
                    points = points * self.point_std + self.point_mean
                out.extend(p[: int(n)].cpu() for p, n in zip(points, chunk, strict=True))
        finally:
            self.train(was_training)
        return out

    def sample(self, k: int, seed: int = 0, label=None, prior: str | None = None) -> list[torch.Tensor]:
        """k generated sets: z ~ N(0, I), sizes ~ p_data(k), all drawn under `seed`. A GAN has one prior
        (`prior` None or "normal") and no labels."""
        if label is not None:
            raise SetaeError("sample: this GAN is not conditional; it takes no label")
        if prior not in (None, "normal"):
            raise SetaeError(f"sample: a GAN samples from its noise N(0, I) only, not prior={prior!r}")
        z = torch.randn(k, self.config.latent_dim, generator=torch.Generator().manual_seed(seed))
        return self.decode(z, seed=seed)

    def _no_encoder(self, what: str):
        raise SetaeError(f"{what}: a GAN (objective='gan') has no encoder; it can only sample()")

    def encode(self, sets, *args, **kwargs):
        self._no_encoder("encode")

    def reconstruct(self, sets, *args, **kwargs):
        self._no_encoder("reconstruct")
