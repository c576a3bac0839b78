"""StrokeDecoder: the mixture density is right, teacher forcing and free running agree, padding never matters,
generation is reproducible and stops, and the model can fit a few sequences."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from setae.datasets.batch import SetBatch
from setae.nn.sequence import END, StrokeDecoder, bivariate_mixture_log_prob

LATENT = 6


@pytest.fixture(autouse=True)
def one_thread():
    """The models here are tiny: intra-op threads only add overhead, and much of it on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def decoder(seed: int = 0, **kwargs) -> StrokeDecoder:
    torch.manual_seed(seed)
    return StrokeDecoder(LATENT, **{"hidden": 16, "num_components": 3, **kwargs})


def random_strokes(sizes: list[int], seed: int = 0) -> list[torch.Tensor]:
    """Stroke-3 sequences of the given lengths: integer offsets in {-2..2}, a first offset up to 27, and
    random pen lifts."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        offsets = torch.randint(-2, 3, (n, 2), generator=g).float()
        if n:
            offsets[0] = torch.randint(0, 28, (2,), generator=g).float()
        out.append(torch.cat([offsets, (torch.rand(n, 1, generator=g) < 0.2).float()], 1))
    return out


def padded(sequences: list[torch.Tensor], pad_to: int, garbage: float) -> SetBatch:
    """The sequences as a batch padded to `pad_to` rows, padded rows holding `garbage`."""
    batch = SetBatch.from_sets(sequences, pad_to=pad_to)
    points = batch.points.masked_fill(batch.padding_mask[..., None], garbage)
    return SetBatch(points, batch.padding_mask, batch.sizes, batch.labels)


def covariance(stds: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
    """stds [..., 2], corr [...] -> [..., 2, 2]."""
    sx, sy = stds.unbind(-1)
    off = corr * sx * sy
    return torch.stack([torch.stack([sx**2, off], -1), torch.stack([off, sy**2], -1)], -2)


def test_mixture_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(5, 2, generator=g)
    means = torch.randn(5, 3, 2, generator=g)
    stds = 0.2 + torch.rand(5, 3, 2, generator=g)
    corr = 1.9 * torch.rand(5, 3, generator=g) - 0.95
    single = bivariate_mixture_log_prob(torch.zeros(5, 1), means[:, :1], stds[:, :1], corr[:, :1], x)
    reference = MultivariateNormal(means[:, 0], covariance(stds[:, 0], corr[:, 0])).log_prob(x)
    torch.testing.assert_close(single, reference)
    log_weights = torch.log_softmax(torch.randn(5, 3, generator=g), -1)
    mixture = MixtureSameFamily(
        Categorical(logits=log_weights), MultivariateNormal(means, covariance(stds, corr))
    )
    torch.testing.assert_close(
        bivariate_mixture_log_prob(log_weights, means, stds, corr, x), mixture.log_prob(x)
    )


def test_first_step_of_teacher_forcing_and_free_running_agree():
    dec = decoder()
    z = torch.randn(4, LATENT)
    forced = dec.teacher_forced(z, SetBatch.from_sets(random_strokes([3, 0, 5, 1])))
    first = dec.first_step(z)
    for field in fields(first):
        torch.testing.assert_close(getattr(forced, field.name)[:, 0], getattr(first, field.name))


@pytest.mark.parametrize("position_scale", [0.0, 4.0])
def test_greedy_generation_follows_teacher_forced_argmaxes(position_scale):
    """Teacher forcing on a greedy sample must reproduce, at every step, the choices that generated it:
    the heaviest component's mean as the offset, the likeliest pen state, and `end` right after the last
    (so free running tracks the absolute position as teacher forcing computes it)."""
    dec = decoder(seed=1, position_scale=position_scale)
    z = 2 * torch.randn(16, LATENT)
    steps, mask = dec.generate(z, max_len=12, temperature=0.0)
    sizes = (~mask).sum(1)
    assert ((sizes > 1) & (sizes < 12)).any() and (sizes == 12).any(), "both kinds of stop are checked"
    dist = dec.teacher_forced(z, SetBatch(steps, mask, sizes, torch.full((16,), -1)))
    best = dist.log_weights.argmax(-1)
    mean = dist.means.gather(2, best[..., None, None].expand(-1, -1, 1, 2))[:, :, 0]
    pen = dist.pen_logits.argmax(-1)
    for i, n in enumerate(sizes.tolist()):
        torch.testing.assert_close(steps[i, :n, :2], mean[i, :n], atol=1e-5, rtol=1e-5)
        assert torch.equal(steps[i, :n, 2].long(), pen[i, :n])
        if n < 12:
            assert pen[i, n] == END


def nll_and_gradients(
    dec: StrokeDecoder, z: torch.Tensor, batch: SetBatch
) -> tuple[dict, list, torch.Tensor]:
    z = z.clone().requires_grad_(True)
    dec.zero_grad()
    out = dec.nll(z, batch)
    sum(v.sum() for v in out.values()).backward()
    return {k: v.detach() for k, v in out.items()}, [p.grad.clone() for p in dec.parameters()], z.grad


@pytest.mark.parametrize("position_scale", [0.0, 4.0])
@pytest.mark.parametrize("garbage", [float("nan"), float("inf"), 1e6])
def test_nll_is_padding_invariant_in_values_and_gradients(garbage, position_scale):
    dec = decoder(position_scale=position_scale)
    sequences = random_strokes([4, 0, 7, 2])
    z = torch.randn(4, LATENT)
    ref, ref_grads, ref_z_grad = nll_and_gradients(dec, z, SetBatch.from_sets(sequences))
    out, grads, z_grad = nll_and_gradients(dec, z, padded(sequences, 11, garbage))
    for key in ("recon", "size", "distance"):
        assert ref[key].shape == (4,) and torch.isfinite(ref[key]).all()
        torch.testing.assert_close(out[key], ref[key])
    for g, g_ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, g_ref)
    torch.testing.assert_close(z_grad, ref_z_grad)
    alone, _, _ = nll_and_gradients(dec, z[:1], SetBatch.from_sets(sequences[:1]))
    torch.testing.assert_close(alone["recon"], ref["recon"][:1], atol=1e-5, rtol=1e-5)
    assert ref["recon"][1] == 0 and ref["size"][1] > 0, "an empty sequence costs only its end"


@pytest.mark.parametrize("position_scale", [0.0, 4.0])
def test_nll_is_the_full_sequence_log_likelihood(position_scale):
    """recon + size against a direct step-by-step sum of log p(Δ_t) + log P(c_t = q_t) + log P(end), the
    absolute position (when read) accumulated as free running does."""
    dec = decoder(seed=1, position_scale=position_scale)
    sequence = random_strokes([5], seed=4)[0]
    z = torch.randn(1, LATENT)
    out = dec.nll(z, SetBatch.from_sets([sequence]))
    total, previous, state = 0.0, dec.start[None], dec._initial_state(z)
    position = torch.zeros(1, 2)
    for step in [*sequence, None]:
        dist, state = dec._step(previous, z, state)
        log_pen = torch.log_softmax(dist.pen_logits[0], -1)
        if step is None:
            total += log_pen[END]
        else:
            total += dist.offset_log_prob(step[None, :2])[0] + log_pen[int(step[2])]
            position = position + step[None, :2]
            previous = dec._input(step[None], position)
    torch.testing.assert_close(out["recon"] + out["size"], -total[None])
    torch.testing.assert_close(out["distance"], out["recon"] / 5)


def test_nll_is_finite_and_its_gradient_reaches_z():
    dec = decoder()
    z = torch.randn(3, LATENT, requires_grad=True)
    out = dec.nll(z, SetBatch.from_sets(random_strokes([6, 1, 3])))
    total = out["recon"].sum() + out["size"].sum()
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(z.grad).all() and (z.grad.abs().sum(1) > 0).all()


def test_scale_changes_only_the_units():
    """Same weights, data and floor multiplied by s: the offset density drops by the Jacobian 1/s² per
    point, so recon rises by 2n log s; the pen and end terms are unchanged."""
    s = 3.0
    small, large = decoder(seed=2), decoder(seed=2, scale=s, min_std=0.1 * s)
    sequences = random_strokes([4, 2, 6], seed=5)
    z = torch.randn(3, LATENT)
    scaled = [torch.cat([q[:, :2] * s, q[:, 2:]], 1) for q in sequences]
    a, b = small.nll(z, SetBatch.from_sets(sequences)), large.nll(z, SetBatch.from_sets(scaled))
    torch.testing.assert_close(b["recon"], a["recon"] + 2 * math.log(s) * torch.tensor([4.0, 2.0, 6.0]))
    torch.testing.assert_close(b["size"], a["size"])


def test_generate_is_reproducible_and_stops():
    dec = decoder()
    z = torch.randn(8, LATENT)
    steps, mask = dec.generate(z, generator=torch.Generator().manual_seed(7), max_len=30)
    again, mask_again = dec.generate(z, generator=torch.Generator().manual_seed(7), max_len=30)
    other, _ = dec.generate(z, generator=torch.Generator().manual_seed(8), max_len=30)
    assert torch.equal(steps, again) and torch.equal(mask, mask_again)
    assert steps.shape != other.shape or not torch.equal(steps, other)
    lengths = (~mask).sum(1)
    assert steps.shape == (8, int(lengths.max()), 3) and int(lengths.max()) <= 30
    assert torch.equal(mask, torch.arange(steps.shape[1])[None] >= lengths[:, None]), "padding is a suffix"
    assert (steps[mask] == 0).all() and torch.isin(steps[..., 2], torch.tensor([0.0, 1.0])).all()
    with torch.no_grad():
        dec.head.bias[-1] = 50.0  # end is certain at once: empty sequences
    steps, mask = dec.generate(z, generator=torch.Generator().manual_seed(7))
    assert steps.shape == (8, 0, 3) and mask.shape == (8, 0)
    with torch.no_grad():
        dec.head.bias[-1] = -50.0  # end never happens: every sequence is cut at max_len
    steps, mask = dec.generate(z, generator=torch.Generator().manual_seed(7), max_len=9)
    assert steps.shape == (8, 9, 3) and not mask.any()


def test_temperature_zero_ignores_the_generator():
    dec = decoder()
    z = torch.randn(5, LATENT)
    runs = [
        dec.generate(z, generator=g, max_len=20, temperature=0.0)
        for g in (None, torch.Generator().manual_seed(1), torch.Generator().manual_seed(2))
    ]
    for steps, mask in runs[1:]:
        assert torch.equal(steps, runs[0][0]) and torch.equal(mask, runs[0][1])


def test_a_few_sequences_can_be_fitted():
    dec = decoder(seed=0, hidden=32)
    g = torch.Generator().manual_seed(0)
    sizes = torch.randint(3, 9, (8,), generator=g).tolist()
    batch = SetBatch.from_sets(random_strokes(sizes, seed=1))
    z = torch.randn(8, LATENT, generator=g)
    optimizer = torch.optim.Adam(dec.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        out = dec.nll(z, batch)
        loss = (out["recon"] + out["size"]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    final = sum(losses[-5:]) / 5
    # The first offsets (up to 27 pixels) dominate the start and are learnt within a few steps; the drop after
    # step 10 shows the rest being fitted too.
    assert final < 0.1 * losses[0] and final < 0.25 * losses[10], f"mean nll {losses[::10]} -> {final:.2f}"


def test_input_dropout_acts_in_training_only_and_keeps_the_position():
    """Blanking the previous step's stroke-5 changes the training NLL; in eval mode the decoder is the one
    without dropout; the blanked inputs keep their position columns."""
    plain, dropped = (
        decoder(seed=3, position_scale=4.0),
        decoder(seed=3, position_scale=4.0, input_dropout=0.5),
    )
    batch = SetBatch.from_sets(random_strokes([6, 3, 8], seed=2))
    z = torch.randn(3, LATENT)
    torch.manual_seed(0)
    assert not torch.allclose(dropped.nll(z, batch)["recon"], plain.nll(z, batch)["recon"])
    plain.eval(), dropped.eval()
    torch.testing.assert_close(dropped.nll(z, batch)["recon"], plain.nll(z, batch)["recon"])
    seen = []
    dropped.train()
    hook = dropped.rnn.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    dropped.nll(z, batch)
    hook.remove()
    inputs = seen[0][..., : dropped.input_dim]
    positions = torch.cat([torch.zeros(3, 1, 2), batch.points[..., :2].cumsum(1)], 1) / 4.0
    torch.testing.assert_close(inputs[..., 5:], positions)
    assert (inputs[:, 1:, :5].abs().sum(-1) == 0).float().mean() > 0.3
    with pytest.raises(Exception, match="input_dropout must be in"):
        decoder(input_dropout=1.0)
