"""Held-out evaluation of a set autoencoder: reconstruction distances, set-size accuracy, objective terms."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from setae.datasets.batch import SetBatch
from setae.datasets.strokes import strokes_to_points
from setae.evaluation.set_metrics import set_distances, summarize
from setae.models.autoencoder import SetAutoencoder


def dataset_items(dataset, limit: int | None = None) -> tuple[list[torch.Tensor], list[int]]:
    """The first `limit` items (all when None) of a dataset of (points, label) as two lists."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    items = [dataset[i] for i in range(count)]
    return [p for p, _ in items], [int(label) for _, label in items]


@torch.no_grad()
def objective_terms(
    model: SetAutoencoder,
    sets: Sequence[torch.Tensor],
    seed: int = 0,
    batch_size: int = 256,
    labels: Sequence[int] | None = None,
):
    """Mean per-set objective terms in nats, with true sizes, one posterior sample per set drawn under
    `seed` (the global RNG is left untouched): `recon_nll`, `size_nll` = −log p(k | z), for VAEs `kl` and
    `elbo`, and `size_nll_pp` = −log p(k | z) − log k!, the size's part of the point-process likelihood
    p(X) = p(k) · k! · f_k(x_1..x_k) of an unordered set (unit volume), so that size models compare in nats.
    `labels` are needed by conditional models."""
    totals = {"recon": 0.0, "size": 0.0, "kl": 0.0}
    log_factorials = 0.0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(sets), batch_size):
            chunk = list(sets[i : i + batch_size])
            chunk_labels = None if labels is None else list(labels[i : i + batch_size])
            batch = SetBatch.from_sets(chunk, chunk_labels)
            terms = model(batch.to(device))
            for key in totals:
                totals[key] += float(terms[key].sum())
            log_factorials += float(torch.lgamma(batch.sizes.double() + 1).sum())
    model.train(was_training)
    out = {"recon_nll": totals["recon"] / len(sets), "size_nll": totals["size"] / len(sets)}
    out["size_nll_pp"] = out["size_nll"] - log_factorials / len(sets)
    if model.config.variational:
        out["kl"] = totals["kl"] / len(sets)
        out["elbo"] = -(out["recon_nll"] + out["size_nll"] + out["kl"])
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
    device = next(model.parameters()).device
    total = 0.0
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
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
) -> dict[str, float]:
    """Reconstruct `sets` with the model's own size predictions (or take its `outputs`, reconstructions
    made with `seed`) and score them (see set_metrics), plus the objective terms. Conditional models need
    the sets' `labels`; drawings (stroke-3 sequences) are compared as the sets of absolute points they
    visit. Returns a flat dict of floats; `empty_outputs` is the fraction of empty reconstructions."""
    labels = labels if model.config.conditional else None
    if outputs is None:
        outputs = model.reconstruct(sets, seed=seed, labels=labels)
    targets = sets
    if model.config.decoder == "strokes":  # drawings are scored as the sets of points they visit
        targets, outputs = (
            [torch.from_numpy(strokes_to_points(s)).float() for s in d] for d in (sets, outputs)
        )
    metrics = summarize(set_distances(targets, outputs))
    metrics["empty_outputs"] = sum(len(o) == 0 for o in outputs) / max(len(outputs), 1)
    metrics.update(objective_terms(model, sets, seed=seed, labels=labels))
    metrics["num_sets"] = len(sets)
    return metrics
