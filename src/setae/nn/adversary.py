"""An adversary that reads a label from the code, and a confusion term that trains the encoder against it.

A classifier q(y | z) (an MLP) learns to predict the label y from the code z by minimising its cross entropy
CE = −log q(y | z), with z held fixed. The encoder, with the classifier held fixed, minimises λ times the
confusion term (Tzeng et al., 2015)

    confusion(z) = −(1/C) Σ_c log q(c | z) − log C  =  KL(uniform ‖ q(· | z))  ≥ 0,

zero when q says nothing about the label. Unlike a reversed gradient of CE, whose gradient vanishes once
the classifier is confident (∂CE/∂logits = q − onehot(y) → 0), the confusion term's gradient is largest
then. At the saddle point the classifier is at chance (CE = log C nats) and z ⊥ y as far as the MLP can
tell: a conditional decoder, which is given y, must take the class from y and the style from z.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from setae.nn.encoders import mlp


class LabelAdversary(nn.Module):
    """q(y | z): an MLP [latent -> hidden -> hidden -> classes]; `weight` is λ."""

    def __init__(self, latent_dim: int, num_classes: int, weight: float = 1.0, hidden: int = 128):
        super().__init__()
        self.weight, self.num_classes = weight, num_classes
        self.net = mlp([latent_dim, hidden, hidden, num_classes])

    def cross_entropy(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """−log q(y | z) [B] in nats, with z held fixed (the gradient reaches only the classifier)."""
        return F.cross_entropy(self.net(z.detach()), labels, reduction="none")

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """z [B, latent], labels [B] -> `adversary`: CE [B] in nats, whose gradient reaches only the
        classifier; `confusion`: λ·KL(uniform ‖ q(· | z)) [B], whose gradient reaches only z. Add both to the
        loss."""
        ce = self.cross_entropy(z, labels)
        frozen = {name: p.detach() for name, p in self.net.named_parameters()}
        log_q = F.log_softmax(functional_call(self.net, frozen, (z,)), dim=-1)
        confusion = -log_q.mean(-1) - math.log(self.num_classes)
        return {"adversary": ce, "confusion": self.weight * confusion}
