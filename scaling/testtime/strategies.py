"""Answer-selection strategies over n stored samples per problem, as functions of the number of generations k.

A strategy picks an answer and presents one sample that gives it, so each estimate comes twice: answer-correct (the
picked value is right) and process-correct (the presented sample is right at every step). Estimates at k < n average
over random size-k subsets of the n samples (the same subsets for every strategy).
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
    """The index of the sample presented among one subset's samples. ``answers`` uses -1 for malformed ones.

    * ``majority``: the most frequent answer, presented by its first sample;
    * ``best_of_n``: the highest-scoring sample;
    * ``weighted``: the answer with the largest summed score (weighted best-of-N, Li et al. 2023; Snell et al.
      2024 §5.1), presented by its highest-scoring sample.
    Ties go to the smallest answer, so the choice is deterministic."""
    valid = np.flatnonzero(answers >= 0)
    if not len(valid):
        return None
    if how == "best_of_n":
        return int(valid[np.argmax(scores[valid])])
    weights = np.ones(len(valid)) if how == "majority" else scores[valid]
    totals = np.bincount(answers[valid], weights=weights)
    totals[np.bincount(answers[valid], minlength=len(totals)) == 0] = -np.inf  # an answer no sample gives
    chosen = int(np.argmax(totals))
    holders = valid[answers[valid] == chosen]
    return int(holders[0] if how == "majority" else holders[np.argmax(scores[holders])])


def subset_accuracy(answers: np.ndarray, scores: np.ndarray, answer_ok: np.ndarray, process_ok: np.ndarray, k: int,
                    how: str, subsets: np.ndarray) -> tuple[float, float]:
    """Mean (answer-correct, process-correct) of ``how`` over the given index subsets (each row's first k)."""
    hits = np.zeros((len(subsets), 2))
    for row, s in enumerate(subsets):
        picked = select(answers[s[:k]], scores[s[:k]], how)
        if picked is not None:
            hits[row] = answer_ok[s[picked]], process_ok[s[picked]]
    answer, process = hits.mean(0)
    return float(answer), float(process)


def make_subsets(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` random permutations of the n samples; a size-k subset is a row's first k entries."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(count)])
