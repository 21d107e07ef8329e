"""Kaplan et al. 2020 ("Scaling Laws for Neural Language Models") power laws.

* L(N) = (N_c / N)^α_N  (eq. 1.1), L(D) = (D_c / D)^α_D  (eq. 1.2), L(C) = (C_c / C)^α_C on the compute frontier
  (eq. 1.3) — each also with an irreducible term: L = E + (X_c / X)^α.
* the joint L(N, D) = [(N_c / N)^(α_N / α_D) + D_c / D]^α_D  (eq. 1.5).

L(N) is fitted on the lowest loss reached at each N (the most data), L(D) on the lowest loss at each D, L(C) on the
frontier points. All fits are least squares on log-loss.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

MIN_POINTS_1D = 3
MIN_POINTS_JOINT = 5


def _exp(value: float) -> float:
    """exp that returns inf for a nearly flat law's enormous scale instead of warning."""
    with np.errstate(over="ignore"):
        return float(np.exp(value))


def fit_1d(x: np.ndarray, loss: np.ndarray, with_floor: bool) -> dict:
    """L = (x_c/x)^α, or E + (x_c/x)^α with ``with_floor``."""
    x, loss = np.asarray(x, float), np.asarray(loss, float)
    need = MIN_POINTS_1D + int(with_floor)
    if len(x) < need:
        raise ValueError(f"needs at least {need} distinct points, got {len(x)}")
    lx, ll = np.log(x), np.log(loss)
    slope, intercept = np.polyfit(lx, ll, 1)
    alpha, log_xc = -slope, intercept / max(-slope, 1e-12)
    if not with_floor:
        resid = ll - (intercept + slope * lx)
        return {"alpha": float(alpha), "x_c": _exp(log_xc), "E": 0.0, "rmse_log": float(np.sqrt(np.mean(resid**2)))}

    def residual(p: np.ndarray) -> np.ndarray:
        log_xc_, alpha_, log_e = p
        return np.logaddexp(alpha_ * (log_xc_ - lx), log_e) - ll

    best = None
    for e_frac in (0.1, 0.5, 0.9):
        start = np.array([log_xc, max(alpha, 0.05), np.log(e_frac * loss.min())])
        res = least_squares(residual, start, method="lm" if len(x) > 3 else "trf")
        if best is None or res.cost < best.cost:
            best = res
    log_xc_, alpha_, log_e = best.x
    return {"alpha": float(alpha_), "x_c": _exp(log_xc_), "E": float(np.exp(log_e)),
            "rmse_log": float(np.sqrt(np.mean(best.fun**2)))}


def fit_joint(n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> dict:
    """Kaplan eq. 1.5 on all runs."""
    n, d, loss = (np.asarray(v, float) for v in (n, d, loss))
    if len(n) < MIN_POINTS_JOINT:
        raise ValueError(f"needs at least {MIN_POINTS_JOINT} runs, got {len(n)}")
    ln, ld, ll = np.log(n), np.log(d), np.log(loss)

    def residual(p: np.ndarray) -> np.ndarray:
        log_nc, log_dc, alpha_n, alpha_d = p
        inner = np.logaddexp((alpha_n / alpha_d) * (log_nc - ln), log_dc - ld)
        return alpha_d * inner - ll

    best = None
    for alpha_n in (0.05, 0.1, 0.3):
        for alpha_d in (0.05, 0.1, 0.3):
            start = np.array([np.log(n.max()) + 5, np.log(d.max()) + 5, alpha_n, alpha_d])
            res = least_squares(residual, start, bounds=([-np.inf, -np.inf, 1e-4, 1e-4], np.inf))
            if best is None or res.cost < best.cost:
                best = res
    log_nc, log_dc, alpha_n, alpha_d = best.x
    return {"N_c": float(np.exp(log_nc)), "D_c": float(np.exp(log_dc)), "alpha_N": float(alpha_n),
            "alpha_D": float(alpha_d), "rmse_log": float(np.sqrt(np.mean(best.fun**2))),
            "form": "L(N, D) = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D"}


def lowest_per(key: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each distinct key, the lowest loss."""
    keys = np.unique(key)
    return keys, np.array([loss[key == k].min() for k in keys])
