"""Held-out evaluation of a set autoencoder: reconstruction distances, set-size accuracy, objective terms."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from setae.datasets.batch import SetBatch
from setae.datasets.pairs import PairedSets
from setae.datasets.strokes import strokes_to_points
from setae.evaluation.set_metrics import set_distances, summarize
from setae.models.autoencoder import SetAutoencoder
from setae.nn.aggregate_kl import gaussian_kl_to_standard_normal, mixture_moments
from setae.rng import seeded


def dataset_items(dataset, limit: int | None = None) -> tuple[list[torch.Tensor], list[int]]:
    """The first `limit` items (all when None) of a dataset of (points, label) as two lists."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    items = [dataset[i] for i in range(count)]
    return [p for p, _ in items], [int(label) for _, label in items]


def source_items(dataset, limit: int | None = None) -> list[torch.Tensor] | None:
    """The input sets of the first `limit` pairs of a PairedSets (setae.datasets.pairs); None for a dataset
    of single sets (the encoder reads the sets themselves)."""
    return dataset_items(dataset.inputs, limit)[0] if isinstance(dataset, PairedSets) else None


@torch.no_grad()
def objective_terms(
    model: SetAutoencoder,
    sets: Sequence[torch.Tensor],
    seed: int = 0,
    batch_size: int = 256,
    labels: Sequence[int] | None = None,
    sources: Sequence[torch.Tensor] | None = None,
):
    """Mean per-set figures in nats, with true sizes and one posterior sample per set drawn under `seed` (the
    global RNG is left untouched); `labels` are needed by conditional models; with `sources` (pairs) the
    encoder reads them and `sets` are their targets. See NATS for what each is:

    - `recon_nll`, `size_nll`, `kl` (VAEs): the training objective's terms;
    - `elbo` (VAEs whose loss is a likelihood, `has_likelihood_bound`): −(recon + size + kl) − the density
      constant, a lower bound on log p(X) in expectation;
    - `bits_per_point` (VAEs with an exact likelihood, `has_exact_likelihood`): the elbo in bits per point
      (`bits_per_point`);
    - `neg_objective` (the others): −(recon + size + kl), the negated objective at β = 1, not a bound.

    `metric_meanings(model)` says what each is for a given model."""
    if labels is not None and len(labels) != len(sets):
        raise ValueError(f"objective_terms: {len(labels)} labels for {len(sets)} sets")
    totals = {"recon": 0.0, "size": 0.0, "kl": 0.0, "constant": 0.0}
    posteriors = []
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with seeded(seed):
        for i in range(0, len(sets), batch_size):
            chunk = list(sets[i : i + batch_size])
            chunk_labels = None if labels is None else list(labels[i : i + batch_size])
            batch = SetBatch.from_sets(chunk, chunk_labels)
            if sources is not None:
                batch.source = SetBatch.from_sets(list(sources[i : i + batch_size]), chunk_labels)
            batch = batch.to(device)
            terms = model(batch)
            if model.config.variational:
                posteriors.append([part.double().cpu() for part in model.posterior(batch)])
            for key in ("recon", "size", "kl"):
                totals[key] += float(terms[key].sum())
            totals["constant"] += float(model.density_constant(batch.sizes).sum())
    model.train(was_training)
    mean = {key: value / len(sets) for key, value in totals.items()}
    out = {"recon_nll": mean["recon"], "size_nll": mean["size"]}
    if model.config.variational:
        out["kl"] = mean["kl"]
        if len(sets) > 1:
            moments = mixture_moments(*(torch.cat(parts) for parts in zip(*posteriors, strict=True)))
            out["aggregate_kl"] = float(gaussian_kl_to_standard_normal(*moments))
    total = mean["recon"] + mean["size"] + mean["kl"]
    if model.config.variational and model.has_likelihood_bound:
        out["elbo"] = -(total + mean["constant"])
        if model.has_exact_likelihood and any(len(s) for s in sets):
            out["bits_per_point"] = bits_per_point(out["elbo"], sets)
    else:
        out["neg_objective"] = -total
    return out


# What each figure in nats is (written into metrics.json beside the figures).
NATS = {
    "recon_nll": "training objective term: the set loss in nats, Σ|x−y|²/(2σ²) over matched points (Chamfer: "
    "both directions averaged); no Gaussian normaliser",
    "size_nll": "−log p(n | z) with the true size: exact for the size heads and the RNN stop model; for the "
    "MLP decoder the presence pattern's likelihood, a lower bound on p(n | z)",
    "kl": "KL(q(z|X) ‖ N(0, I)), exact",
    "aggregate_kl": "KL(N(m, C) ‖ N(0, I)) for the mean m and covariance C of the evaluated sets' aggregate "
    "posterior (1/N) Σ q(z|X): 0 when N(0, I) has the codes' first two moments; not part of any bound",
    "elbo": "lower bound on log p(X) (in expectation over the one posterior sample), with the Gaussian "
    "normaliser n·(d/2)·log(2πσ²): a density of sets in the data's units",
    "neg_objective": "−(recon_nll + size_nll + kl): the negated training objective at β = 1; NOT a bound on "
    "log p(X) (Chamfer is not a likelihood)",
    "iwae_64": "lower bound on log p(X) with 64 importance samples, on the first iwae_sets test sets; "
    "tighter than elbo_iwae_sets",
    "elbo_iwae_sets": "the elbo on the same sets as iwae_64",
    "iwae_64_discrete": "iwae_64 on dequantised targets (U(−h/2, h/2) noise, h the data's grid, fresh with "
    "each sample) minus n·d·log h: a lower bound on the log-probability of the discrete sets, comparable "
    "with a dequantised point process's iwae_64",
    "elbo_iwae_sets_discrete": "the elbo on the same sets, dequantised as iwae_64_discrete",
    "bits_per_point_iwae_64_discrete": "−iwae_64_discrete in bits per point",
}


