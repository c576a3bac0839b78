"""Generation metrics for variational set autoencoders, with the Chamfer distance CD as the set distance.

CD follows set_metrics' convention for empty sets: 0 when both are empty and c² (OSPA's cost of an unmatched
point, c the run's `ospa_cutoff`) when exactly one is, so an empty sample is never "close" to a reference.

Between sample sets S (k of them, decoded from the prior) and reference sets R (test sets):

- MMD  = mean_{r ∈ R} min_{s ∈ S} CD(r, s)               fidelity: every reference is matched closely;
- COV  = |{argmin_{r ∈ R} CD(s, r) : s ∈ S}| / |R|        coverage: fraction of references that are the
                                                          nearest reference of some sample (ties: lowest
                                                          index);
- 1-NNA = leave-one-out accuracy of the 1-nearest-neighbour classifier telling S from R on S ∪ R. Item x
  is classified correctly when d_same < d_other, where d_same / d_other are the distances to the nearest
  other member of its own / the other group; a tie d_same = d_other counts 1/2. Ideal 0.5; 1 when the groups
  are far apart; below 0.5 when samples copy references (exact copies of distinct sets give 0).

Interpolation smoothness: for a pair of codes (z_a, z_b) decode X_t = decode((1 − t/T) z_a + (t/T) z_b),
t = 0..T, and take T² · mean_t CD(X_t, X_{t+1}) / CD(X_0, X_T). CD is a squared distance, so a path moving at
uniform speed (e.g. a one-point set whose point is linear in z) scores 1, and one that jumps in a single step
scores T.

Caveat: interpolation smoothness uses `chamfer_loss`'s CD, which is 0 when either set is empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from setae.datasets.batch import SetBatch
from setae.errors import SetaeError
from setae.models.autoencoder import SetAutoencoder
from setae.nn.losses import chamfer_loss

# Sets per block of the pairwise matrix: a block computes BLOCK² Chamfer distances at once.
BLOCK = 32
# Padding coordinates: far from any point and from each other, so padded points are never nearest.
_FAR = 1e4


def _padded_blocks(sets: Sequence[Tensor], fill: float) -> list[tuple[np.ndarray, Tensor, Tensor]]:
    """Sets sorted by size in blocks of BLOCK: (indices [b], points [b, n_max, d] padded with `fill`,
    sizes [b]); sorting keeps the padding small."""
    order = np.argsort([len(s) for s in sets], kind="stable")
    out = []
    for i in range(0, len(sets), BLOCK):
        idx = order[i : i + BLOCK]
        batch = SetBatch.from_sets([torch.as_tensor(sets[j]).float() for j in idx])
        out.append((idx, batch.points.masked_fill(batch.padding_mask[..., None], fill), batch.sizes))
    return out


def _block_chamfer(x: Tensor, nx: Tensor, y: Tensor, ny: Tensor, cutoff: float) -> Tensor:
    """CD [A, B] between padded blocks x [A, n, d] (sizes nx [A]) and y [B, m, d] (sizes ny [B]); 0 when
    both sets are empty and cutoff² when exactly one is."""
    (a, n, _), (b, m, _) = x.shape, y.shape
    x_empty, y_empty = nx[:, None] == 0, ny[None, :] == 0
    empty_cost = torch.where(x_empty != y_empty, cutoff**2, 0.0)  # [A, B]
    if n == 0 or m == 0:  # a block of empty sets only: no points to reduce over
        return empty_cost
    flat_x, flat_y = x.reshape(a * n, -1), y.reshape(b * m, -1)
    dist = sum((flat_x[:, k, None] - flat_y[None, :, k]).square() for k in range(x.shape[2]))
    dist = dist.view(a, n, b, m)
    x_valid = (torch.arange(n)[None] < nx[:, None]).to(x.dtype)  # [A, n]
    y_valid = (torch.arange(m)[None] < ny[:, None]).to(x.dtype)  # [B, m]
    x_term = torch.einsum("anb,an->ab", dist.amin(3), x_valid) / nx.clamp(min=1)[:, None]
    y_term = torch.einsum("abm,bm->ab", dist.amin(1), y_valid) / ny.clamp(min=1)[None, :]
    return torch.where(x_empty | y_empty, empty_cost, x_term + y_term)


def pairwise_chamfer(
    a: Sequence[Tensor], b: Sequence[Tensor] | None = None, ospa_cutoff: float = 0.1
) -> np.ndarray:
    """CD(a_i, b_j) [len(a), len(b)] (b = a when None, computing each symmetric pair once), float32
    coordinates with exact differences; 0 when both sets are empty and `ospa_cutoff`² when exactly one is,
    as in `set_metrics.set_distances`."""
    same = b is None
    b = a if same else b
    if len(a) == 0 or len(b) == 0:
        raise SetaeError("pairwise Chamfer needs at least one set on each side")
    out = np.zeros((len(a), len(b)))
    a_blocks, b_blocks = _padded_blocks(a, _FAR), _padded_blocks(b, -_FAR)
    with torch.no_grad():
        for i, (ia, x, nx) in enumerate(a_blocks):
            for j, (ib, y, ny) in enumerate(b_blocks):
                if same and j < i:
                    continue
                cd = _block_chamfer(x, nx, y, ny, ospa_cutoff).double().numpy()
                out[np.ix_(ia, ib)] = cd
                if same:
                    out[np.ix_(ib, ia)] = cd.T
    return out


def paired_chamfer(a: Sequence[Tensor], b: Sequence[Tensor]) -> np.ndarray:
    """CD(a_i, b_i) [len(a)] float64 for equally long lists of sets."""
    x, y = (SetBatch.from_sets([torch.as_tensor(s).double() for s in sets]) for sets in (a, b))
    with torch.no_grad():
        return chamfer_loss(x.points, y.points, x.padding_mask, y.padding_mask, reduction="none").numpy()


def generation_metrics(
    samples: Sequence[Tensor], references: Sequence[Tensor], ospa_cutoff: float = 0.1
) -> dict[str, float]:
    """`gen_mmd`, `gen_cov` and `gen_1nna` between sample and reference sets (see the module docstring;
    `ospa_cutoff` c prices an empty set against a non-empty one at c²)."""
    k = len(samples)
    d = pairwise_chamfer(list(samples) + list(references), ospa_cutoff=ospa_cutoff)
    d_rs = d[k:, :k]
    cov = len(np.unique(d_rs.argmin(0))) / len(references)
    np.fill_diagonal(d, np.inf)
    is_sample = np.arange(len(d)) < k
    same = np.where(is_sample[:, None] == is_sample[None, :], d, np.inf).min(1)
    other = np.where(is_sample[:, None] != is_sample[None, :], d, np.inf).min(1)
    correct = np.where(same < other, 1.0, np.where(same == other, 0.5, 0.0))
    return {"gen_mmd": float(d_rs.min(1).mean()), "gen_cov": float(cov), "gen_1nna": float(correct.mean())}


def interpolate(
    model: SetAutoencoder, sets_a: Sequence, sets_b: Sequence, steps: int = 8, seed: int = 0
) -> list[list[Tensor]]:
    """Decoded sets X_t along the straight lines between the codes of sets_a[i] and sets_b[i]: a list over
    t = 0..T (T = `steps`) of lists over pairs. Each t is decoded with the same `seed`, so a line's random
    initial elements change only through the size."""
    if len(sets_a) != len(sets_b) or len(sets_a) == 0:
        raise SetaeError("interpolation needs equally many (and at least one) start and end sets")
    za, zb = model.encode(sets_a), model.encode(sets_b)
    return [model.decode(za + (t / steps) * (zb - za), seed=seed) for t in range(steps + 1)]


def latent_traversal(
    model: SetAutoencoder,
    codes: Tensor,
    directions: int = 3,
    offsets: Sequence[float] = (-2, -1, 0, 1, 2),
    seed: int = 0,
) -> list[list[Tensor]]:
    """Decoded sets at mean + a·σ_k·v_k for the first `directions` principal directions v_k of `codes`
    [N, latent] (σ_k their standard deviations) and a in `offsets`: a list over offsets of lists over k."""
    centred = codes.double() - codes.double().mean(0)
    _, s, v = torch.linalg.svd(centred, full_matrices=False)
    sigma = s[:directions] / max(len(codes) - 1, 1) ** 0.5
    mean = codes.double().mean(0)
    return [model.decode((mean + a * sigma[:, None] * v[:directions]).float(), seed=seed) for a in offsets]


def interpolation_smoothness(
    model: SetAutoencoder, sets_a: Sequence, sets_b: Sequence, steps: int = 8, seed: int = 0
) -> float:
    """Mean over pairs (sets_a[i], sets_b[i]) of T² · mean_t CD(X_t, X_{t+1}) / CD(X_0, X_T) along the
    straight line between their codes, T = `steps` (see the module docstring; paths that wander away from
    both ends can score above T); pairs with CD(X_0, X_T) = 0 are skipped."""
    lines = interpolate(model, sets_a, sets_b, steps, seed)
    step_cd = np.stack([paired_chamfer(lines[t], lines[t + 1]) for t in range(steps)]).mean(0)
    ends = paired_chamfer(lines[0], lines[-1])
    ratios = steps**2 * step_cd[ends > 0] / ends[ends > 0]
    return float(ratios.mean()) if len(ratios) else float("nan")


def vae_metrics(
    model: SetAutoencoder,
    test_sets: Sequence,
    samples: Sequence[Tensor],
    interp_pairs: int = 64,
    seed: int = 0,
    ospa_cutoff: float = 0.1,
) -> dict[str, float]:
    """`generation_metrics` of prior `samples` against as many test sets (the first ones), and
    `interp_smoothness` over `interp_pairs` pairs (test set 2i, test set 2i + 1). A conditional model's
    samples should be drawn with those test sets' labels; it has no interpolation figure (the label would
    jump halfway). The (2k)² Chamfer matrix of 1-NNA costs ~20 s on one CPU core for k = 200 MNIST digits
    and grows quadratically. `ospa_cutoff` (the run's, `training.data.ospa_cutoff_of`) prices empty sets in
    the Chamfer matrix."""
    out = generation_metrics(samples, list(test_sets[: len(samples)]), ospa_cutoff)
    pairs = min(interp_pairs, len(test_sets) // 2)
    if pairs and not model.config.conditional:
        starts, ends = test_sets[: 2 * pairs : 2], test_sets[1 : 2 * pairs : 2]
        out["interp_smoothness"] = interpolation_smoothness(model, starts, ends, seed=seed)
    return out


def rasterize_packed(points: np.ndarray, offsets: np.ndarray, side: int = 28) -> Tensor:
    """Sets stored as points [Σ n_i, ≥2] (x, y in [0, 1]) with offsets [B + 1] -> binary images
    [B, side·side] float64, the inverse of the MNIST protocol: point (x, y) lights pixel (row, column) =
    round((y, x) · (side − 1)); points outside the square light its border."""
    count = len(offsets) - 1
    owner = np.repeat(np.arange(count), np.diff(offsets))
    xy = np.asarray(points[offsets[0] : offsets[-1], :2], np.float64)
    cells = np.clip(np.rint(xy * (side - 1)), 0, side - 1).astype(np.int64)
    images = torch.zeros(count * side * side, dtype=torch.float64)
    images[torch.from_numpy(owner * side * side + cells[:, 1] * side + cells[:, 0])] = 1.0
    return images.view(count, side * side)


def rasterize(sets: Sequence[Tensor], side: int = 28) -> Tensor:
    """A list of 2-D sets [n_i, 2] (n_i may be 0) -> binary images [N, side·side]; see `rasterize_packed`
    (empty sets give blank images)."""
    arrays = [np.asarray(torch.as_tensor(s, dtype=torch.float64)).reshape(-1, 2) for s in sets]
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
    points = np.concatenate(arrays) if arrays else np.zeros((0, 2))
    return rasterize_packed(points, offsets, side)


def label_swaps(model: SetAutoencoder, sets: Sequence, labels: Sequence[int], seed: int = 0) -> list[list]:
    """Conditional models: each set encoded with its own label, its code decoded with every label:
    out[c][i] is set i's code decoded as class c (the same code, so the same style, in every class)."""
    codes = model.encode(sets, labels=labels)
    return [model.decode(codes, seed=seed, labels=c) for c in range(model.config.num_classes)]
