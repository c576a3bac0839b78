"""Vector -> set decoders. A latent code z [B, latent] becomes a padded set [B, n, d] whose size is predicted.

Every decoder has the same interface:

    forward(z, sizes, generator=None) -> DecodedSet: the set at the given sizes [B], its −log p(sizes | z),
                                         and, for iterative decoders, the intermediate sets
    predict_sizes(z)                  -> [B] long, the decoder's own size estimate (inference)

During training `sizes` are the true sizes; at inference they come from predict_sizes. `generator` fixes
any sampling the decoder does (TSPN's and the slot decoder's initial elements, the point process's draws).

The decoders:
    MLPDecoder   fixed slots + presence (the baseline the source documents start from)
    RNNDecoder   emits points one at a time until a stop signal
    TSPNDecoder  a transformer over an initial set sampled at the predicted size
    SlotDecoder  slot-attention-style: slots compete (softmax over queries) for tokens of z
    DSPNDecoder  inner gradient descent on a learned set-embedding loss
    PointProcessDecoder  i.i.d. points from a density f(x | z) (Gaussian mixture or spline flow): an exact
                 likelihood p(X | z) = p(k | z) k! Π f(x_i | z) of its own, `nll(z, batch)`
"""

from setae.nn.decoders.base import DecodedSet, InitialSet, padding_mask_from_sizes
from setae.nn.decoders.dspn import DSPNDecoder
from setae.nn.decoders.mlp import MLPDecoder
from setae.nn.decoders.point_process import PointProcessDecoder
from setae.nn.decoders.rnn import RNNDecoder
from setae.nn.decoders.slot import SlotDecoder
from setae.nn.decoders.tspn import TSPNDecoder

__all__ = [
    "DSPNDecoder",
    "DecodedSet",
    "InitialSet",
    "MLPDecoder",
    "PointProcessDecoder",
    "RNNDecoder",
    "SlotDecoder",
    "TSPNDecoder",
    "padding_mask_from_sizes",
]
