"""Chinchilla approach 2: IsoFLOP profiles (Hoffmann et al. 2022, §3.2).

For each FLOP budget C, loss is examined against log N across the models trained with that budget; the minimum
gives N_opt(C), and D_opt(C) is read off the same profile at N_opt (log D interpolated along the profile against
log N), so D_opt is the number of tokens actually trained there, whatever FLOP convention C is counted in.
Power laws N_opt ∝ C^a and D_opt ∝ C^b follow by log-log regression, each with its own interval: a + b ≈ 1 only
where C ∝ N·D (C = 6ND); under a convention with attention or output-layer FLOPs it need not be.

Minimum finders:
* ``akima`` (default when a budget has ≥ 4 models): Akima interpolation of log-loss vs log-N and the argmin on a
  fine grid, as Porian et al. 2024 (arXiv 2406.19146, code `analysis.py: interp_flop`) did;
* ``parabola``: a quadratic in log N (Hoffmann et al.); biased when the profile is asymmetric;
* ``huber``: the same quadratic fitted with a Huber loss, robust to one bad run.

A minimum on the edge of the sampled sizes is not a minimum: such budgets are excluded with a message. Budgets are
the grid's nominal budgets when known, else grouped by rounding log10 C, so runs whose actual FLOPs differ slightly
from the nominal budget still group. Bootstrap: runs are resampled with replacement within each budget and the
optima and both laws refitted (replicates with fewer than two interior optima are dropped and counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import Akima1DInterpolator
from scipy.optimize import least_squares

from scaling.fit.powerlaw import PowerLaw, fit_power_law
from scaling.fit.replicates import mean_by

METHODS = ("akima", "parabola", "huber")
MIN_SIZES_PER_BUDGET = 3
MIN_BUDGETS = 2
AKIMA_MIN_POINTS = 4


@dataclass(frozen=True)
class BudgetOptimum:
    compute: float
    n_opt: float
    d_opt: float
    loss_opt: float
    method: str


@dataclass
class Approach2Fit:
    method: str
    optima: list[BudgetOptimum]
    n_law: PowerLaw
    d_law: PowerLaw
    excluded: list[str] = field(default_factory=list)
    ci95: dict[str, list[float]] = field(default_factory=dict)
    """Bootstrap percentile intervals of a and b (empty without a bootstrap)."""
    bootstrap: int = 0
    """Replicates that gave a fit (of those drawn)."""

    def as_dict(self) -> dict:
        ci = self.ci95 or {"a": list(self.n_law.ci95), "b": list(self.d_law.ci95)}
        return {"a": self.n_law.exponent, "b": self.d_law.exponent, "a_plus_b": self.n_law.exponent +
                self.d_law.exponent, "ci95": ci, "ci95_method": "bootstrap" if self.ci95 else "t (regression)",
                "ci95_regression": {"a": list(self.n_law.ci95), "b": list(self.d_law.ci95)},
                "n_coefficient": self.n_law.coefficient, "d_coefficient": self.d_law.coefficient,
                "method": self.method, "n_budgets": len(self.optima), "excluded": self.excluded,
                "bootstrap": self.bootstrap, "optima": [o.__dict__ for o in self.optima]}


def group_budgets(compute: np.ndarray, decimals: int = 1) -> np.ndarray:
    """Nominal budget of each run: 10^(log10 C rounded to ``decimals``), then the geometric mean of its group."""
    keys = np.round(np.log10(np.asarray(compute, float)), decimals)
    out = np.empty(len(keys))
    for k in np.unique(keys):
        members = keys == k
        out[members] = np.exp(np.log(np.asarray(compute, float)[members]).mean())
    return out


def _quadratic_min(x: np.ndarray, y: np.ndarray, robust: bool) -> tuple[float, float] | None:
    coeffs = np.polyfit(x, y, 2)
    if robust:
        res = least_squares(lambda c: np.polyval(c, x) - y, coeffs, loss="huber", f_scale=0.01)
        coeffs = res.x
    if coeffs[0] <= 0:
        return None  # no minimum: the profile is concave
    x_min = -coeffs[1] / (2 * coeffs[0])
    return float(x_min), float(np.polyval(coeffs, x_min))


def _akima_min(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    grid = np.linspace(x[0], x[-1], 2000)
    values = Akima1DInterpolator(x, y)(grid)
    i = int(np.argmin(values))
    return float(grid[i]), float(values[i])


def find_optimum(n: np.ndarray, d: np.ndarray, loss: np.ndarray, compute: float, method: str
                 ) -> BudgetOptimum | str:
    """The loss-minimising size of one IsoFLOP profile and the tokens trained there, or why there is none."""
    # Several runs of one size in a budget (seeds, near-identical FLOPs): average their log-loss and log-tokens.
    x, y, log_d = mean_by(np.log(np.asarray(n, float)), np.log(np.asarray(loss, float)),
                          np.log(np.asarray(d, float)))
    if len(x) < MIN_SIZES_PER_BUDGET:
        return f"C={compute:.3g}: only {len(x)} distinct sizes (needs {MIN_SIZES_PER_BUDGET})"
    if method == "akima" and len(x) >= AKIMA_MIN_POINTS:
        x_min, y_min = _akima_min(x, y)
        used = "akima"
    else:
        found = _quadratic_min(x, y, robust=method == "huber")
        if found is None:
            return f"C={compute:.3g}: the loss profile has no minimum (concave)"
        (x_min, y_min), used = found, ("huber" if method == "huber" else "parabola")
    if not (x[0] < x_min < x[-1]):
        return (f"C={compute:.3g}: minimum at the edge of the sampled sizes "
                f"(N {np.exp(x[0]):.3g}..{np.exp(x[-1]):.3g}); extend the size range for this budget")
    return BudgetOptimum(compute=compute, n_opt=float(np.exp(x_min)), d_opt=float(np.exp(np.interp(x_min, x, log_d))),
                         loss_opt=float(np.exp(y_min)), method=used)


def _optima(n: np.ndarray, d: np.ndarray, loss: np.ndarray, budgets: np.ndarray, method: str
            ) -> tuple[list[BudgetOptimum], list[str]]:
    optima: list[BudgetOptimum] = []
    excluded: list[str] = []
    for c in np.unique(budgets):
        members = budgets == c
        if members.sum() < MIN_SIZES_PER_BUDGET:
            runs = int(members.sum())
            excluded.append(f"C={c:.3g}: only {runs} run{'s' if runs > 1 else ''} (needs {MIN_SIZES_PER_BUDGET} "
                            "sizes)")
            continue
        found = find_optimum(n[members], d[members], loss[members], float(c), method)
        (optima if isinstance(found, BudgetOptimum) else excluded).append(found)
    return optima, excluded


def fit_approach2(n: np.ndarray, d: np.ndarray, loss: np.ndarray, compute: np.ndarray, method: str = "akima",
                  budgets: np.ndarray | None = None, bootstrap: int = 0, seed: int = 0) -> Approach2Fit:
    """IsoFLOP optima of runs with ``n`` parameters, ``d`` tokens, final ``loss`` and ``compute`` FLOPs."""
    if method not in METHODS:
        raise ValueError(f"unknown approach-2 method {method!r}; use one of {', '.join(METHODS)}")
    n, d, loss, compute = (np.asarray(v, float) for v in (n, d, loss, compute))
    budgets = group_budgets(compute) if budgets is None else np.asarray(budgets, float)
    optima, excluded = _optima(n, d, loss, budgets, method)
    if len(optima) < MIN_BUDGETS:
        raise ValueError(f"approach 2 needs at least {MIN_BUDGETS} FLOP budgets with an interior minimum, found "
                         f"{len(optima)}" + (f" ({'; '.join(excluded)})" if excluded else ""))
    cs = np.array([o.compute for o in optima])
    fit = Approach2Fit(method=method, optima=optima, n_law=fit_power_law(cs, [o.n_opt for o in optima]),
                       d_law=fit_power_law(cs, [o.d_opt for o in optima]), excluded=excluded)
    if bootstrap <= 0:
        return fit
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(budgets == c) for c in np.unique(budgets)]
    a_s, b_s = [], []
    for _ in range(bootstrap):
        rows = np.concatenate([rng.choice(g, len(g)) for g in groups])
        boot, _ = _optima(n[rows], d[rows], loss[rows], budgets[rows], method)
        if len(boot) >= MIN_BUDGETS:
            bc = [o.compute for o in boot]
            a_s.append(fit_power_law(bc, [o.n_opt for o in boot]).exponent)
            b_s.append(fit_power_law(bc, [o.d_opt for o in boot]).exponent)
    if len(a_s) >= max(10, bootstrap // 2):
        fit.ci95 = {"a": np.percentile(a_s, [2.5, 97.5]).tolist(), "b": np.percentile(b_s, [2.5, 97.5]).tolist()}
        fit.bootstrap = len(a_s)
    else:
        fit.excluded.append(f"bootstrap: only {len(a_s)} of {bootstrap} replicates had {MIN_BUDGETS} interior "
                            "optima; the interval shown is the regression's")
    return fit
