"""The adversarial set generator (setae.models.gan): a discriminator blind to padding and order, a generator
that keeps the sizes it draws, R1 as defined, the CLI (train, eval, plot, sample, resume, bad flags)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import setae
from helpers import pad, permute_rows
from setae.cli import main
from setae.datasets.batch import SetBatch
from setae.datasets.pointfile import load_point_sets
from setae.models import SetGAN
from setae.models.config import ModelConfig
from setae.nn.discriminator import SetDiscriminator
from setae.nn.encoders import DeepSets, SetTransformer
from setae.training.config import resolve_config
from setae.training.engine import saved_config, train

GAN_FLAGS = ["--objective", "gan", "--decoder", "tspn", "--encoder", "settransformer"]


def discriminator(body: str = "settransformer", spectral: bool = False) -> SetDiscriminator:
    torch.manual_seed(0)
    encoder = SetTransformer(2, 16, 2, 2, 4) if body == "settransformer" else DeepSets(2, 16, 2, "max")
    return SetDiscriminator(encoder, max_size=10, hidden=16, spectral=spectral).double().eval()


def small_gan(**model) -> SetGAN:
    torch.manual_seed(0)
    config = ModelConfig(
        objective="gan",
        decoder="tspn",
        encoder="settransformer",
        max_size=12,
        point_sigma=0.1,
        dequantize=0.0,
        latent_dim=8,
        encoder_dim=16,
        decoder_dim=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_inducing=4,
        decoder_inducing=4,
        **model,
    )
    return SetGAN(config)


@pytest.mark.parametrize("body", ["settransformer", "deepsets"])
@pytest.mark.parametrize("spectral", [False, True])
@pytest.mark.parametrize("fill", [0.0, 7.0, float("nan"), float("inf")])
def test_discriminator_score_ignores_padding_rows_even_nan_and_inf(body, spectral, fill):
    d = discriminator(body, spectral)
    rng = np.random.default_rng(1)
    sets = [rng.normal(size=(n, 2)) for n in (0, 1, 3, 5)]
    tight = d(*pad(sets, 5))
    assert torch.isfinite(tight).all()
    for n, scatter in ((5, True), (9, False), (9, True)):
        points, mask = pad(sets, n, fill=fill, scatter=scatter)
        torch.testing.assert_close(d(points, mask), tight, rtol=0, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(size=st.integers(0, 8), seed=st.integers(0, 10_000))
def test_discriminator_is_invariant_to_the_order_of_the_set(size, seed):
    d = discriminator()
    points = torch.from_numpy(np.random.default_rng(seed).normal(size=(1, size, 2)))
    mask = torch.zeros(1, size, dtype=torch.bool)
    shuffled = permute_rows(points[0], size, seed)[None]
    torch.testing.assert_close(d(shuffled, mask), d(points, mask), rtol=0, atol=1e-10)


def test_samples_have_the_sizes_of_the_data_distribution_and_depend_only_on_the_seed():
    gan = small_gan()
    gan.set_size_distribution([3, 3, 7, 0])
    samples = gan.sample(300, seed=4)
    sizes = np.array([len(s) for s in samples])
    assert set(sizes) == {0, 3, 7}
    assert abs((sizes == 3).mean() - 0.5) < 0.1  # p_data(3) = 1/2
    assert all(torch.isfinite(s).all() and s.shape[1] == 2 for s in samples)
    again = gan.sample(300, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(samples, again, strict=True))
    other = gan.sample(300, seed=5)
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(samples, other, strict=True))
    given_sizes = gan.decode(torch.zeros(2, 8), sizes=[1, 12])
    assert [len(s) for s in given_sizes] == [1, 12]


def test_generated_set_is_exchangeable_permuting_the_initial_elements_permutes_the_points():
    gan = small_gan()
    sizes = torch.tensor([6, 6])
    z = torch.randn(2, 8)
    n = sizes.to(z.dtype)[:, None]
    g = z + gan.size_to_latent(torch.cat([n / 12, torch.log1p(n) / np.log1p(12)], 1))
    h = gan.generator.initial(sizes)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    order = torch.randperm(6)
    out = gan.generator.transform(h, g, mask)
    torch.testing.assert_close(gan.generator.transform(h[:, order], g, mask), out[:, order])


def test_r1_is_half_gamma_times_the_squared_gradient_on_real_points_only():
    gan = small_gan(gan_r1=3.0)
    rng = np.random.default_rng(0)
    batch = SetBatch.from_sets([torch.from_numpy(rng.random((k, 2))).float() for k in (2, 5, 0)])
    r1 = gan.discriminator_terms(batch)["r1"]
    points = batch.points.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(gan.discriminator(points, batch.padding_mask).sum(), points)
    assert torch.all(grad[batch.padding_mask] == 0)
    torch.testing.assert_close(r1, 1.5 * grad.pow(2).sum((1, 2)))
    assert r1[2] == 0  # an empty set has no points to move
    assert torch.all(small_gan(gan_r1=0.0).discriminator_terms(batch)["r1"] == 0)


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge"])
def test_each_player_step_reaches_only_its_own_parameters(loss):
    gan = small_gan(gan_loss=loss)
    batch = SetBatch.from_sets([torch.rand(4, 2), torch.rand(7, 2)])
    terms = gan.discriminator_terms(batch)
    (terms["d_objective"] + terms["r1"]).mean().backward()
    assert all(p.grad is None for p in gan.generator_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.discriminator_parameters())
    gan.zero_grad(set_to_none=True)
    gan.generator_terms(3)["g_objective"].mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.generator.parameters())


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("gan") / "run"
    args = ["train", "--preset", "tiny", *GAN_FLAGS, "--steps", "20", "--run-dir", str(run), "--no-progress"]
    assert main(args) == 0
    return run


def test_gan_trains_logs_objectives_not_nats_and_evaluates_generation_only(gan_run, capsys):
    records = [json.loads(line) for line in (gan_run / "log.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "split" not in r]
    assert {"d_objective", "g_objective", "r1", "real_score", "fake_score"} <= set(train_records[-1])
    assert not {"loss", "recon", "kl", "beta"} & set(train_records[-1])
    assert "gen_1nna" in [r for r in records if r.get("split") == "val"][-1]
    capsys.readouterr()
    assert main(["eval", str(gan_run), "--gen-samples", "16", "--no-progress"]) == 0
    captured = capsys.readouterr()
    metrics = json.loads((gan_run / "metrics.json").read_text())
    assert {"gen_mmd", "gen_cov", "gen_1nna", "empty_samples"} <= set(metrics)
    assert not {"nats", "chamfer", "elbo", "recon_nll", "neg_objective", "interp_smoothness"} & set(metrics)
    assert "a GAN has no encoder" in captured.err
    assert "nats" not in captured.out


def test_gan_plots_samples_and_writes_samples_with_setae_sample(gan_run, tmp_path):
    assert main(["plot", str(gan_run), "--num", "4"]) == 0
    assert (gan_run / "plots/samples.png").exists() and (gan_run / "plots/training_curves.png").exists()
    assert not (gan_run / "plots/reconstructions.png").exists()
    assert main(["sample", str(gan_run), "--num", "7", "--out", str(tmp_path / "s.npz")]) == 0
    written = load_point_sets(tmp_path / "s.npz")
    model = setae.load(gan_run)
    assert isinstance(model, SetGAN)
    expected = model.sample(7)
    assert len(written) == 7
    assert all(np.allclose(written[i][0].numpy(), expected[i].numpy()) for i in range(7))


def test_what_a_gan_cannot_do_is_one_line_and_exit_2(gan_run, tmp_path, capsys):
    from setae.datasets.pointfile import save_point_sets

    save_point_sets(tmp_path / "x.npz", [np.zeros((3, 2))])
    for args in (
        ["encode", str(gan_run), "--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "c.npy")],
        ["cluster", str(gan_run), "--k", "2"],
        ["sample", str(gan_run), "--out", str(tmp_path / "s.npz"), "--label", "3"],
    ):
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("setae: error:"), err


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--objective", "gan", "--decoder", "mlp"], "decoder='mlp'"),
        (["--objective", "gan", "--decoder", "tspn", "--encoder", "rnn"], "encoder='rnn'"),
        (GAN_FLAGS + ["--conditional"], "unconditional"),
        (GAN_FLAGS + ["--gan-loss", "wasserstein"], "gan_loss='wasserstein'"),
        (GAN_FLAGS + ["--gan-r1", "-1"], "gan_r1 must be >= 0"),
        (["--objective", "gans"], "objective='gans'"),
    ],
)
def test_bad_gan_flags_are_one_line_and_exit_2(flags, says, tmp_path, capsys):
    assert main(["train", "--preset", "tiny", *flags, "--run-dir", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "recipe", [{"gan_loss": "nonsaturating"}, {"gan_loss": "hinge", "gan_spectral": True}]
)
def test_resumed_gan_run_equals_the_uninterrupted_one(recipe, tmp_path):
    def config(steps):
        model = {"objective": "gan", "decoder": "tspn", "encoder": "settransformer", **recipe}
        run = {"steps": steps, "checkpoint_every": 5, "eval_every": 100}
        return resolve_config("tiny", overrides={"model": model, "train": run})

    train(config(12), tmp_path / "straight", progress=False)
    train(config(7), tmp_path / "stopped", progress=False)
    resumed = saved_config(tmp_path / "stopped")
    resumed.train.steps = 12
    train(resumed, tmp_path / "stopped", resume=True, progress=False)
    a = load_file(tmp_path / "straight/checkpoint/model.safetensors")
    b = load_file(tmp_path / "stopped/checkpoint/model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    logs = [
        [
            r
            for r in map(json.loads, (tmp_path / run / "log.jsonl").read_text().splitlines())
            if "split" not in r
        ]
        for run in ("straight", "stopped")
    ]
    both = [[r["d_objective"] for r in log if r["step"] % 5 == 0] for log in logs]  # the stopped run logs 7
    assert both[0] == both[1]
