"""Evaluation of set autoencoders: distances between target and reconstructed sets."""

from setae.evaluation.set_metrics import set_distances, summarize

__all__ = ["set_distances", "summarize"]
