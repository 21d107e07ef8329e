"""Fitter speed (approach 3, full initialisation grid + 1,000 bootstraps on ~250 points) and the coverage of its
95% bootstrap intervals on synthetic data from a known law."""

from __future__ import annotations

import time

import numpy as np

from scaling.fit.approach3 import fit_approach3

TRUTH = dict(E=1.8, A=400.0, B=2000.0, alpha=0.34, beta=0.28)


def synthetic(seed: int, sizes: int, budgets: int, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e6, 3e8, sizes), budgets)
    d = np.tile(np.geomspace(2e7, 2e10, budgets), sizes)
    loss = TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] / d ** TRUTH["beta"]
    return n, d, loss * np.exp(rng.normal(0, noise, n.size))


def speed() -> dict:
    n, d, loss = synthetic(0, 25, 10, 0.01)
    start = time.perf_counter()
    fit = fit_approach3(n, d, loss, bootstrap=1000, seed=0, form="chinchilla")
    return {"n_points": int(n.size), "starts": 4500, "bootstrap": 1000, "seconds": time.perf_counter() - start,
            "alpha": fit.alpha, "beta": fit.beta}


def coverage(trials: int = 40, bootstrap: int = 200) -> dict:
    hits = {k: 0 for k in ("E", "alpha", "beta", "a_limit")}
    truth = {**TRUTH, "a_limit": TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])}
    for seed in range(trials):
        n, d, loss = synthetic(seed, 8, 6, 0.01)
        fit = fit_approach3(n, d, loss, bootstrap=bootstrap, seed=seed, form="chinchilla")
        for k in hits:
            lo, hi = fit.ci95[k]
            hits[k] += lo <= truth[k] <= hi
    return {"trials": trials, "bootstrap": bootstrap, "n_points": 48, "noise_log_sd": 0.01,
            "coverage": {k: v / trials for k, v in hits.items()}}
