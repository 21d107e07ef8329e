"""From per-problem results to the study's answers: accuracy per strategy and budget, difficulty bins, the
compute-optimal policy (2-fold cross-validated), the pretraining↔inference exchange, and coverage laws."""

from __future__ import annotations

import numpy as np

NUM_BINS = 5


def difficulty_bins(score: np.ndarray, easy_high: bool = True) -> np.ndarray:
    """Bins 1 (easiest) .. 5 (hardest) as quantiles of a per-problem score (ties broken by order)."""
    order = np.argsort(-score if easy_high else score, kind="stable")
    bins = np.empty(len(score), dtype=int)
    bins[order] = 1 + (np.arange(len(score)) * NUM_BINS) // len(score)
    return bins


def cross_validated_policy(acc: dict[str, np.ndarray], bins: np.ndarray, folds: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, dict[int, list[str]]]:
    """Per-problem accuracy of the compute-optimal policy (best strategy per bin, chosen on the other fold) and of
    the best fixed strategy (one for all bins, chosen on the other fold). ``acc`` maps strategy → per-problem
    accuracy at one budget.

    A bin keeps the fixed strategy unless another beats it on the training fold by more than one standard error
    of that bin's accuracy: with a few dozen problems per bin, an unregularised per-bin argmax mostly fits noise."""
    names = list(acc)
    table = np.stack([acc[n] for n in names])  # (strategies, problems)
    policy, fixed = np.zeros(table.shape[1]), np.zeros(table.shape[1])
    chosen: dict[int, list[str]] = {}
    for fold in (0, 1):
        train, test = folds != fold, folds == fold
        best_fixed = int(np.argmax(table[:, train].mean(1)))
        fixed[test] = table[best_fixed, test]
        for b in np.unique(bins):
            tr, te = train & (bins == b), test & (bins == b)
            best = best_fixed
            if tr.any():
                means = table[:, tr].mean(1)
                p = means[best_fixed]
                standard_error = np.sqrt(max(p * (1 - p), 1e-4) / tr.sum())
                if means.max() - p > standard_error:
                    best = int(np.argmax(means))
            policy[te] = table[best, te]
            chosen.setdefault(int(b), []).append(names[best])
    return policy, fixed, chosen


def bootstrap_ci(values: np.ndarray, seed: int, samples: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(samples)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def exchange_multiplier(n_small: float, d_small: float, n_large: float, d_large: float, ratio: float,
                        verifier_params: float = 0.0, verifier_train_flops: float = 0.0) -> float:
    """Generations per question the small model can afford at the large model's total FLOPs (Snell et al. 2024,
    §7): pretraining 6·N·D, inference 2·N per token, inference tokens D_inf = R·D_small.

    With equal data and no verifier this is f = M + 3(M − 1)/R for M = N_large / N_small; here the models may be
    trained on different token counts, and a verifier adds 2·N_v per scored token and its training FLOPs."""
    d_inf = ratio * d_small
    large = 6 * n_large * d_large + 2 * n_large * d_inf
    small_fixed = 6 * n_small * d_small + verifier_train_flops
    return (large - small_fixed) / (2 * (n_small + verifier_params) * d_inf)


def fit_coverage(ks: np.ndarray, coverage: np.ndarray) -> dict:
    """coverage(k) ≈ exp(a·k^b) (Brown et al. 2024, "Large Language Monkeys", §3): a line in
    log(−log coverage) vs log k, over the k where 0 < coverage < 1."""
    ks, coverage = np.asarray(ks, float), np.asarray(coverage, float)
    ok = (coverage > 0) & (coverage < 1)
    if ok.sum() < 2:
        return {"a": None, "b": None, "r2": None, "max_abs_error": None, "note": "coverage saturated or zero"}
    x, y = np.log(ks[ok]), np.log(-np.log(coverage[ok]))
    slope, intercept = np.polyfit(x, y, 1)
    predicted_y = intercept + slope * x
    r2 = 1 - ((y - predicted_y) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12)
    a, b = -float(np.exp(intercept)), float(slope)
    return {"a": a, "b": b, "r2": float(r2),
            "max_abs_error": float(np.max(np.abs(np.exp(a * ks**b) - coverage)))}
