"""Fitter speed (approach 3 in each form, full initialisation grid + 1,000 bootstraps on ~250 points) and the
coverage of its 95% bootstrap intervals, each form on synthetic data from a known law of that form."""

from __future__ import annotations

import time

import numpy as np

from scaling.fit.approach3 import FORMS, fit_approach3, init_grid, reducible

TRUTH = dict(E=1.8, A=400.0, B=2000.0, alpha=0.34, beta=0.28)


def synthetic(seed: int, sizes: int, budgets: int, noise: float, form: str = "chinchilla"
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e6, 3e8, sizes), budgets)
    d = np.tile(np.geomspace(2e7, 2e10, budgets), sizes)
    loss = TRUTH["E"] + reducible(form, TRUTH["A"], TRUTH["B"], TRUTH["alpha"], TRUTH["beta"], n, d)
    return n, d, loss * np.exp(rng.normal(0, noise, n.size))


def speed() -> dict:
    forms = {}
    for form in FORMS:
        n, d, loss = synthetic(0, 25, 10, 0.01, form)
        start = time.perf_counter()
        fit_approach3(n, d, loss, bootstrap=1000, seed=0, form=form)
        forms[form] = {"starts": len(init_grid(form=form)), "seconds": time.perf_counter() - start}
    return {"n_points": int(n.size), "bootstrap": 1000, "forms": forms}


def coverage(trials: int = 40, bootstrap: int = 200) -> dict:
    """How often each 95% interval holds the truth, per form, each fitted to data from a known law of its form."""
    truth = {**TRUTH, "a_limit": TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])}
    rates = {}
    for form in FORMS:
        hits = {k: 0 for k in ("E", "alpha", "beta", "a_limit")}
        for seed in range(trials):
            n, d, loss = synthetic(seed, 8, 6, 0.01, form)
            fit = fit_approach3(n, d, loss, bootstrap=bootstrap, seed=seed, form=form)
            for k in hits:
                lo, hi = fit.ci95[k]
                hits[k] += lo <= truth[k] <= hi
        rates[form] = {k: v / trials for k, v in hits.items()}
    return {"trials": trials, "bootstrap": bootstrap, "n_points": 48, "noise_log_sd": 0.01, "coverage": rates}
