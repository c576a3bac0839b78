"""The prior adversary (setae.nn.prior_adversary): its terms, where their gradients go, and that it learns."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import SMALL_MODEL, random_sets
from setae import ModelConfig, SetaeError, SetAutoencoder
from setae.datasets import SetBatch
from setae.nn.prior_adversary import PriorAdversary


def test_terms_at_a_blind_discriminator():
    """D ≡ 0 cannot tell anything: critic = 2·log 2 (log 4) per set, the codes' term λ·log 2."""
    adversary = PriorAdversary(3, weight=2.5)
    for p in adversary.parameters():
        torch.nn.init.zeros_(p)
    terms = adversary(torch.randn(5, 3))
    torch.testing.assert_close(terms["prior_critic"], torch.full((5,), math.log(4.0)))
    torch.testing.assert_close(terms["prior_fool"], torch.full((5,), 2.5 * math.log(2.0)))


def test_critic_trains_only_the_discriminator_and_the_other_term_only_the_codes():
    torch.manual_seed(0)
    adversary = PriorAdversary(4, weight=1.0, hidden=8)
    z = torch.randn(6, 4, requires_grad=True)
    terms = adversary(z)
    terms["prior_critic"].sum().backward(retain_graph=True)
    assert z.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adversary.parameters())
    adversary.zero_grad()
    terms["prior_fool"].sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in adversary.parameters())


def test_the_discriminator_learns_to_tell_shifted_codes_from_the_prior():
    """Trained on codes from N(2, I), D tells them from N(0, I): the critic falls well below log 4 and the
    codes' term rises above log 2, so its gradient pushes the codes towards the prior."""
    torch.manual_seed(0)
    adversary = PriorAdversary(2, weight=1.0, hidden=32)
    optimizer = torch.optim.Adam(adversary.parameters(), lr=1e-2)
    for _ in range(200):
        loss = adversary(torch.randn(128, 2) + 2.0)["prior_critic"].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    z = (torch.randn(512, 2) + 2.0).requires_grad_()
    terms = adversary(z)
    assert terms["prior_critic"].mean() < 0.5 * math.log(4.0)
    assert terms["prior_fool"].mean() > 2 * math.log(2.0)
    terms["prior_fool"].mean().backward()
    assert (z.grad.mean(0) > 0).all()  # descending the term moves the codes towards 0


def test_the_model_adds_the_terms_in_training_only():
    torch.manual_seed(0)
    m = SetAutoencoder(ModelConfig(**{**SMALL_MODEL, "prior_adversary": 3.0})).train()
    batch = SetBatch.from_sets(random_sets([1, 3, 7, 12], 2, seed=2))
    terms = m(batch)
    assert terms["prior_critic"].shape == terms["prior_fool"].shape == (4,)
    terms["prior_fool"].mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.decoder.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.prior_adversary.parameters())
    assert "prior_critic" not in m.eval()(batch)
    with pytest.raises(SetaeError, match="prior_adversary must be >= 0"):
        ModelConfig(**{**SMALL_MODEL, "prior_adversary": -1.0}).validate()
    with pytest.raises(SetaeError, match="objective='gan' has no codes to regularise"):
        gan = {"objective": "gan", "decoder": "tspn", "prior_adversary": 1.0}
        ModelConfig(**{**SMALL_MODEL, **gan}).validate()
