"""Set-to-set pairs: the pair file (round trip, one-line errors), MNIST completion inputs, the objective
reading the input and scoring the target, and training / eval / plot / resume on a pair file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from helpers import SMALL_MODEL, random_sets
from setae import ModelConfig, SetAutoencoder
from setae.cli import main
from setae.datasets import SetBatch
from setae.datasets.packed import PackedSets
from setae.datasets.pairs import completion_inputs, load_data, load_pairs, save_pairs
from setae.datasets.pointfile import save_point_sets


def pairs(count: int = 120, seed: int = 0) -> tuple[list, list, list]:
    """Toy completion: the target is a set of 2-12 points, the input its points with x < 0.5."""
    rng = np.random.default_rng(seed)
    targets = [rng.random((int(n), 2)).astype(np.float32) for n in rng.integers(2, 13, count)]
    return [t[t[:, 0] < 0.5] for t in targets], targets, [int(t[:, 1].mean() > 0.5) for t in targets]


def test_pair_file_round_trip_and_dispatch(tmp_path):
    inputs, targets, labels = pairs(5)
    inputs[1] = np.zeros((0, 2), np.float32)  # an empty input is allowed
    save_pairs(tmp_path / "p.npz", inputs, targets, labels)
    loaded = load_data(tmp_path / "p.npz")
    assert len(loaded) == 5 and loaded.dim == 2
    for i in range(5):
        x, label = loaded.inputs[i]
        y, same = loaded[i]
        np.testing.assert_array_equal(x.numpy(), inputs[i])
        np.testing.assert_array_equal(y.numpy(), targets[i])
        assert label == same == labels[i]
    batch = loaded.batch([3, 1])
    assert batch.sizes.tolist() == [len(targets[3]), len(targets[1])]
    assert batch.source.sizes.tolist() == [len(inputs[3]), 0]
    assert loaded.take([4]).inputs.sizes.tolist() == [len(inputs[4])]
    save_point_sets(tmp_path / "s.npz", targets)
    assert isinstance(load_data(tmp_path / "s.npz"), PackedSets)


def test_completion_inputs_are_the_right_part():
    targets = random_sets([0, 1, 10, 31], 2, seed=4)
    packed = PackedSets(
        torch.cat(targets).numpy(), np.cumsum([0] + [len(t) for t in targets]), np.arange(4), "t"
    )
    top = completion_inputs(packed, "top-half")
    for (x, _label), t in zip((top[i] for i in range(4)), targets, strict=True):
        torch.testing.assert_close(x, t[t[:, 1] < 0.5])
    some = completion_inputs(packed, "random-30", seed=0)
    for i, t in enumerate(targets):
        x = some[i][0]
        assert len(x) == round(0.3 * len(t)) and some[i][1] == i
        assert {tuple(p) for p in x.tolist()} <= {tuple(p) for p in t.tolist()}
    again = completion_inputs(packed, "random-30", seed=0)
    assert all(torch.equal(some[i][0], again[i][0]) for i in range(4))  # the same draw every time


SMALL = {**SMALL_MODEL, "latent_dim": 8, "encoder": "settransformer", "decoder": "tspn"}


@settings(max_examples=20, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 12), min_size=1, max_size=3),
    extra=st.integers(0, 3),
    seed=st.integers(0, 999),
    latent_set=st.sampled_from([0, 4]),
)
def test_objective_reads_the_input_and_ignores_its_order_and_padding(sizes, extra, seed, latent_set):
    torch.manual_seed(0)
    m = SetAutoencoder(ModelConfig(**SMALL, latent_set=latent_set)).eval()
    sources = random_sets(sizes, 2, seed=seed)
    targets = random_sets([12 - n for n in sizes], 2, seed=seed + 1)
    batch = SetBatch.from_sets(targets)
    g = torch.Generator().manual_seed(seed)
    batch.source = SetBatch.from_sets([s[torch.randperm(len(s), generator=g)] for s in sources])
    shuffled_terms = _terms(m, batch)
    batch.source = SetBatch.from_sets(sources, pad_to=max(sizes) + extra)
    batch.source.points[batch.source.padding_mask] = float("nan")
    padded_terms = _terms(m, batch)
    for key in ("recon", "size", "kl"):
        torch.testing.assert_close(shuffled_terms[key], padded_terms[key], atol=1e-4, rtol=1e-4)
    assert all(torch.isfinite(v).all() for v in padded_terms.values())
    # the code is the input's: the same as encoding the inputs alone
    torch.testing.assert_close(m.posterior(batch)[0], m.encode(sources), atol=1e-5, rtol=1e-5)
    outputs = m.reconstruct(sources, seed=3)
    reordered = m.reconstruct([s.flip(0) for s in sources], seed=3)
    for a, b in zip(outputs, reordered, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def _terms(m, batch):
    torch.manual_seed(1)  # the posterior sample
    with torch.no_grad():
        return m(batch)


def test_the_code_is_the_inputs_and_the_loss_the_targets():
    """Pairs (X, Y): the terms equal those of the model's code of X scored against Y, which differ from
    autoencoding Y."""
    torch.manual_seed(0)
    m = SetAutoencoder(ModelConfig(**SMALL, variational=False)).eval()
    sources, targets = random_sets([3, 5], 2, seed=0), random_sets([7, 9], 2, seed=1)
    batch = SetBatch.from_sets(targets)
    batch.source = SetBatch.from_sets(sources)
    with torch.no_grad():
        torch.manual_seed(1)  # TSPN's initial set
        paired = m(batch)
        torch.manual_seed(1)
        alone = m(SetBatch.from_sets(targets))
        z = m.encode(sources)
        torch.manual_seed(1)
        expected = m._negative_log_likelihood(SetBatch.from_sets(targets), z)
    torch.testing.assert_close(paired["recon"], expected["recon"])
    torch.testing.assert_close(paired["size"], expected["size"])
    assert not torch.allclose(paired["recon"], alone["recon"])


TINY = ["--preset", "tiny", "--encoder", "settransformer", "--decoder", "tspn", "--no-progress"]


def test_train_eval_plot_and_resume_on_a_pair_file(tmp_path):
    inputs, targets, labels = pairs()
    data = tmp_path / "pairs.npz"
    save_pairs(data, inputs, targets, labels)
    common = ["train", *TINY, "--data", str(data), "--val-size", "10", "--latent-set", "4"]
    common += ["--checkpoint-every", "3", "--steps", "8", "--eval-every", "4"]
    run = tmp_path / "run"
    assert main([*common, "--run-dir", str(run)]) == 0
    part = tmp_path / "part"
    assert main([*common, "--steps", "5", "--run-dir", str(part)]) == 0
    assert main(["train", "--run-dir", str(part), "--resume", "--steps", "8", "--no-progress"]) == 0
    a, b = load_file(run / "checkpoint/model.safetensors"), load_file(part / "checkpoint/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "a resumed pair run differs"
    assert main(["eval", str(run), "--probe-train", "50"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "pairs" and metrics["num_sets"] == 12  # a tenth held out
    assert {"chamfer", "ospa", "probe_acc_all", "pooled_probe_acc_all"} <= set(metrics)
    assert main(["encode", str(run), "--data", str(data), "--out", str(tmp_path / "z.npy")]) == 2
    assert main(["plot", str(run), "--num", "4"]) == 0
    assert (run / "plots/completions.png").exists() and not (run / "plots/reconstructions.png").exists()


def _write_bad(w: Path) -> dict[str, tuple[str, str]]:
    inputs, targets, _ = pairs(20)
    good = {
        "input_points": np.concatenate(inputs),
        "input_offsets": np.cumsum([0] + [len(s) for s in inputs]),
        "target_points": np.concatenate(targets),
        "target_offsets": np.cumsum([0] + [len(s) for s in targets]),
    }
    nan_target = good["target_points"].copy()
    nan_target[good["target_offsets"][3] + 1, 0] = np.nan
    shrink = good["input_offsets"].copy()
    shrink[5] = shrink[4] - 1
    cases = {
        "missing": (
            {k: v for k, v in good.items() if k != "target_offsets"},
            "missing array(s) target_offsets",
        ),
        "count": ({**good, "target_offsets": good["target_offsets"][:-1]}, "offsets must start at 0"),
        "pairs": (
            {
                **good,
                "target_offsets": good["target_offsets"][:-1],
                "target_points": good["target_points"][: good["target_offsets"][-2]],
            },
            "20 input sets but 19 target sets",
        ),
        "dim": ({**good, "input_points": np.zeros((len(good["input_points"]), 3))}, "dimension 3 but target"),
        "nan": ({**good, "target_points": nan_target}, "target set 3 contains NaN or infinite coordinates"),
        "shrink": ({**good, "input_offsets": shrink}, "input_offsets decrease at input set 4"),
        "labels": ({**good, "labels": -np.ones(20, np.int64)}, "pair 0 has label -1; labels must be >= 0"),
        "floatoffsets": ({**good, "input_offsets": good["input_offsets"] * 1.0}, "input_offsets must be an"),
    }
    for name, (arrays, _) in cases.items():
        np.savez(w / f"{name}.npz", **arrays)
    return {name: message for name, (_, message) in cases.items()}


def test_bad_pair_files_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, message in _write_bad(tmp_path).items():
        before = sorted(tmp_path.iterdir())
        assert main(["train", *TINY, "--data", f"{name}.npz", "--run-dir", "r"]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("setae: error: ") and err.count("\n") == 1, err
        assert f"{name}.npz: " in err and message in err, err
        assert sorted(tmp_path.iterdir()) == before, name  # nothing half-written
        with pytest.raises(Exception, match="npz"):
            load_pairs(tmp_path / f"{name}.npz")
    assert main(["eval", "nothing", "--completion", "top-half"]) == 2
    assert main(["train", *TINY, "--completion", "bottom", "--run-dir", "r"]) == 2
    assert "completion='bottom' is not one of top-half, random-30" in capsys.readouterr().err


def test_mnist_completion_train_eval_plot(mnist_root, tmp_path):
    run = tmp_path / "run"
    data = ["--data", "mnist-completion", "--data-root", str(mnist_root), "--max-size", "342"]
    small = ["--steps", "2", "--val-size", "20", "--eval-sets", "8", "--prior-fit-sets", "100"]
    assert main(["train", *TINY, *data, *small, "--run-dir", str(run)]) == 0
    assert main(["eval", str(run), "--limit", "10", "--no-representation"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "top-half" and metrics["num_sets"] == 10
    assert {"recon_digit_acc", "input_digit_acc", "digit_classifier_acc", "ospa"} <= set(metrics)
    again = ["eval", str(run), "--data", "mnist-completion", "--completion", "random-30", "--limit", "10"]
    assert main([*again, "--no-representation"]) == 0
    assert json.loads((run / "metrics.json").read_text())["task"] == "random-30"
    assert main(["plot", str(run), "--num", "3"]) == 0
    assert (run / "plots/completions.png").exists()
