"""Kaplan et al. 2020 ("Scaling Laws for Neural Language Models") power laws.

* L(N) = (N_c / N)^α_N  (eq. 1.1), L(D) = (D_c / D)^α_D  (eq. 1.2), L(C) = (C_c / C)^α_C on the compute frontier
  (eq. 1.3) — each also with an irreducible term: L = E + (X_c / X)^α.
* the joint L(N, D) = [(N_c / N)^(α_N / α_D) + D_c / D]^α_D  (eq. 1.5).

L(N) and L(D) are fitted only on points the other variable does not limit (:func:`unlimited_points`); L(C) on the
compute frontier, one size per budget (:func:`frontier`). All fits are least squares on log-loss.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from scaling.fit.approach3 import check_not_one_curve
from scaling.fit.replicates import mean_by

MIN_POINTS_1D = 3
MIN_POINTS_JOINT = 5


def _scale(name: str, log_value: float) -> float:
    """A law's scale from its log. A variable the losses barely depend on sends the scale past any float: that law
    is not identified, and is refused rather than written as infinity."""
    if not log_value < np.log(np.finfo(float).max):
        raise ValueError(f"{name} runs off to infinity: the losses barely depend on this variable")
    return float(np.exp(log_value))


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
        return {"alpha": float(alpha), "x_c": _scale("x_c", log_xc), "E": 0.0,
                "rmse_log": float(np.sqrt(np.mean(resid**2)))}

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
    return {"alpha": float(alpha_), "x_c": _scale("x_c", log_xc_), "E": float(np.exp(log_e)),
            "rmse_log": float(np.sqrt(np.mean(best.fun**2)))}


def fit_joint(n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> dict:
    """Kaplan eq. 1.5 on all runs; refused, like approach 3, where the runs cannot tell N's effect from D's."""
    n, d, loss = (np.asarray(v, float) for v in (n, d, loss))
    if len(n) < MIN_POINTS_JOINT:
        raise ValueError(f"needs at least {MIN_POINTS_JOINT} runs, got {len(n)}")
    check_not_one_curve(n, d)
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
    return {"N_c": _scale("N_c", log_nc), "D_c": _scale("D_c", log_dc), "alpha_N": float(alpha_n),
            "alpha_D": float(alpha_d), "rmse_log": float(np.sqrt(np.mean(best.fun**2))),
            "form": "L(N, D) = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D"}


CONVERGED_GAIN_PER_DOUBLING = 0.01
CONVERGENCE_RULE = (f"a size enters L(N) (a token count enters L(D)) only where doubling the other variable "
                    f"improved the loss by less than {100 * CONVERGED_GAIN_PER_DOUBLING:g}% at its last two runs; "
                    "its loss at the larger one is used")


def unlimited_points(x: np.ndarray, other: np.ndarray, loss: np.ndarray, decimals: int = 2
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Points of a 1-D law in ``x`` that the other variable does not limit (see ``CONVERGENCE_RULE``).

    Kaplan et al. define L(N) at convergence in data and L(D) for models large enough not to limit it (§1.2):
    for each distinct x (log10 rounded to ``decimals``) with two or more runs, the runs at the two largest values
    of ``other`` must differ by less than the threshold per doubling. Returns x, loss and one reason per x left out.
    """
    x, other, loss = (np.asarray(v, float) for v in (x, other, loss))
    keys = np.round(np.log10(x), decimals)
    xs, ls, left_out = [], [], []
    for k in np.unique(keys):
        rows = np.flatnonzero(keys == k)
        # Runs at one (x, other) — seeds — count once, with their mean log-loss.
        others, mean_log_loss = mean_by(other[rows], np.log(loss[rows]))
        if len(others) < 2:
            left_out.append(f"{10**k:.3g}: one run, convergence unknown")
            continue
        (o1, o2), (log_l1, log_l2) = others[-2:], mean_log_loss[-2:]
        l2 = float(np.exp(log_l2))
        gain = (log_l1 - log_l2) / np.log2(o2 / o1)
        if gain >= CONVERGED_GAIN_PER_DOUBLING:
            left_out.append(f"{10**k:.3g}: still improving {100 * gain:.1f}% per doubling")
            continue
        xs.append(float(np.exp(np.log(x[rows]).mean())))
        ls.append(float(l2))
    return np.array(xs), np.array(ls), left_out


def frontier(nominal_c: np.ndarray, n: np.ndarray, c: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The compute-efficient frontier, one size per nominal budget: each budget's best size, kept when no cheaper
    budget's best beats it (Kaplan et al. 2020, §6.1). Runs of one size at one budget (seeds) count once, with their
    mean log-loss: the best of several seeds is a lucky draw, not the size's loss."""
    nominal_c, n, c, loss = (np.asarray(v, float) for v in (nominal_c, n, c, loss))
    configs, mean_log_loss, mean_c = mean_by(np.stack([nominal_c, n], axis=1), np.log(loss), c)
    mean_loss = np.exp(mean_log_loss)
    best = [np.flatnonzero(configs[:, 0] == k)[np.argmin(mean_loss[configs[:, 0] == k])]
            for k in np.unique(nominal_c)]
    keep, lowest = [], np.inf
    for i in best:  # np.unique sorts budgets: cheapest first
        if mean_loss[i] < lowest:
            lowest = mean_loss[i]
            keep.append(i)
    return mean_c[keep], mean_loss[keep]
