"""A discriminator that tells the codes from draws of the prior N(0, I), and the term that trains the codes to
fool it: the adversarial autoencoder's regulariser (Makhzani et al. 2016) on a VAE's posterior samples.

A discriminator D(z) (an MLP, one logit) learns to call prior draws ε ~ N(0, I) real and the batch's codes z
fake, minimising, with z held fixed,

    critic = softplus(−D(ε)) + softplus(D(z))          (binary cross entropy, log 4 at chance)

and the codes, with D held fixed, minimise λ · softplus(−D(z)) (the non-saturating generator loss). At the
equilibrium no MLP tells q(z) = E_X q(z | X) from N(0, I). A moment match (setae.nn.aggregate_kl) or one
batch's MMD (setae.nn.prior_mmd) cannot see holes between the codes' clusters in 64 dimensions; the
discriminator accumulates what it learns over batches, so it can.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from setae.nn.encoders import mlp


class PriorAdversary(nn.Module):
    """D(z): an MLP [latent -> hidden -> hidden -> 1]; `weight` is λ."""

    def __init__(self, latent_dim: int, weight: float = 1.0, hidden: int = 256):
        super().__init__()
        self.weight = weight
        self.net = mlp([latent_dim, hidden, hidden, 1])

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """z [B, latent] -> `prior_critic` [B], whose gradient reaches only D, and `prior_fool` =
        λ·softplus(−D(z)) [B], whose gradient reaches only z. Add both to the loss; the prior draws come from
        the global RNG (saved with every checkpoint)."""
        prior = torch.randn_like(z)
        critic = F.softplus(-self.net(prior)) + F.softplus(self.net(z.detach()))
        frozen = {name: p.detach() for name, p in self.net.named_parameters()}
        fool = F.softplus(-functional_call(self.net, frozen, (z,)))
        return {"prior_critic": critic.squeeze(-1), "prior_fool": self.weight * fool.squeeze(-1)}
