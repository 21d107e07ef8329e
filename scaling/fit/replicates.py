"""Replicates count once: runs that share a key (a size at a budget, say, trained with several seeds) enter a law
as the mean of their values, never as their luckiest member. Imports no torch."""

from __future__ import annotations

import numpy as np


def mean_by(keys: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """The distinct keys (rows of a 2-D ``keys``, or values of a 1-D one), sorted, and the mean of each of
    ``values`` over the rows that share a key."""
    unique, inverse = np.unique(np.asarray(keys, float), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse)
    return (unique, *(np.bincount(inverse, weights=np.asarray(v, float)) / counts for v in values))
