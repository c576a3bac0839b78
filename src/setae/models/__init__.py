"""Set autoencoders and the adversarial set generator, assembled from the building blocks in `setae.nn`."""

from __future__ import annotations

from setae.models.autoencoder import SetAutoencoder
from setae.models.config import ModelConfig
from setae.models.gan import SetGAN


def build_model(config: ModelConfig) -> SetAutoencoder | SetGAN:
    """The model `config.objective` names: a SetAutoencoder, or a SetGAN for objective="gan"."""
    return SetGAN(config) if config.objective == "gan" else SetAutoencoder(config)


__all__ = ["ModelConfig", "SetAutoencoder", "SetGAN", "build_model"]