def bits_per_point(log_p: float, sets: Sequence[torch.Tensor]) -> float:
    """A mean per-set bound `log_p` on log p(X) over `sets`, in bits per point: −log_p · |sets| / (Σ_X n_X ·
    ln 2) (per step of a drawing); use it for `iwae_64` with the sets it was computed on."""
    return -log_p * len(sets) / (sum(len(s) for s in sets) * math.log(2))


def metric_meanings(model: SetAutoencoder) -> dict[str, str]:
    """What each figure means for `model` (written into metrics.json beside them): NATS, with the terms of
    the decoders that have an exact likelihood of their own (strokes, pointprocess) said as they are."""
    c = model.config
    out = dict(NATS)
    if c.decoder == "pointprocess":
        h = c.dequantize or 0.0
        discrete = (
            f"dequantised (cells of width h = {h:.4g} per coordinate, U(−h/2, h/2) noise per point, also "
            "averaged over): a bound on the log-probability of the discrete set, n·d·log h included"
            if h
            else "not dequantised: a density of sets in the data's units"
        )
        out.update(
            recon_nll="−Σ_i log f(x_i | z) − log n!: the point density's exact negative log-likelihood"
            + (" of the dequantised points" if h else "")
            + ", in the model's units, without the density constant",
            size_nll="−log p(n | z) with the true size, exact (the size head)",
            elbo="lower bound on log p(X) (in expectation over the one posterior sample) of the point "
            f"process p(X | z) = p(n | z) n! Π_i f(x_i | z), an exact likelihood; {discrete}",
            iwae_64="the elbo's bound with 64 importance samples"
            + (" (fresh noise with each)" if h else "")
            + ", on the first iwae_sets test sets; tighter than elbo_iwae_sets",
        )
    elif c.decoder == "strokes":
        out.update(
            recon_nll="−Σ_t [log p(Δ_t) + log P(pen_t | not end)]: the decoder's exact negative "
            "log-likelihood of the steps (offsets as a density, not dequantised)",
            size_nll="−log P(length | z): the decoder's stop model, exact",
            elbo="lower bound on log p(S) (in expectation over the one posterior sample) of the stroke "
            "sequence, an exact likelihood; offsets as a density in the data's units",
        )
    if model.has_exact_likelihood:
        unit = "step" if c.decoder == "strokes" else "point"
        out.update(
            bits_per_point=f"−elbo / (mean set size · ln 2): the elbo's bound in bits per {unit}",
            bits_per_point_iwae_64=f"−iwae_64 in bits per {unit} of the iwae_sets sets",
        )
    return out


@torch.no_grad()
def importance_weighted_bound(
    model: SetAutoencoder,
    sets: Sequence[torch.Tensor],
    num_samples: int = 64,
    seed: int = 0,
    batch_size: int = 64,
    labels: Sequence[int] | None = None,
) -> float:
    """Mean importance-weighted bound on log p(X) in nats over `sets` (VAEs; see `importance_bound`), drawn
    under `seed` with the global RNG left untouched; conditional models need `labels` (then log p(X | c))."""
    if labels is not None and len(labels) != len(sets):
        raise ValueError(f"importance_weighted_bound: {len(labels)} labels for {len(sets)} sets")
    device = next(model.parameters()).device
    total = 0.0
    was_training = model.training
    model.eval()
    with seeded(seed):
        for i in range(0, len(sets), batch_size):
            chunk_labels = None if labels is None else list(labels[i : i + batch_size])
            batch = SetBatch.from_sets(list(sets[i : i + batch_size]), chunk_labels).to(device)
            total += float(model.importance_bound(batch, num_samples).sum())
    model.train(was_training)
    return total / len(sets)


def evaluate(
    model: SetAutoencoder,
    sets: Sequence[torch.Tensor],
    seed: int = 0,
    labels: Sequence[int] | None = None,
    outputs: Sequence[torch.Tensor] | None = None,
    ospa_cutoff: float = 0.1,
    sources: Sequence[torch.Tensor] | None = None,
) -> dict[str, float]:
    """Reconstruct `sets` with the model's own size predictions (or take its `outputs`, reconstructions
    made with `seed`) and score them (see set_metrics; OSPA with cut-off `ospa_cutoff` in data units), plus
    the objective terms. Conditional models need
    the sets' `labels`; drawings (stroke-3 sequences) are compared as the sets of absolute points they
    visit. With `sources` (pairs: the input set of each target in `sets`), the model's outputs of the
    sources are scored against the targets (e.g. completion against the whole digit). Returns a flat dict
    of floats; `empty_outputs` is the fraction of empty reconstructions."""
    labels = labels if model.config.conditional else None
    if sources is not None and len(sources) != len(sets):
        raise ValueError(f"evaluate: {len(sources)} sources for {len(sets)} sets")
    if outputs is None:
        outputs = model.reconstruct(sets if sources is None else sources, seed=seed, labels=labels)
    targets = sets
    if model.config.decoder == "strokes":  # drawings are scored as the sets of points they visit
        targets, outputs = (
            [torch.from_numpy(strokes_to_points(s)).float() for s in d] for d in (sets, outputs)
        )
    metrics = summarize(set_distances(targets, outputs, ospa_cutoff))
    metrics["empty_outputs"] = sum(len(o) == 0 for o in outputs) / max(len(outputs), 1)
    metrics.update(objective_terms(model, sets, seed=seed, labels=labels, sources=sources))
    metrics["num_sets"] = len(sets)
    return metrics
