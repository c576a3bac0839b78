"""The label adversary: gradient reversal, and training that removes the label from the code."""

from __future__ import annotations

import torch

from setae.nn.adversary import LabelAdversary, reverse_gradient


def test_reverse_gradient_is_identity_forward_and_minus_weight_backward():
    x = torch.randn(4, 3, dtype=torch.double, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.double)
    y = reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * w)


def test_adversary_learns_while_the_code_is_pushed_away_from_the_label():
    """The adversary's parameters descend its cross entropy; the code's gradient ascends it."""
    torch.manual_seed(0)
    adversary = LabelAdversary(latent_dim=2, num_classes=2, weight=1.0, hidden=16)
    z = torch.randn(64, 2)
    labels = (z[:, 0] > 0).long()
    z = z.requires_grad_()
    loss = adversary(z, labels).mean()
    loss.backward()
    step = 1e-2
    with torch.no_grad():
        params = [p - step * p.grad for p in adversary.parameters()]
        after_params = torch.func.functional_call(
            adversary, dict(zip(dict(adversary.named_parameters()), params, strict=True)), (z, labels)
        ).mean()
        after_code = adversary(z - step * z.grad, labels).mean()
    assert after_params < loss, "a step on the adversary lowers its cross entropy"
    assert after_code > loss, "a step on the code raises it"


def test_training_with_the_adversary_logs_its_cross_entropy(tmp_path):
    import json

    from setae.cli import main

    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--conditional", "--adversary", "label", "--steps", "6"]
    assert main([*args, "--log-every", "2", "--run-dir", str(run), "--no-progress"]) == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if "adversary" in r]
    assert len(train) == 3 and all(0 < r["adversary"] < 10 for r in train)  # about log 10 at the start


def test_the_adversary_needs_labels():
    import pytest

    from setae.datasets.batch import SetBatch
    from setae.errors import SetaeError
    from setae.models import ModelConfig, SetAutoencoder

    m = SetAutoencoder(ModelConfig(max_size=8, point_sigma=0.1, adversary="label", latent_dim=4))
    batch = SetBatch.from_sets([torch.rand(3, 2), torch.rand(5, 2)], [-1, -1])
    with pytest.raises(SetaeError, match="label adversary: set 0 has label -1"):
        m(batch)
