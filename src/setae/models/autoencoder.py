"""Set autoencoders: a permutation-invariant encoder, a latent code, and a set decoder that predicts the size.

Encoding. The encoder pools the set to a vector e; since attention pooling is a weighted mean and cannot
count, the set size enters directly: h = [e, n/N_max, log(1+n)/log(1+N_max)]. A linear map gives the code
(or the posterior mean), followed by an affine-free batch norm and a scale γ: standardising the code across
a batch stops the reconstruction gradient from shrinking the codes' variation until z carries nothing (a
collapse seen with Chamfer training). For the VAE this is BN-VAE (Zhu et al. 2020): the batch mean of μ²
is γ² per dimension, so the KL keeps a floor of latent·γ²/2 nats and never collapses. With γ = 1 that part
of the KL is constant and nothing pulls the aggregate posterior towards N(0, I); with γ < 1, or a learned
γ (`latent_scale_learned`; at the KL's optimum for a given signal-to-noise ratio γ² + σ² = 1), the codes'
spread plus the posterior noise match the prior's unit variance. `latent_standardize=False` drops the
standardisation (a plain β-VAE): on MNIST its codes settled in 8 active directions at 47 nats of KL against
the default's 22 at 77, with a Chamfer 1.5× as large after the same 16,000 steps
(benchmarks/results/demo_variants.md).

A latent set (`latent_set` = K > 0; Set Transformer's route from set to set through a smaller set, Lee et
al. 2019): the Set Transformer encoder pools with K PMA seeds to e_1..e_K, one linear map shared by the K
gives each element z_j ∈ R^{d_k}, d_k = latent / K, and the code is z = [z_1, ..., z_K] flattened [B, K·d_k],
element after element, so the KL, the batch norm, γ and the fitted prior treat it as the vector it is. The
TSPN decoder cross-attends to {z_1, ..., z_K} as a set (setae.nn.decoders.tspn). The seeds fix which
element is which: permuting the seeds permutes the elements, and decoding ignores their order.

Sampling: `sample()` draws codes from N(0, I) or, once fitted after training, from a Gaussian mixture fitted
to the training codes (`FittedPrior`), which puts samples where the codes are.

Decoding: with `point_refiner` > 0, once fitted after training (`fit_point_refiner`, the rest frozen), every
decoded set goes through a point-wise field x + Δ(x, z) (setae.nn.point_refiner) in `decode` and in the
evaluation-time terms, so `recon` and the ELBO score the refined set; training itself decodes without it.

Objective, per set X of n points in R^d, in nats:

    recon(X) = Σ_matched |x − y|² / (2σ²)      Gaussian point likelihood with std σ (`point_sigma`), up to
                                                 a constant; for Chamfer the two directed sums are averaged
    size(X)  = −log p(n | z)                    the decoder's size model
    kl(X)    = KL(q(z | X) ‖ N(0, I))            variational models only

and training minimises mean(recon + size + β·kl), so β = 1 gives the negative ELBO. With a weight
`prior_mmd` = w > 0, training adds w·MMD²(the batch's codes z, N(0, I)) (InfoVAE; setae.nn.prior_mmd): the
KL is per set, the MMD pulls the codes of all sets together towards the prior. With `aggregate_kl` = w > 0
it adds w·KL(N(m, C) ‖ N(0, I)), m and C the running mean and covariance of the aggregate posterior
(setae.nn.aggregate_kl): every direction of the codes' spread plus noise is pulled to unit variance. With
`prior_adversary` = λ > 0 a discriminator learns to tell N(0, I) draws from the posterior samples z and the
codes minimise λ times its non-saturating loss (the adversarial autoencoder; setae.nn.prior_adversary). With
`adversary="label"`, a classifier learns the label from the code (posterior mean, standardised: before the
scale γ) and the code is trained to confuse it (setae.nn.adversary): the code hides the label, which a
conditional decoder is given, so z keeps the style. With `label_centering`, each label's mean code is
subtracted from the standardised code (setae.nn.normalization.LabelCentering): all labels then share one mean
code, so no linear classifier reads the label from z better than a constant guess.

Decoders with a likelihood of their own (`LIKELIHOOD_DECODERS`: the stroke decoder, the point process) give
recon + size = −log p(X | z) exactly instead; the point process's recon is −Σ_i log f(x_i | z) − log n!
(setae.nn.decoders.point_process), on points dequantised by uniform noise when `dequantize` > 0.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from setae.datasets.batch import SetBatch, as_point_sets
from setae.errors import SetaeError
from setae.fileio import write_bytes, write_json
from setae.models.config import LIKELIHOOD_DECODERS, LOSSES, ModelConfig, build_decoder, build_encoder
from setae.models.fitted_prior import FittedPrior
from setae.nn.adversary import LabelAdversary
from setae.nn.aggregate_kl import AggregatePosteriorKL
from setae.nn.decoders import DSPNDecoder, padding_mask_from_sizes
from setae.nn.losses import chamfer_loss
from setae.nn.normalization import BatchStandardize, LabelCentering
from setae.nn.point_refiner import PointRefiner
from setae.nn.prior_adversary import PriorAdversary
from setae.nn.prior_mmd import mmd_to_standard_normal
from setae.versions import versions

CHECKPOINT_FORMAT = "setae-checkpoint-1"  # model.safetensors + meta.json (setae.training.checkpoint)


class SetAutoencoder(nn.Module):
    """Vanilla (variational=False) or variational set autoencoder; see the module docstring for the maths."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        if config.unresolved():
            raise SetaeError(
                f"model config: {', '.join(config.unresolved())} not set; give them, or let training derive "
                "them from the data (setae.training.data.resolve_from_data)"
            )
        self.config = config
        self.encoder = build_encoder(config)
        # A latent set: one linear map, shared by the K pooled vectors, gives each element's d_k numbers.
        elements = max(1, config.latent_set)
        width = self.encoder.out_dim // elements + 2
        out = (2 if config.variational else 1) * config.latent_dim // elements
        self.to_latent = nn.Linear(width, out)
        if config.conditional:  # additive label embeddings = a one-hot label concatenated before a linear map
            if config.encoder_label:
                self.label_to_encoder = nn.Embedding(config.num_classes, width)
            # one embedding added to each of a latent set's elements, so their order stays free
            self.label_to_decoder = nn.Embedding(config.num_classes, config.latent_dim // elements)
        # A tiny eps: with BatchNorm's 1e-5 the encoder escaped the standardisation by shrinking the pre-norm
        # variance below eps (observed under the VAE's KL pressure), and the codes collapsed again.
        self.latent_norm = (
            BatchStandardize(config.latent_dim, eps=1e-12) if config.latent_standardize else nn.Identity()
        )
        if config.label_centering:
            self.label_centering = LabelCentering(config.num_classes, config.latent_dim)
        scale = torch.full((config.latent_dim,), config.latent_scale)
        if config.latent_scale_learned:
            self.latent_scale = nn.Parameter(scale)
        else:
            self.register_buffer("latent_scale", scale)
        if config.aggregate_kl > 0:
            self.aggregate_kl = AggregatePosteriorKL(config.latent_dim)
        if config.prior_adversary > 0:
            self.prior_adversary = PriorAdversary(config.latent_dim, config.prior_adversary)
        if config.variational and config.prior_components > 0:
            self.fitted_prior = FittedPrior(config.latent_dim, config.prior_components)
        self.decoder = build_decoder(config)
        if config.point_refiner > 0 and config.decoder not in LIKELIHOOD_DECODERS:
            self.point_refiner = PointRefiner(
                config.latent_dim, config.point_dim, config.point_refiner, config.point_sigma
            )
        if config.adversary == "label":
            self.adversary = LabelAdversary(config.latent_dim, config.num_classes, config.adversary_weight)
        # Per-dimension standardisation of points (config.normalize), set from the training data; outputs are
        # mapped back, so users see their own units.
        self.register_buffer("point_mean", torch.zeros(config.point_dim))
        self.register_buffer("point_std", torch.ones(config.point_dim))

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardise points with the training points' per-dimension mean and std [D]."""
        self.point_mean.copy_(mean)
        self.point_std.copy_(std.clamp(min=1e-6))

    def set_point_moments(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The training points' per-dimension mean and std [D], in data units: the standardisation of points
        when config.normalize (`set_normalization`), and the point-process decoder's frame, in the model's
        units (so the identity when normalising)."""
        if self.config.normalize:
            self.set_normalization(mean, std)
            mean, std = torch.zeros_like(mean), torch.ones_like(std)
        if self.config.decoder == "pointprocess":
            self.decoder.set_frame(mean, std)

    def _checked_labels(self, labels: torch.Tensor) -> torch.Tensor:
        bad = (labels < 0) | (labels >= self.config.num_classes)
        if bool(bad.any()):
            who = "conditional model" if self.config.conditional else "label adversary"
            raise SetaeError(
                f"{who}: set {int(bad.nonzero()[0, 0])} has label {int(labels[bad][0])}; "
                f"every set needs a label in 0..{self.config.num_classes - 1}"
            )
        return labels

    def _decoder_input(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z, plus the label's embedding for a conditional model (to each element of a latent set)."""
        if not self.config.conditional:
            return z
        return z + self.label_to_decoder(self._checked_labels(labels)).repeat(
            1, max(1, self.config.latent_set)
        )

    def _corrupt(self, batch: SetBatch) -> SetBatch:
        """Denoising input: each point dropped with probability corrupt_drop, coordinates jittered by
        N(0, corrupt_jitter²)."""
        c = self.config
        dropped = torch.rand(batch.padding_mask.shape, device=batch.points.device) < c.corrupt_drop
        mask = batch.padding_mask | dropped
        noise = c.corrupt_jitter * torch.randn_like(batch.points)
        return SetBatch(
            (batch.points + noise).masked_fill(mask[..., None], 0.0), mask, (~mask).sum(1), batch.labels
        )

    def _dequantize(self, batch: SetBatch) -> SetBatch:
        """The point process's targets: each point plus u ~ U(−h/2, h/2)^d, h = config.dequantize, in data
        units, drawn from the global RNG (`density_constant` accounts for the cells' volume h^d)."""
        h = self.config.dequantize
        noise = h * (torch.rand_like(batch.points) - 0.5)
        points = (batch.points + noise).masked_fill(batch.padding_mask[..., None], 0.0)
        return SetBatch(points, batch.padding_mask, batch.sizes, batch.labels)

    @property
    def _dequantizes(self) -> bool:
        """Whether targets are dequantised: a likelihood model (not the stroke decoder) with dequantize > 0
        (the point process from training on; any other at evaluation, `dequantized`)."""
        c = self.config
        return bool(c.dequantize) and self.has_likelihood_bound and c.decoder != "strokes"

    @contextlib.contextmanager
    def dequantized(self, cell: float):
        """Within the block, score dequantised targets with cell width `cell` (data units), so that
        `density_constant`, `forward` and `importance_bound` give bounds on the probability of the discrete
        sets: how a model trained on grid points (MNIST pixels) without dequantisation is compared in nats
        with one trained with it."""
        saved = self.config.dequantize
        self.config.dequantize = cell
        try:
            yield self
        finally:
            self.config.dequantize = saved

    def _normalize(self, batch: SetBatch) -> SetBatch:
        if not self.config.normalize:
            return batch
        points = ((batch.points - self.point_mean) / self.point_std).masked_fill(
            batch.padding_mask[..., None], 0
        )
        return SetBatch(points, batch.padding_mask, batch.sizes, batch.labels)

    # ---- training-time computation on padded batches -------------------------------------------------

    def posterior(self, batch: SetBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Code (vanilla) or posterior mean and log-variance (VAE), each [B, latent], of the sets the encoder
        reads (`batch.encoder_input`: a pair's input set)."""
        return self._posterior(self._normalize(batch.encoder_input))

    def _encoder_input(self, batch: SetBatch) -> torch.Tensor:
        """The encoder reads the points [B, n, d]; drawings with stroke_position also the pen's absolute
        position after each step, Σ_{j≤t} Δ_j / stroke_position [B, n, 2]."""
        c = self.config
        if not (c.decoder == "strokes" and c.stroke_position):
            return batch.points
        points = batch.points.masked_fill(batch.padding_mask[..., None], 0.0)
        return torch.cat([points, points[..., :2].cumsum(1) / c.stroke_position], -1)

    def _posterior(self, batch: SetBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        standardized, log_var = self._standardized_posterior(batch)
        return self.latent_scale * standardized, log_var

    def _standardized_posterior(self, batch: SetBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The code (posterior mean) before the scale γ, unit variance per dimension over the batch (less
        its label's mean code with label centring), and the log-variance (None for a plain autoencoder)."""
        c = self.config
        n = batch.sizes.to(batch.points.dtype)[:, None]
        size_features = torch.cat([n / c.max_size, torch.log1p(n) / math.log1p(c.max_size)], dim=1)
        elements = max(1, c.latent_set)
        pooled = self.encoder(self._encoder_input(batch), batch.padding_mask).view(len(n), elements, -1)
        h = torch.cat([pooled, size_features[:, None].expand(-1, elements, -1)], 2)
        if c.conditional and c.encoder_label:
            h = h + self.label_to_encoder(self._checked_labels(batch.labels))[:, None]
        h = self.to_latent(h)  # [B, K, (2·)d_k], flattened element after element
        if c.variational:
            mean, log_var = (part.flatten(1) for part in h.chunk(2, dim=2))
            mean, log_var = self.latent_norm(mean), log_var.clamp(-12.0, 8.0)
        else:
            mean, log_var = self.latent_norm(h.flatten(1)), None
        if c.label_centering:
            mean = self.label_centering(mean, self._checked_labels(batch.labels))
        return mean, log_var

    @torch.no_grad()
    def calibrate_latent_norm(self, batches: Sequence[SetBatch]) -> None:
        """Set the code standardisation's inference statistics to the exact average over `batches`.

        The pre-norm codes can have a small variance and a drifting mean, so the usual running average
        lags behind and shifts codes at inference by several standard deviations; a fresh average over
        training batches with the current weights does not ("precise BN"). With label centring, each
        label's mean code is then set to its exact mean over `batches`."""
        was_training = self.training
        self.train()
        if self.config.latent_standardize:
            self.latent_norm.start_calibration()
            for batch in batches:
                self.posterior(batch)
            self.latent_norm.finish_calibration()
        if self.config.label_centering:  # each label's exact mean of the codes, as inference computes them
            self.eval()
            kept = self.label_centering.label_mean.clone()
            self.label_centering.label_mean.zero_()
            inputs = [self._normalize(batch.encoder_input) for batch in batches]
            codes = torch.cat([self._standardized_posterior(b)[0] for b in inputs])
            self.label_centering.label_mean.copy_(kept)
            self.label_centering.fit(codes, torch.cat([b.labels for b in inputs]))
        self.train(was_training)

    def forward(self, batch: SetBatch, loss: str | None = None) -> dict[str, torch.Tensor]:
        """Per-set objective terms, each [B] in nats: `recon`, `size`, `kl`, with an adversary its cross
        entropy `adversary` and the code's `confusion` (both added to the loss; each reaches only its own
        side, setae.nn.adversary) and, for the classifier's further steps, the detached `code` it read
        [B, latent]; and `distance`, the set loss (in normalised units when
        config.normalize). For pairs (`batch.source`, setae.datasets.pairs) the encoder reads the input
        sets and the terms score the targets, `batch`: q(z | X), p(Y | z). A denoising model encodes a
        corrupted copy in training. `loss` names a set loss to use instead of config.loss (a warm-up). With
        `dequantize` > 0 the
        point process scores dequantised points (`_dequantize`, in training and eval alike, so evaluation
        estimates the bound on the grid cells' probability) while the encoder reads the clean set."""
        c = self.config
        denoising = self.training and (c.corrupt_drop > 0 or c.corrupt_jitter > 0)
        source = self._corrupt(batch.encoder_input) if denoising else batch.encoder_input
        raw, batch = batch, self._normalize(batch)
        standardized, log_var = self._standardized_posterior(
            batch if source is raw else self._normalize(source)
        )
        mean = self.latent_scale * standardized
        if log_var is None:
            z, kl = mean, torch.zeros_like(mean[:, 0])
        else:
            z = mean + (0.5 * log_var).exp() * torch.randn_like(mean)
            kl = 0.5 * (mean.pow(2) + log_var.exp() - log_var - 1.0).sum(1)
        target = self._normalize(self._dequantize(raw)) if self._dequantizes else batch  # after z, as in IWAE
        terms = {**self._negative_log_likelihood(target, z, loss), "kl": kl}
        if self.training and c.prior_mmd > 0:  # a regulariser of the batch's codes, not part of the ELBO
            terms["prior_mmd"] = (c.prior_mmd * mmd_to_standard_normal(z)).expand(len(z))
        if self.training and c.aggregate_kl > 0:
            terms["aggregate_kl"] = (c.aggregate_kl * self.aggregate_kl(mean, log_var)).expand(len(z))
        if self.training and c.prior_adversary > 0:
            terms.update(self.prior_adversary(z))
        if c.adversary == "label":
            # The classifier reads the code before γ, in the units of the probe (standardised per
            # dimension): a dimension scaled towards 0 would otherwise hide the label from it, not remove it.
            labels = self._checked_labels(batch.labels)
            terms.update(self.adversary(standardized, labels), code=standardized.detach())
        return terms

    def _negative_log_likelihood(
        self, batch: SetBatch, z: torch.Tensor, loss: str | None = None
    ) -> dict[str, torch.Tensor]:
        """−log p(X | z) split into `recon` and `size` [B] (nats), and `distance`, for a normalised batch.

        In training, an iterative decoder's earlier estimates are supervised too: `recon` is then the mean
        over its steps (DSPN's deep supervision; the earlier sets by Chamfer) plus, for DSPN, its weighted
        `representation_loss`, and `size` includes the decoder's `auxiliary_nll` (DSPN's presence); in eval
        mode both are the final set's −log p alone. Decoders with a likelihood of their own
        (LIKELIHOOD_DECODERS) return theirs, exact (`loss` does not apply)."""
        decoder_input = self._decoder_input(z, batch.labels)
        if self.config.decoder in LIKELIHOOD_DECODERS:
            return self.decoder.nll(decoder_input, batch)
        out = self.decoder(decoder_input, batch.sizes)
        if not self.training and self.has_point_refiner:
            out = out._replace(points=self.point_refiner(out.points, decoder_input, out.padding_mask))
        loss_fn, count = LOSSES[loss or self.config.loss]

        def set_loss(points: torch.Tensor, fn=loss_fn) -> torch.Tensor:  # float32, also under bf16 autocast
            return fn(points.float(), batch.points, out.padding_mask, batch.padding_mask, reduction="none")

        distance = set_loss(out.points)
        supervised = distance
        if self.training and out.steps:
            # The earlier estimates by Chamfer, in the final loss's units: with a matching at every inner
            # step, DSPN took 2.7x as long a training step (102 against 277 steps in 90 s on 2 CPU cores).
            chamfer, chamfer_count = LOSSES["chamfer"]
            earlier = (set_loss(p, chamfer) * (count / chamfer_count) for p in out.steps)
            supervised = torch.stack([*earlier, distance]).mean(0)
        if self.training and isinstance(self.decoder, DSPNDecoder):
            representation = self.decoder.representation_loss(decoder_input, batch.points, batch.padding_mask)
            supervised = supervised + self.decoder.representation_weight * representation
        recon = supervised * batch.sizes / (count * 2 * self.config.point_sigma**2)
        size = out.size_nll
        if self.training and out.auxiliary_nll is not None:
            size = size + out.auxiliary_nll
        return {"recon": recon, "size": size, "distance": distance}

    @property
    def has_likelihood_bound(self) -> bool:
        """Whether recon + size + `density_constant` bounds −log p(X | z) from above: true for a one-to-one
        matching loss (Hungarian, or Sinkhorn, whose value is at least the matching's) and for the decoders
        with a likelihood of their own (`has_exact_likelihood`); Chamfer is not a likelihood."""
        return self.has_exact_likelihood or self.config.loss in ("hungarian", "sinkhorn")

    @property
    def has_exact_likelihood(self) -> bool:
        """Whether recon + size + `density_constant` is −log p(X | z) itself (the stroke decoder and the
        point process; for a dequantised point process, its expectation over the noise bounds the grid
        cells' −log P(X | z)), not a matching's bound."""
        return self.config.decoder in LIKELIHOOD_DECODERS

    def density_constant(self, sizes: torch.Tensor) -> torch.Tensor:
        """[B] nats that turn recon into a negative log density for sets of `sizes` [B]: the Gaussian point
        normaliser n·(d/2)·log(2πσ²) and, with config.normalize, the Jacobian n·Σ_d log s_d of mapping points
        to standardised units. With them, for the set density p(X | z) = p(n | z) Σ_π Π_i N(x_i; y_π(i), σ²I)
        (the outputs in every order; a set of n points counted once),

            −log p(X | z) ≤ recon + size + density_constant,   recon = Σ_i |x_i − y_π*(i)|² / (2σ²),

        π* the optimal matching: the sum over π is at least its largest term. (No k! appears: it is the
        number of orderings, already summed over.) The stroke decoder's likelihood is complete: 0.

        The point process's f is a normalised density, so it has no Gaussian normaliser: its constant is the
        Jacobian. Dequantised with cell width h = config.dequantize (`_dequantizes`), every model adds
        −n·d·log h: the grid cells C(X) of volume h^{nd} have probability P(X) = ∫_C p = h^{nd} E_u[p(X + u)]
        ≥ h^{nd} exp E_u[log p(X + u)] (Jensen), u ~ U(−h/2, h/2)^{nd}, so with the recon of the dequantised
        points,

            −log P(X | z) ≤ E_u[recon + size + density constant without dequantisation] − n·d·log h,

        and the reported ELBO / IWAE bound the probability of the discrete sets, not a density."""
        c = self.config
        if c.decoder == "strokes":
            return torch.zeros_like(sizes, dtype=torch.float32)
        per_point = 0.0
        if c.decoder != "pointprocess":
            per_point += 0.5 * c.point_dim * math.log(2 * math.pi * c.point_sigma**2)
        if self._dequantizes:
            per_point -= c.point_dim * math.log(c.dequantize)
        if c.normalize:
            per_point += float(self.point_std.log().sum())
        return sizes.to(torch.float32) * per_point

    @torch.no_grad()
    def importance_bound(self, batch: SetBatch, num_samples: int = 64) -> torch.Tensor:
        """The importance-weighted bound (Burda et al., 2016) per set [B], in nats, VAEs only:

            log p(X) ≥ log (1/K) Σ_k p(X | z_k) p(z_k) / q(z_k | X),   z_k ~ q(z | X),

        with −log p(X | z) bounded by recon + size + density_constant (`density_constant`); K = 1 gives the
        ELBO in expectation, larger K a tighter bound. Only models with `has_likelihood_bound`. A dequantised
        point process draws fresh noise u_k with each z_k: importance sampling of (z, u) from q(z | X) U(u), a
        bound on the grid cells' log P(X) (`density_constant`).
        """
        if not self.config.variational or not self.has_likelihood_bound:
            raise SetaeError(
                "importance_bound() needs a variational model with a likelihood (Hungarian or Sinkhorn loss, "
                "or the strokes or pointprocess decoder)"
            )
        constant = self.density_constant(batch.sizes).to(batch.points.device)
        mean, log_var = self.posterior(batch)
        raw, batch = batch, self._normalize(batch)
        std = (0.5 * log_var).exp()
        prior, posterior = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(mean, std)
        log_weights = []
        for _ in range(num_samples):
            z = mean + std * torch.randn_like(mean)
            target = self._normalize(self._dequantize(raw)) if self._dequantizes else batch
            nll = self._negative_log_likelihood(target, z)
            log_weights.append(
                -(nll["recon"] + nll["size"]) + prior.log_prob(z).sum(1) - posterior.log_prob(z).sum(1)
            )
        return torch.logsumexp(torch.stack(log_weights, 1), 1) - math.log(num_samples) - constant

    # ---- the public API on lists of sets -------------------------------------------------------------

    def _label_tensor(self, labels, count: int, what: str) -> torch.Tensor:
        """Labels for `count` sets as a long tensor [count]: required (and checked) for a conditional model,
        ignored (−1) otherwise; an int means the same label for all."""
        if not self.config.conditional:
            return torch.full((count,), -1, dtype=torch.long)
        if labels is None:
            raise SetaeError(f"{what}: this conditional model needs labels (label=... / labels=[...])")
        out = torch.as_tensor(labels, dtype=torch.long).reshape(-1).expand(count).clone()
        return self._checked_labels(out) if count else out

    def encode(self, sets: Sequence, batch_size: int = 512, labels=None, grad: bool = False) -> torch.Tensor:
        """sets: list of [n_i, d] tensors or arrays (n_i may be 0) -> codes [B, latent] (on the CPU).

        For a VAE the code is the posterior mean. A conditional model needs the sets' `labels` [B]. With
        `grad=True` the codes stay on the model's device with their graph, differentiable with respect to
        the model's parameters and the input tensors (which may require grad)."""
        c = self.config
        checked = as_point_sets(sets, dim=c.point_dim, max_size=c.max_size)
        if not checked:
            return torch.zeros(0, c.latent_dim)
        labels = self._label_tensor(labels, len(checked), "encode").tolist()
        device = next(self.parameters()).device
        with _eval_mode(self), torch.set_grad_enabled(grad):
            codes = [
                self.posterior(
                    SetBatch.from_sets(checked[i : i + batch_size], labels[i : i + batch_size]).to(device)
                )[0]
                for i in range(0, len(checked), batch_size)
            ]
        return torch.cat(codes) if grad else torch.cat(codes).cpu()

    def latent_elements(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, latent] -> the latent sets [B, K, latent / K] (K = config.latent_set; 1 for a vector)."""
        return codes.reshape(codes.shape[0], max(1, self.config.latent_set), -1)

    def pooled_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, latent] -> the mean of each latent set's K elements [B, latent / K], invariant to their
        order (the codes themselves for a single vector)."""
        return self.latent_elements(codes).mean(1)

    def save(self, path: str | Path) -> Path:
        """Write the model (weights in safetensors, its config in meta.json) into the folder `path`;
        `setae.load(path)` reads it back. Atomic per file."""
        folder = Path(path)
        weights = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        write_bytes(folder / "model.safetensors", save_safetensors(weights))
        meta = {"format": CHECKPOINT_FORMAT, "step": None, "config": {"model": asdict(self.config)}}
        write_json(folder / "meta.json", {**meta, **versions()})
        return folder

    @torch.no_grad()
    def decode(
        self, z: torch.Tensor, seed: int = 0, batch_size: int = 512, labels=None
    ) -> list[torch.Tensor]:
        """z [B, latent] -> B sets [m_i, d], m_i predicted by the model; `seed` fixes any sampling.

        A conditional model needs `labels` [B] (or one int for all)."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise SetaeError(f"decode: z has shape {tuple(z.shape)}; expected [B, {self.config.latent_dim}]")
        labels = self._label_tensor(labels, z.shape[0], "decode")
        device = next(self.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        out: list[torch.Tensor] = []
        with _eval_mode(self):
            for i in range(0, z.shape[0], batch_size):
                chunk = self._decoder_input(
                    z[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)
                )
                if self.config.decoder == "strokes":
                    points, mask = self.decoder.generate(
                        chunk, generator, self.config.max_size, self.config.decoder_temperature
                    )
                    sizes = (~mask).sum(1)
                else:
                    sizes = self.decoder.predict_sizes(chunk)
                    points = self.decoder(chunk, sizes, generator=generator).points
                    if self.has_point_refiner:
                        mask = padding_mask_from_sizes(sizes, points.shape[1])
                        points = self.point_refiner(points, chunk, mask)
                if self.config.normalize:
                    points = points * self.point_std + self.point_mean
                out.extend(p[: int(n)].cpu() for p, n in zip(points, sizes, strict=True))
        return out

    def reconstruct(self, sets: Sequence, seed: int = 0, labels=None) -> list[torch.Tensor]:
        """decode(encode(sets)); a conditional model needs the sets' `labels`. A model trained on pairs
        (set to set) gives its predicted targets of the input `sets` (e.g. the completed digits)."""
        return self.decode(self.encode(sets, labels=labels), seed=seed, labels=labels)

    @property
    def has_point_refiner(self) -> bool:
        """Whether decoded sets go through a fitted point refiner (`fit_point_refiner`)."""
        return hasattr(self, "point_refiner") and self.point_refiner.is_fitted

    def fit_point_refiner(self, batches: Iterable[SetBatch], seed: int = 0, lr: float = 1e-3) -> None:
        """Fit the point refiner (setae.nn.point_refiner) alone: one Adam step of the Chamfer loss per batch
        of training sets, between the refined decoded set and the set, the rest of the model frozen in eval
        mode (codes are posterior means, sizes the true ones; `seed` fixes any sampling of the decoder)."""
        if not hasattr(self, "point_refiner"):
            raise SetaeError(
                "fit_point_refiner() needs point_refiner > 0 and a decoder trained with a set loss"
            )
        refiner = self.point_refiner
        optimizer = torch.optim.Adam(refiner.parameters(), lr=lr)
        generator = torch.Generator(device=refiner.angular.device).manual_seed(seed)
        with _eval_mode(self):
            for batch in batches:
                with torch.no_grad():
                    target = self._normalize(batch)
                    z = self._decoder_input(self.posterior(batch)[0], batch.labels)
                    out = self.decoder(z, target.sizes, generator=generator)
                refined = refiner(out.points, z, out.padding_mask)
                loss = chamfer_loss(refined, target.points, out.padding_mask, target.padding_mask)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        refiner.fitted.fill_(1)

    @property
    def has_fitted_prior(self) -> bool:
        return hasattr(self, "fitted_prior") and self.fitted_prior.is_fitted

    @torch.no_grad()
    def fit_prior(self, sets: Sequence, labels=None, seed: int = 0) -> None:
        """Fit the Gaussian mixture of `sample(prior="fitted")` to the codes (posterior means) of `sets`."""
        if not hasattr(self, "fitted_prior"):
            raise SetaeError("fit_prior() needs a variational model with prior_components > 0")
        codes = self.encode(sets, labels=labels)
        if len(codes) < len(self.fitted_prior.weights):
            raise SetaeError(
                f"fit_prior: {len(codes)} sets for {len(self.fitted_prior.weights)} mixture components"
            )
        self.fitted_prior.fit(codes, seed=seed)

    def sample(self, k: int, seed: int = 0, label=None, prior: str | None = None) -> list[torch.Tensor]:
        """k sets decoded from prior samples (variational models only): `prior="normal"` draws z ~ N(0, I),
        `"fitted"` from the mixture fitted to the training codes (`fit_prior`); the default is "fitted" when
        the model has one. A conditional model generates the digit (class) `label`: one int, or k of them."""
        if not self.config.variational:
            raise SetaeError(
                "sample() needs a variational model (this one was trained with variational=False)"
            )
        prior = prior or ("fitted" if self.has_fitted_prior else "normal")
        if prior not in ("fitted", "normal"):
            raise SetaeError(f"sample: prior={prior!r} is not one of fitted, normal")
        if prior == "fitted" and not self.has_fitted_prior:
            raise SetaeError("sample: this model has no fitted prior (fit_prior() after training)")
        generator = torch.Generator().manual_seed(seed)
        if prior == "fitted":
            z = self.fitted_prior.sample(k, generator).float()
        else:
            z = torch.randn(k, self.config.latent_dim, generator=generator)
        # The decoder's own noise from another stream than z's.
        return self.decode(z, seed=seed + 1_000_003, labels=label)


class _eval_mode:
    """Context manager: run a module in eval mode, then restore its previous mode."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self) -> None:
        self.was_training = self.module.training
        self.module.eval()

    def __exit__(self, *exc) -> None:
        self.module.train(self.was_training)
