"""setae: autoencoders for sets.

import setae
model = setae.load("runs/demo")       # a run folder or checkpoint; CPU, eval mode
z = model.encode(sets)                # list of [n_i, d] tensors/arrays -> [B, latent]
out = model.decode(z)                 # list of [m_i, d] tensors, sizes predicted
out = model.reconstruct(sets)         # decode(encode(sets))
out = model.sample(k, seed=0)         # VAE: k sets from the prior; GAN (--objective gan): from its generator
"""

from setae.datasets import SetBatch, collate_sets
from setae.errors import SetaeError
from setae.models import ModelConfig, SetAutoencoder, SetGAN
from setae.training.checkpoint import load
from setae.versions import __version__, versions

__all__ = [
    "ModelConfig",
    "SetAutoencoder",
    "SetGAN",
    "SetBatch",
    "SetaeError",
    "__version__",
    "collate_sets",
    "load",
    "versions",
]
