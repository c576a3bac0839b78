"""Masked building blocks for sets: attention, encoders, decoders, matching and losses."""

from setae.nn.attention import ISAB, PMA, SAB, MultiheadAttentionBlock
from setae.nn.decoders import (
    DSPNDecoder,
    MLPDecoder,
    PointProcessDecoder,
    RNNDecoder,
    SlotDecoder,
    TSPNDecoder,
)
from setae.nn.encoders import DeepSets, RNNEncoder, SetTransformer, masked_pool
from setae.nn.losses import chamfer_from_sq_dist, chamfer_loss, hungarian_loss, pairwise_sq_dist
from setae.nn.matching import hungarian_match, match_indices
from setae.nn.size_heads import CategoricalSizeHead, PoissonSizeHead

__all__ = [
    "ISAB",
    "PMA",
    "SAB",
    "CategoricalSizeHead",
    "DSPNDecoder",
    "DeepSets",
    "MLPDecoder",
    "MultiheadAttentionBlock",
    "PointProcessDecoder",
    "PoissonSizeHead",
    "RNNDecoder",
    "RNNEncoder",
    "SetTransformer",
    "SlotDecoder",
    "TSPNDecoder",
    "masked_pool",
    "chamfer_from_sq_dist",
    "chamfer_loss",
    "hungarian_loss",
    "pairwise_sq_dist",
    "hungarian_match",
    "match_indices",
]
