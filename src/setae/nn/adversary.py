"""An adversary that reads a label from the code, trained against the encoder by gradient reversal.

A classifier q(y | z) (an MLP) is trained to predict the label y from the code z by minimising its cross
entropy CE(z, y); the gradient that reaches z is multiplied by −λ on the way back (Ganin & Lempitsky, 2015),
so in the same backward pass the encoder *maximises* λ·CE: the code is pushed to carry no linearly or
non-linearly readable label, and a conditional decoder, which is given y, must take the class from y and
the style from z. At the saddle point the adversary is at chance (log C nats) and z ⊥ y as far as the MLP
can tell (a fair-representation objective).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from setae.nn.encoders import mlp


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the incoming gradient times −weight backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


def reverse_gradient(x: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """x unchanged; backward, the gradient with respect to x is −weight times the one reaching the output."""
    return _ReverseGradient.apply(x, weight)


class LabelAdversary(nn.Module):
    """q(y | z): an MLP [latent -> hidden -> hidden -> classes] behind a gradient reversal of weight λ."""

    def __init__(self, latent_dim: int, num_classes: int, weight: float = 1.0, hidden: int = 128):
        super().__init__()
        self.weight = weight
        self.net = mlp([latent_dim, hidden, hidden, num_classes])

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z [B, latent], labels [B] -> the adversary's cross entropy [B] in nats. Minimising it trains the
        adversary and, through the reversal, trains whatever produced z to maximise λ times it."""
        return F.cross_entropy(self.net(reverse_gradient(z, self.weight)), labels, reduction="none")
