"""Data as sets: MNIST pixel sets, synthetic point sets, and padded batches."""

from setae.datasets.batch import SetBatch, as_point_sets, collate_sets
from setae.datasets.idx import read_idx, write_idx
from setae.datasets.mnist import MNIST_MAX_SET_SIZE, MNISTSets, find_mnist, image_to_points
from setae.datasets.synthetic import SyntheticSets

__all__ = [
    "MNIST_MAX_SET_SIZE",
    "MNISTSets",
    "SetBatch",
    "SyntheticSets",
    "as_point_sets",
    "collate_sets",
    "find_mnist",
    "image_to_points",
    "read_idx",
    "write_idx",
]
