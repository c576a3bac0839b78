"""Padded batches of variable-size sets.

A batch of B sets of sizes n_1..n_B in R^D is stored as `points [B, N, D]` with N = max n_i, and a boolean
`padding_mask [B, N]` that is True where a row is padding (PyTorch's `key_padding_mask` convention).
Padded rows hold zeros; every module in setae ignores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from setae.errors import SetaeError


@dataclass
class SetBatch:
    """B padded sets. points [B, N, D] float, padding_mask [B, N] bool (True = padding), sizes [B] long,
    labels [B] long (-1 where a set has no label). `source` (set-to-set pairs): the B input sets the
    encoder reads, whose targets these sets are; None: the encoder reads these sets."""

    points: torch.Tensor
    padding_mask: torch.Tensor
    sizes: torch.Tensor
    labels: torch.Tensor
    source: SetBatch | None = None

    def __len__(self) -> int:
        return self.points.shape[0]

    @property
    def encoder_input(self) -> SetBatch:
        """The sets the encoder reads: `source` for pairs, else these sets."""
        return self if self.source is None else self.source

    def to(self, device: torch.device | str) -> SetBatch:
        source = None if self.source is None else self.source.to(device)
        tensors = (self.points, self.padding_mask, self.sizes, self.labels)
        return SetBatch(*(t.to(device) for t in tensors), source=source)

    def unpad(self) -> list[torch.Tensor]:
        """The sets as a list of [n_i, D] tensors."""
        return [p[: int(n)] for p, n in zip(self.points, self.sizes, strict=True)]

    @classmethod
    def from_sets(
        cls, sets: Sequence[torch.Tensor], labels: Sequence[int] | None = None, pad_to: int | None = None
    ) -> SetBatch:
        """Pad a list of [n_i, D] float tensors (n_i may be 0) to [B, max(n_i) or pad_to, D]."""
        if len(sets) == 0:
            raise SetaeError("cannot batch an empty list of sets")
        dim = sets[0].shape[1]
        sizes = torch.tensor([s.shape[0] for s in sets], dtype=torch.long)
        n_max = int(sizes.max()) if pad_to is None else pad_to
        if int(sizes.max()) > n_max:
            raise SetaeError(f"a set of size {int(sizes.max())} does not fit pad_to={pad_to}")
        points = sets[0].new_zeros(len(sets), n_max, dim)
        for i, s in enumerate(sets):
            points[i, : s.shape[0]] = s
        padding_mask = torch.arange(n_max)[None, :] >= sizes[:, None]
        label_t = torch.full((len(sets),), -1, dtype=torch.long)
        if labels is not None:
            label_t = torch.as_tensor(labels, dtype=torch.long)
        return cls(points, padding_mask, sizes, label_t)


def collate_sets(items: Sequence[tuple[torch.Tensor, int]]) -> SetBatch:
    """DataLoader collate function for datasets whose items are `(points [n, D], label)`."""
    sets, labels = zip(*items, strict=True)
    return SetBatch.from_sets(list(sets), labels=list(labels))


def as_point_sets(
    sets: Sequence, dim: int | None = None, max_size: int | None = None, source: str = "input"
) -> list[torch.Tensor]:
    """Validate user sets (tensors or arrays [n_i, D]) and return them as float32 tensors.

    Raises SetaeError naming `source`, the item index and the problem: not 2-D, wrong dimension, NaN/inf,
    or more points than `max_size`.
    """
    if (torch.is_tensor(sets) or isinstance(sets, np.ndarray)) and sets.ndim == 2:
        raise SetaeError(
            f"{source}: got one array of shape {tuple(sets.shape)}; pass a list of sets, e.g. [points] "
            "for one set"
        )
    out = []
    for i, s in enumerate(sets):
        t = torch.as_tensor(np.asarray(s, dtype=np.float32) if not torch.is_tensor(s) else s).float()
        if t.ndim == 1 and t.numel() == 0:
            t = t.reshape(0, dim or 0)
        if t.ndim != 2:
            raise SetaeError(f"{source}: set {i} has shape {tuple(t.shape)}; expected [n, D]")
        if dim is not None and t.shape[1] != dim:
            raise SetaeError(
                f"{source}: set {i} has points of dimension {t.shape[1]}; the model expects {dim}"
            )
        if not torch.isfinite(t).all():
            raise SetaeError(f"{source}: set {i} contains NaN or infinite coordinates")
        if max_size is not None and t.shape[0] > max_size:
            raise SetaeError(
                f"{source}: set {i} has {t.shape[0]} points; the model handles at most {max_size}"
            )
        out.append(t)
    return out
