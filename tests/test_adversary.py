"""The label adversary: a classifier of the label from the code, and a confusion term against it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from setae.nn.adversary import LabelAdversary


def test_each_term_reaches_only_its_own_side():
    """`adversary` (the cross entropy) trains the classifier only; `confusion` trains the code only."""
    torch.manual_seed(0)
    adversary = LabelAdversary(latent_dim=3, num_classes=4, weight=0.7, hidden=8)
    z = torch.randn(16, 3, requires_grad=True)
    labels = torch.randint(0, 4, (16,))
    terms = adversary(z, labels)
    terms["adversary"].sum().backward(retain_graph=True)
    assert z.grad is None or z.grad.abs().max() == 0
    assert all(p.grad.abs().max() > 0 for p in adversary.parameters() if p.ndim == 2)
    adversary.zero_grad(set_to_none=True)
    terms["confusion"].sum().backward()
    assert z.grad.abs().max() > 0
    assert all(p.grad is None for p in adversary.parameters())


def test_confusion_is_the_kl_from_uniform_times_the_weight():
    """Known answer: λ·KL(uniform ‖ q) = λ·(−mean_c log q_c − log C), 0 for a uniform q; the cross entropy is
    −log q_y (a near miss such as KL(q ‖ uniform) or the CE of the first class gives other values)."""
    adversary = LabelAdversary(latent_dim=2, num_classes=3, weight=0.5, hidden=4)
    final = adversary.net[-1]
    z = torch.tensor([[1.0, -2.0]])
    logits = adversary.net(z)[0].detach()
    log_q = F.log_softmax(logits, -1)
    terms = adversary(z, torch.tensor([2]))
    torch.testing.assert_close(terms["confusion"][0], 0.5 * (-log_q.mean() - math.log(3)))
    torch.testing.assert_close(terms["adversary"][0], -log_q[2])
    with torch.no_grad():
        final.weight.zero_()
        final.bias.zero_()
    assert abs(float(adversary(z, torch.tensor([0]))["confusion"][0])) < 1e-6


def test_confusion_still_pushes_the_code_when_the_classifier_is_confident():
    """Where a reversed cross entropy's gradient vanishes (q_y → 1), the confusion term's does not."""
    torch.manual_seed(0)
    adversary = LabelAdversary(latent_dim=1, num_classes=2, weight=1.0, hidden=4)
    with torch.no_grad():
        adversary.net[-1].bias.copy_(torch.tensor([12.0, 0.0]))  # sure of class 0
    z = torch.tensor([[0.5]], requires_grad=True)
    logits = adversary.net(z)
    label = logits.argmax(-1)  # the class the classifier is sure of
    ce = F.cross_entropy(logits, label)
    (ce_grad,) = torch.autograd.grad(ce, z)
    (confusion_grad,) = torch.autograd.grad(adversary(z, label)["confusion"].sum(), z)
    assert float(torch.softmax(logits.detach(), -1).max()) > 0.99
    assert confusion_grad.abs() > 10 * ce_grad.abs()


def test_training_with_the_adversary_logs_its_cross_entropy(tmp_path):
    import json

    from setae.cli import main

    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--conditional", "--adversary", "label", "--steps", "6"]
    assert main([*args, "--log-every", "2", "--run-dir", str(run), "--no-progress"]) == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if "adversary" in r]
    assert len(train) == 3 and all(0 < r["adversary"] < 10 and r["confusion"] >= 0 for r in train)


def test_the_adversary_needs_labels():
    import pytest

    from setae.datasets.batch import SetBatch
    from setae.errors import SetaeError
    from setae.models import ModelConfig, SetAutoencoder

    m = SetAutoencoder(ModelConfig(max_size=8, point_sigma=0.1, adversary="label", latent_dim=4))
    batch = SetBatch.from_sets([torch.rand(3, 2), torch.rand(5, 2)], [-1, -1])
    with pytest.raises(SetaeError, match="label adversary: set 0 has label -1"):
        m(batch)


def _adversary_run(tmp_path, name, steps, adversary_steps):
    from setae.training.config import resolve_config
    from setae.training.engine import train

    config = resolve_config(
        "tiny",
        overrides={
            "model": {"conditional": True, "adversary": "label", "adversary_weight": 2.0},
            "train": {"steps": steps, "adversary_steps": adversary_steps, "checkpoint_every": 5},
        },
    )
    train(config, tmp_path / name, progress=False)
    return tmp_path / name


def test_the_classifier_takes_adversary_steps_per_training_step(tmp_path):
    """Its optimiser has stepped steps × adversary_steps times, the autoencoder's steps times."""
    from setae.training.checkpoint import load_training_state

    for k in (1, 3):
        state = load_training_state(_adversary_run(tmp_path, f"k{k}", 4, k) / "checkpoint")
        counts = {int(s["step"]) for s in state["optimizer_d"]["state"].values()}
        assert counts == {4 * k}
        assert {int(s["step"]) for s in state["optimizer"]["state"].values()} == {4}


def test_a_resumed_adversary_run_with_several_classifier_steps_equals_the_uninterrupted_one(tmp_path):
    from safetensors.torch import load_file

    from setae.training.engine import saved_config, train

    straight = _adversary_run(tmp_path, "straight", 12, 3)
    stopped = _adversary_run(tmp_path, "stopped", 7, 3)
    resumed = saved_config(stopped)
    resumed.train.steps = 12
    train(resumed, stopped, resume=True, progress=False)
    a = load_file(straight / "checkpoint/model.safetensors")
    b = load_file(stopped / "checkpoint/model.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("adversary.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_classifier_reads_the_code_before_its_scale():
    """Scaling a code dimension towards 0 cannot hide the label from the classifier (nor from the
    standardised probe): its terms do not depend on γ."""
    from setae.datasets.batch import SetBatch
    from setae.models import ModelConfig, SetAutoencoder

    torch.manual_seed(0)
    config = ModelConfig(max_size=8, point_sigma=0.1, adversary="label", conditional=True, latent_dim=4)
    model = SetAutoencoder(config).train()
    batch = SetBatch.from_sets([torch.rand(n, 2) for n in (3, 5, 2, 6)], [0, 3, 3, 7])
    before = model(batch)
    with torch.no_grad():
        model.latent_scale.mul_(torch.tensor([1e-3, 1.0, 5.0, 1e-2]))
    after = model(batch)
    torch.testing.assert_close(after["adversary"], before["adversary"])
    torch.testing.assert_close(after["confusion"], before["confusion"])
    torch.testing.assert_close(after["code"], before["code"])
