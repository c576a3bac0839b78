"""Set autoencoders assembled from the building blocks in `setae.nn`."""

from setae.models.autoencoder import SetAutoencoder
from setae.models.config import ModelConfig

__all__ = ["ModelConfig", "SetAutoencoder"]
