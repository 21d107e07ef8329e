"""Answer-selection strategies over n stored samples per problem, as functions of the number of generations k.

Estimates at k < n average over random size-k subsets of the n samples (the same subsets for every strategy).
"""

from __future__ import annotations

from math import comb

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 − C(n−c, k) / C(n, k) (Chen et al. 2021, eq. 1)."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def select(answers: np.ndarray, scores: np.ndarray, how: str) -> int | None:
    """The answer chosen among one subset's samples. ``answers`` uses -1 for malformed completions.

    * ``majority``: the most frequent answer;
    * ``best_of_n``: the answer of the highest-scoring sample;
    * ``weighted``: the answer with the largest summed score (weighted best-of-N, Li et al. 2023; Snell et al.).
    Ties go to the smallest answer, so the choice is deterministic."""
    valid = answers >= 0
    if not valid.any():
        return None
    answers, scores = answers[valid], scores[valid]
    if how == "best_of_n":
        return int(answers[np.argmax(scores)])
    weights = np.ones_like(scores) if how == "majority" else scores
    totals = np.bincount(answers, weights=weights)
    return int(np.argmax(totals))


def subset_accuracy(answers: np.ndarray, scores: np.ndarray, truth: int, k: int, how: str,
                    subsets: np.ndarray) -> float:
    """Mean correctness of ``how`` over the given index subsets (rows of ``subsets``, each of size k)."""
    hits = [select(answers[s[:k]], scores[s[:k]], how) == truth for s in subsets]
    return float(np.mean(hits))


def make_subsets(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` random permutations of the n samples; a size-k subset is a row's first k entries."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(count)])
