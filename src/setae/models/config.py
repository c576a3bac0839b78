"""What defines a set autoencoder: `ModelConfig` (saved with every checkpoint) and the registries that turn
its names into modules (LOSSES, ENCODERS, DECODERS, `build_encoder`, `build_decoder`)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from setae.errors import SetaeError
from setae.nn.decoders import (
    DSPNDecoder,
    MLPDecoder,
    PointProcessDecoder,
    RNNDecoder,
    SlotDecoder,
    TSPNDecoder,
)
from setae.nn.decoders.point_process import DENSITIES, SAMPLINGS
from setae.nn.encoders import ORDERS, DeepSets, RNNEncoder, SetTransformer
from setae.nn.losses import chamfer_loss, hungarian_loss, sinkhorn_loss
from setae.nn.sequence import StrokeDecoder
from setae.nn.size_heads import SIZE_HEADS

# loss name -> (per-set loss, how many times each point is counted by n · loss)
LOSSES = {
    "chamfer": (chamfer_loss, 2.0),
    "hungarian": (hungarian_loss, 1.0),
    "sinkhorn": (sinkhorn_loss, 1.0),
}
ENCODERS = ("settransformer", "deepsets", "rnn")
ADVERSARIES = ("none", "label")
OBJECTIVES = ("autoencoder", "gan")
GAN_LOSSES = ("nonsaturating", "hinge")
# Decoders that transform a sampled initial set (setae.nn.decoders.base.SampledSetDecoder): GAN generators.
GAN_DECODERS = ("tspn", "slot")
GAN_DISCRIMINATORS = ("settransformer", "deepsets")  # masked and order-invariant
DECODERS = ("tspn", "mlp", "rnn", "dspn", "slot", "strokes", "pointprocess")
# Decoders with a likelihood of their own, `decoder.nll(z, batch)` -> recon + size = −log p(X | z) exactly.
LIKELIHOOD_DECODERS = ("strokes", "pointprocess")


@dataclass
class ModelConfig:
    """Everything that defines a model's architecture and objective (saved with every checkpoint).

    Variants: variational=False is a plain autoencoder, True a (β-)VAE; conditional=True conditions
    encoder and decoder on the label (a conditional VAE when variational); corrupt_drop / corrupt_jitter > 0
    make it denoising (inputs corrupted in training, targets clean). Fields left None are derived from the
    training data when training starts (`setae.training.data.resolve_from_data`) and saved resolved.
    """

    point_dim: int = 2
    max_size: int | None = None  # None: the largest set in the data (MNIST: 342)
    latent_dim: int = 64
    # > 0: the code is a set of K = latent_set vectors of latent_dim / K dims (PMA with K seeds; the tspn
    # decoder cross-attends to them); 0: one vector
    latent_set: int = 0
    variational: bool = True
    conditional: bool = False
    encoder_label: bool = True  # conditional: the encoder reads the label too (off: q(z | X))
    num_classes: int = 10
    corrupt_drop: float = 0.0  # denoising: probability of dropping each input point in training
    corrupt_jitter: float = 0.0  # denoising: std of Gaussian noise added to input coordinates in training
    encoder: str = "deepsets"  # deepsets, settransformer, rnn
    encoder_dim: int = 64
    encoder_layers: int = 2
    encoder_heads: int = 4
    encoder_inducing: int = 16  # settransformer: ISAB inducing points; 0 for SAB
    deepsets_pool: str = "max"
    encoder_order: str = "raster"  # rnn: raster (sorted) or input order
    encoder_shuffle: bool = False  # rnn: read sets in a random order at training time
    encoder_bidirectional: bool = False  # rnn
    decoder: str = "mlp"  # mlp, tspn, rnn, dspn, slot, pointprocess; strokes (sequences, setae.nn.sequence)
    decoder_dim: int = 64
    # tspn: attention layers; slot: iterations; rnn/mlp: layers; dspn: layers of ρ; pointprocess: the mixture
    # MLP's hidden layers (width 4·decoder_dim) or the flow's transforms (hyper-networks of width decoder_dim)
    decoder_layers: int = 3
    decoder_heads: int = 4
    decoder_inducing: int = 16  # tspn: ISAB inducing points (0 for SAB); slot: tokens of z
    decoder_init_dim: int = 16
    # > 0: hidden width of a point refiner fitted after training (setae.nn.point_refiner), for the decoders
    # trained with a set loss (not the likelihood decoders, nor a GAN); 0: none
    point_refiner: int = 0
    decoder_steps: int = 10  # dspn: inner gradient steps
    decoder_inner_lr: float = 25.0  # dspn: inner learning rate (per set)
    size_head: str = "categorical"  # tspn, slot, dspn, pointprocess: categorical or poisson
    decoder_mixtures: int = 20  # Gaussian mixture components: strokes, per offset; pointprocess (mixture)
    decoder_temperature: float = 0.5  # strokes: sampling temperature when decoding (0: greedy)
    # strokes: the pen's absolute position divided by this is read beside the offsets, by the decoder at every
    # step and by the encoder; 0: offsets only; None: the training drawings' position std (MNIST: about 6 px)
    stroke_position: float | None = None
    stroke_input_dropout: float = (
        0.0  # strokes: training-time blanking of the previous step's offsets and pen
    )
    point_density: str = "mixture"  # pointprocess: f(x | z), mixture (full-covariance Gaussians) or flow
    point_sampling: str = "quasi"  # pointprocess decode: quasi (deterministic, Sobol) or random (seeded)
    # pointprocess: the grid spacing h of discrete coordinates in data units (points get U(−h/2, h/2) noise,
    # and bounds are on the probability of the grid cells); 0: continuous data; None: from the data (MNIST
    # pixels and skeletons 1/27, strokes 1, otherwise 0)
    dequantize: float | None = None
    loss: str = "hungarian"
    point_sigma: float | None = None  # None: the data's median nearest-neighbour distance (MNIST: 1 / 27)
    normalize: bool | None = None  # standardise points per dimension; None: for your own data, not MNIST
    # the code (posterior mean) standardised over the batch before γ (BN-VAE); off: a plain (β-)VAE, whose
    # KL alone shapes the codes (unused dimensions go to the prior)
    latent_standardize: bool = True
    latent_scale: float = 1.0  # γ: the standardised code (posterior mean) is multiplied by it
    latent_scale_learned: bool = True  # γ per dimension, learned from `latent_scale`
    prior_components: int = 50  # VAE: components of the Gaussian mixture fitted to the training codes
    adversary: str = "none"  # none, or label: an adversary reads the label from the code (setae.nn.adversary)
    adversary_weight: float = 1.0  # λ: the weight of the code's confusion term against the adversary
    label_centering: bool = False  # conditional: each label's mean code is removed (setae.nn.normalization)
    prior_mmd: float = 0.0  # weight of MMD²(batch codes, N(0, I)) per set (setae.nn.prior_mmd); 0: none
    aggregate_kl: float = 0.0  # weight of KL(aggregate posterior's moments ‖ N(0, I)) (nn.aggregate_kl)
    prior_adversary: float = 0.0  # λ of the codes' term against a discriminator of N(0, I) draws; 0: none
    # autoencoder (the default: SetAutoencoder), or gan: a generator (the decoder, from noise) against a
    # discriminator (the encoder's architecture plus a score head), setae.models.gan
    objective: str = "autoencoder"
    gan_loss: str = "nonsaturating"  # gan: nonsaturating or hinge
    gan_r1: float = 0.01  # gan: γ of the R1 penalty (γ/2)‖∇_X D(X)‖² on real sets; 0: none
    gan_spectral: bool = False  # gan: spectral normalisation of every linear map of the discriminator

    def validate(self) -> None:
        for name, value, allowed in (
            ("encoder", self.encoder, ENCODERS),
            ("decoder", self.decoder, DECODERS),
            ("loss", self.loss, tuple(LOSSES)),
            ("size_head", self.size_head, tuple(SIZE_HEADS)),
            ("encoder_order", self.encoder_order, ORDERS),
            ("point_density", self.point_density, DENSITIES),
            ("point_sampling", self.point_sampling, SAMPLINGS),
            ("adversary", self.adversary, ADVERSARIES),
            ("objective", self.objective, OBJECTIVES),
            ("gan_loss", self.gan_loss, GAN_LOSSES),
        ):
            if value not in allowed:
                raise SetaeError(f"config: {name}={value!r} is not one of {', '.join(allowed)}")
        if self.point_refiner < 0:
            raise SetaeError(f"config: point_refiner must be >= 0 (0: none), got {self.point_refiner}")
        for name in ("point_dim", "max_size", "latent_dim", "num_classes"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SetaeError(f"config: {name} must be >= 1, got {getattr(self, name)}")
        if self.latent_set < 0 or (self.latent_set and self.latent_dim % self.latent_set):
            raise SetaeError(
                f"config: latent_set must be >= 0 and divide latent_dim={self.latent_dim}, "
                f"got {self.latent_set}"
            )
        if self.latent_set and (self.encoder, self.decoder) != ("settransformer", "tspn"):
            raise SetaeError(
                "config: latent_set > 0 needs encoder='settransformer' (PMA with latent_set seeds) and "
                f"decoder='tspn' (cross-attention to the latent set), not {self.encoder!r} and "
                f"{self.decoder!r}"
            )
        if self.point_sigma is not None and not self.point_sigma > 0:
            raise SetaeError(
                f"config: point_sigma must be > 0, got {self.point_sigma} "
                "(leave it out to derive it from the data)"
            )
        if self.dequantize is not None and not 0 <= self.dequantize < float("inf"):
            raise SetaeError(
                f"config: dequantize must be >= 0 (0: continuous data), got {self.dequantize} "
                "(leave it out to derive it from the data)"
            )
        if self.objective == "gan":
            self._validate_gan()
        if not self.adversary_weight >= 0:
            raise SetaeError(f"config: adversary_weight must be >= 0, got {self.adversary_weight}")
        if self.label_centering and not self.conditional:
            raise SetaeError("config: label_centering needs a conditional model (the label at encoding)")
        if not 0 <= self.prior_mmd < float("inf"):
            raise SetaeError(f"config: prior_mmd must be >= 0 (0: none), got {self.prior_mmd}")
        if not 0 <= self.prior_adversary < float("inf"):
            raise SetaeError(f"config: prior_adversary must be >= 0 (0: none), got {self.prior_adversary}")
        if not 0 <= self.aggregate_kl < float("inf"):
            raise SetaeError(f"config: aggregate_kl must be >= 0 (0: none), got {self.aggregate_kl}")
        if self.aggregate_kl > 0 and not self.variational:
            raise SetaeError("config: aggregate_kl needs a variational model (the posterior's variances)")
        if self.stroke_position is not None and not 0 <= self.stroke_position < float("inf"):
            raise SetaeError(
                f"config: stroke_position must be >= 0 (0: offsets only), got {self.stroke_position}"
            )
        if not 0 <= self.stroke_input_dropout < 1:
            raise SetaeError(
                f"config: stroke_input_dropout must be in [0, 1), got {self.stroke_input_dropout}"
            )
        if not self.decoder_temperature >= 0:
            raise SetaeError(
                f"config: decoder_temperature must be >= 0 (0: greedy), got {self.decoder_temperature}"
            )
        if self.decoder_mixtures < 1:
            raise SetaeError(f"config: decoder_mixtures must be >= 1, got {self.decoder_mixtures}")
        if self.decoder == "strokes" and self.point_dim != 3:
            raise SetaeError(
                f"config: decoder='strokes' reads stroke-3 steps (point_dim=3), not {self.point_dim}"
            )
        if not self.latent_scale > 0 or self.prior_components < 0:
            raise SetaeError("config: latent_scale must be > 0 and prior_components >= 0")
        if not 0.0 <= self.corrupt_drop < 1.0 or not self.corrupt_jitter >= 0.0:
            raise SetaeError("config: corrupt_drop must be in [0, 1) and corrupt_jitter >= 0")
        for name in ("encoder_dim", "encoder_layers", "encoder_heads", "decoder_dim", "decoder_layers"):
            if getattr(self, name) < 1:
                raise SetaeError(f"config: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("encoder_inducing", "decoder_inducing", "decoder_steps", "decoder_init_dim"):
            if getattr(self, name) < 0:
                raise SetaeError(f"config: {name} must be >= 0, got {getattr(self, name)}")

    def _validate_gan(self) -> None:
        if self.decoder not in GAN_DECODERS:
            raise SetaeError(
                f"config: objective='gan' generates with a decoder that transforms sampled points "
                f"({' or '.join(GAN_DECODERS)}), not decoder={self.decoder!r}"
            )
        if self.encoder not in GAN_DISCRIMINATORS:
            raise SetaeError(
                f"config: objective='gan' discriminates with an order-invariant encoder "
                f"({' or '.join(GAN_DISCRIMINATORS)}), not encoder={self.encoder!r}"
            )
        if self.conditional or self.adversary != "none":
            raise SetaeError("config: objective='gan' is unconditional (no --conditional, no --adversary)")
        regularized = [n for n in ("prior_mmd", "aggregate_kl", "prior_adversary") if getattr(self, n) > 0]
        if regularized:
            names = ", ".join(regularized)
            raise SetaeError(f"config: objective='gan' has no codes to regularise ({names} > 0)")
        if not self.gan_r1 >= 0 or self.gan_r1 == float("inf"):
            raise SetaeError(f"config: gan_r1 must be >= 0 (0: no R1 penalty), got {self.gan_r1}")

    def unresolved(self) -> list[str]:
        """Names of the fields a model cannot be built without that are still None (normalize=None is off;
        dequantize is needed by the point-process decoder and the GAN only, stroke_position by the stroke
        decoder)."""
        dequantized = self.decoder == "pointprocess" or self.objective == "gan"
        needed = ("max_size", "point_sigma") + (("dequantize",) if dequantized else ())
        needed += ("stroke_position",) if self.decoder == "strokes" else ()
        return [name for name in needed if getattr(self, name) is None]


def encoder_input_dim(c: ModelConfig) -> int:
    """The encoder's input width: point_dim, + 2 (the absolute position) for drawings with stroke_position."""
    return c.point_dim + (2 if c.decoder == "strokes" and c.stroke_position else 0)


