"""Set autoencoders assembled from the building blocks in `setae.nn`."""

from setae.models.autoencoder import ModelConfig, SetAutoencoder

__all__ = ["ModelConfig", "SetAutoencoder"]
