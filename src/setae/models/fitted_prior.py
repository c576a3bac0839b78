"""An ex-post density of the codes: a Gaussian mixture fitted to the training sets' posterior means.

A VAE's aggregate posterior q(z) = E_X q(z | X) rarely fills N(0, I): prior samples that land between the
codes' clusters decode to blobs. Sampling instead from a density fitted to where the codes are (Ghosh et al.,
2020, "From variational to deterministic autoencoders") gives sets like the data. The mixture

    p̂(z) = Σ_k π_k N(z; m_k, L_k L_kᵀ)     K components [K], means [K, D], Cholesky factors L_k [K, D, D]

is fitted by scikit-learn's `GaussianMixture` (EM, full covariances) and kept as buffers, so it travels in
the checkpoint's safetensors with the weights. Until fitted it is N(0, I) (`fitted` is 0).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class FittedPrior(nn.Module):
    def __init__(self, latent_dim: int, components: int):
        super().__init__()
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, latent_dim))
        self.register_buffer("scale_tril", torch.eye(latent_dim).expand(components, -1, -1).clone())
        self.register_buffer("fitted", torch.zeros((), dtype=torch.uint8))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    @torch.no_grad()
    def fit(self, codes: Tensor, seed: int = 0, max_iter: int = 100) -> None:
        """Fit the mixture to codes [N, D] (N ≥ K) by EM; covariances get 1e-4 added to the diagonal."""
        from sklearn.mixture import GaussianMixture

        components = len(self.weights)
        gmm = GaussianMixture(
            components, covariance_type="full", reg_covar=1e-4, max_iter=max_iter, random_state=seed
        )
        gmm.fit(codes.double().cpu().numpy())
        self.weights.copy_(torch.from_numpy(gmm.weights_))
        self.means.copy_(torch.from_numpy(gmm.means_))
        self.scale_tril.copy_(torch.from_numpy(np.linalg.cholesky(gmm.covariances_)))
        self.fitted.fill_(1)

    def sample(self, k: int, generator: torch.Generator) -> Tensor:
        """k codes [k, D] drawn from the mixture under `generator` (CPU)."""
        component = torch.multinomial(self.weights.cpu(), k, replacement=True, generator=generator)
        noise = torch.randn(k, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        tril, means = self.scale_tril.cpu()[component], self.means.cpu()[component]
        return means + (tril @ noise[..., None])[..., 0]

    def log_prob(self, z: Tensor) -> Tensor:
        """log p̂(z) [B] for codes z [B, D]."""
        mixture = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(probs=self.weights),
            torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril),
        )
        return mixture.log_prob(z)