def build_encoder(c: ModelConfig) -> nn.Module:
    d = encoder_input_dim(c)
    if c.encoder == "deepsets":
        return DeepSets(d, c.encoder_dim, c.encoder_layers, c.deepsets_pool)
    if c.encoder == "rnn":
        return RNNEncoder(
            d,
            c.encoder_dim,
            c.encoder_layers,
            c.encoder_order,
            c.encoder_shuffle,
            c.encoder_bidirectional,
        )
    return SetTransformer(
        d, c.encoder_dim, c.encoder_heads, c.encoder_layers, c.encoder_inducing, max(1, c.latent_set)
    )


def build_decoder(c: ModelConfig) -> nn.Module:
    latent, d, n = c.latent_dim, c.point_dim, c.max_size
    if c.decoder == "mlp":
        return MLPDecoder(latent, d, n, hidden=4 * c.decoder_dim, num_layers=c.decoder_layers)
    if c.decoder == "rnn":
        return RNNDecoder(latent, d, n, c.decoder_dim, c.decoder_layers)
    if c.decoder == "dspn":
        return DSPNDecoder(
            latent, d, n, c.decoder_dim, c.decoder_layers, c.decoder_steps, c.decoder_inner_lr, c.size_head
        )
    if c.decoder == "strokes":
        return StrokeDecoder(
            latent,
            hidden=c.decoder_dim,
            num_components=c.decoder_mixtures,
            position_scale=c.stroke_position,
            input_dropout=c.stroke_input_dropout,
        )
    if c.decoder == "pointprocess":
        return PointProcessDecoder(
            latent,
            d,
            n,
            c.point_density,
            c.decoder_mixtures,
            c.decoder_dim,
            c.decoder_layers,
            c.size_head,
            c.point_sampling,
        )
    if c.decoder == "slot":
        return SlotDecoder(
            latent, d, n, c.decoder_dim, c.decoder_inducing, c.decoder_layers, c.decoder_init_dim, c.size_head
        )
    return TSPNDecoder(
        latent,
        d,
        n,
        c.decoder_dim,
        c.decoder_heads,
        c.decoder_layers,
        c.decoder_inducing,
        c.decoder_init_dim,
        c.size_head,
        c.latent_set,
    )
