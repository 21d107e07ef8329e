"""Chinchilla approach 3: a parametric loss L(N, D) fitted to every run, in one of two forms.

- ``chinchilla``: L = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2). The two reducible terms add.
- ``kaplan_floor``: L = E + ((A/N^α)^(1/β) + (B/D^β)^(1/β))^β, Kaplan et al. 2020's eq. 1.5,
  L = ((N_c/N)^(α/β) + D_c/D)^β with A = N_c^α, B = D_c^β, plus the irreducible floor E that Henighan et al. 2020
  (arXiv 2010.14701) add to every law. It has the same five parameters with the same limits (E + A/N^α as D → ∞,
  E + B/D^β as N → ∞), but where both terms matter it is lower than their sum: its IsoFLOP profiles are deeper at
  their minimum. On the project's own studies the separable form's residuals have that shape and its extrapolation
  to a held-out budget is biased high; this form's is not (README, "Why approach 3's default form is not
  Chinchilla's"), so it is the default (DEFAULT_FORM). Published fits were made in Chinchilla's form.

Hoffmann et al. 2022, §3.3 and Appendix D.2: fit in log space with the log-sum-exp form

    log L̂(N, D) = LSE(a − α·log N,  b − β·log D,  e),      A = eᵃ, B = eᵇ, E = eᵉ,

(for ``kaplan_floor``: LSE(β·LSE((a − α·log N)/β, (b − β·log D)/β), e))

minimising the **sum** of Huber(δ = 1e-3) losses of log L̂ − log L over the runs (summed, not averaged: an average
shrinks the gradient by 1/n and L-BFGS's tolerances then stop it early — Besiroglu et al. 2024, "Chinchilla
Scaling: A replication attempt"), from the grid of initialisations α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −.5, …, 1},
a, b ∈ {0, 5, …, 25} (4,500 starts; β = 0 left out for ``kaplan_floor``, which divides by β), keeping the best.

Speed: every start is optimised at once by a batched quasi-Newton (BFGS) in numpy with the analytic gradient; the
best few results are then polished with scipy's L-BFGS-B. Bootstrap replicates reweight the same points by
multinomial counts and restart from the best few optima of the full fit, all replicates in one batch.

Compute-optimal allocation: N_opt(C), D_opt(C) minimise L(N, D) subject to C = f(N)·D, with f(N) the FLOPs per
token of the fit's convention (``scaling.fit.compute``). Under C = 6·N·D this is Hoffmann et al. 2022, eq. 4:
N_opt(C) = G·(C/6)^a, D_opt(C) = G⁻¹·(C/6)^b, G = (αA / βB)^(1/(α+β)), a = β/(α+β), b = α/(α+β); in the
``kaplan_floor`` form the optimum has (B/D^β)^(1/β) = (α/β)·(A/N^α)^(1/β), so G = ((α/β)·(A/B)^(1/β))^(β/(α+β)) with
the same a and b (setting the derivative of the bracket along the budget to zero); otherwise it
is solved numerically, and the exponents a, b quoted for the runs' range are the slopes of log N_opt and log D_opt
against log C across that range (β/(α+β) and α/(α+β) remain their limits at large C).

Identifiability: the form has five parameters, and N and D must vary independently. A table whose runs all sit at
one compute level (D a function of N), or with fewer than six distinct (N, D) points or three distinct N or D, is
refused with the reason (:class:`NotIdentifiable`) rather than fitted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from scaling.fit.compute import FlopsPerToken

PARAM_NAMES = ("a", "b", "e", "alpha", "beta")  # optimisation variables, in this order
FORMS = {"chinchilla": "L(N, D) = E + A / N^alpha + B / D^beta",
         "kaplan_floor": "L(N, D) = E + ((A / N^alpha)^(1/beta) + (B / D^beta)^(1/beta))^beta"}
DEFAULT_FORM = "kaplan_floor"
FORM_WHY = (
    "kaplan_floor is Kaplan et al. 2020's eq. 1.5 with an irreducible floor E (Henighan et al. 2020): five "
    "parameters with the same limits as Chinchilla's E + A/N^α + B/D^β, but the two reducible terms combine as a "
    "1/β-norm rather than a sum. On this project's own studies the separable form predicted the largest budget too "
    "high by 1.0-2.0% in 9 of 20 draws, this form within 1% in all. On published tables it fits 3 of the 4 Gemstones "
    "tables and 12 of Porian et al.'s 15 more closely, and predicts their largest sizes or budgets better in 4 of 4 "
    "and 11 of 15 (python -m bench --only law_forms). Chinchilla's form, in which published fits were made, is one "
    "flag away: --form chinchilla.")
HUBER_DELTA = 1e-3
MAX_RESIDUALS = 200  # residuals a prediction interval combines with every bootstrap fit


def check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"unknown law form {form!r}; use one of {', '.join(FORMS)}")


@np.errstate(over="ignore", invalid="ignore")  # a law whose terms overflow gives inf: the callers refuse it by name
def reducible(form: str, a_: np.ndarray, b_: np.ndarray, alpha: np.ndarray, beta: np.ndarray, n: np.ndarray,
              d: np.ndarray) -> np.ndarray:
    """L − E of ``form`` with A = ``a_``, B = ``b_`` (broadcast together)."""
    by_n, by_d = a_ / np.asarray(n, float) ** alpha, b_ / np.asarray(d, float) ** beta
    if form == "chinchilla":
        return by_n + by_d
    return (by_n ** (1.0 / beta) + by_d ** (1.0 / beta)) ** beta


def init_grid(coarse: bool = False, form: str = "chinchilla") -> np.ndarray:
    """The Chinchilla grid of starting points, shape (4500, 5) in PARAM_NAMES order; ``coarse``: three values per
    axis inside the same ranges (243 starts), for the many refits of the out-of-sample checks. ``kaplan_floor``
    leaves out β = 0, where its form is undefined (3,600 starts of the full grid)."""
    alphas = betas = np.arange(0.0, 2.01, 0.5)
    es = np.arange(-1.0, 1.01, 0.5)
    abs_ = np.arange(0.0, 25.01, 5.0)
    if coarse:
        alphas = betas = np.array([0.5, 1.0, 1.5])
        es, abs_ = np.array([-1.0, 0.0, 1.0]), np.array([0.0, 10.0, 20.0])
    grid = np.array([(a, b, e, al, be) for a, b, e, al, be in itertools.product(abs_, abs_, es, alphas, betas)])
    return grid if form == "chinchilla" else grid[grid[:, 4] > 0]


def _lse2(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log(eˣ + eʸ) and the weights eˣ/(eˣ + eʸ), eʸ/(eˣ + eʸ), without overflow."""
    m = np.maximum(x, y)
    wx, wy = np.exp(x - m), np.exp(y - m)
    total = wx + wy
    return m + np.log(total), wx / total, wy / total


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray,
               weights: np.ndarray, delta: float, form: str) -> tuple[np.ndarray, np.ndarray]:
    """Summed Huber loss and its gradient for a batch of parameter vectors.

    theta (S, 5); weights (S, n) or (n,): per-start point weights (bootstrap counts). Returns f (S,), g (S, 5)."""
    a, b, e, alpha, beta = (theta[:, i : i + 1] for i in range(5))
    t1, t2 = a - alpha * log_n, b - beta * log_d  # log A/N^α, log B/D^β
    if form == "chinchilla":  # log R = LSE(t1, t2)
        log_r, w1, w2 = _lse2(t1, t2)
        d_log_r = (w1, w2, -w1 * log_n, -w2 * log_d)
    else:  # log R = β·LSE(t1/β, t2/β) = β·s; ∂/∂β = s − (w1·t1 + w2·b)/β, as t2/β = b/β − log D
        with np.errstate(divide="ignore", invalid="ignore"):
            s, w1, w2 = _lse2(t1 / beta, t2 / beta)
            log_r = beta * s
            d_log_r = (w1, w2, -w1 * log_n, s - (w1 * t1 + w2 * b) / beta)
    log_l_hat, w_r, w_e = _lse2(log_r, np.broadcast_to(e, log_r.shape))
    r = log_l_hat - log_l
    abs_r = np.abs(r)
    huber = np.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta))
    dh = np.clip(r, -delta, delta) * weights
    dr = dh * w_r
    grad = np.stack([(dr * d_log_r[0]).sum(1), (dr * d_log_r[1]).sum(1), (dh * w_e).sum(1),
                     (dr * d_log_r[2]).sum(1), (dr * d_log_r[3]).sum(1)], axis=1)
    return (huber * weights).sum(1), grad


def _batched_bfgs(theta0: np.ndarray, fun, max_iter: int = 400, gtol: float = 1e-10,
                  ftol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``fun`` (batched f, g) from every row of ``theta0`` with BFGS and a backtracking Armijo search."""
    theta = theta0.copy()
    s_count, dim = theta.shape
    h_inv = np.tile(np.eye(dim), (s_count, 1, 1))
    f, g = fun(theta, slice(None))
    active = np.ones(s_count, dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        direction = -np.einsum("sij,sj->si", h_inv[idx], g[idx])
        slope = (direction * g[idx]).sum(1)
        uphill = slope >= 0  # a stale inverse Hessian: fall back to steepest descent
        if uphill.any():
            h_inv[idx[uphill]] = np.eye(dim)
            direction[uphill] = -g[idx[uphill]]
            slope[uphill] = -(g[idx[uphill]] ** 2).sum(1)
        step = np.ones(idx.size)
        f_before = f[idx].copy()
        new_f, new_g = f[idx].copy(), g[idx].copy()
        accepted = np.zeros(idx.size, dtype=bool)
        for _ in range(30):
            trial = ~accepted
            if not trial.any():
                break
            t_idx = np.flatnonzero(trial)
            cand = theta[idx[t_idx]] + step[t_idx, None] * direction[t_idx]
            cf, cg = fun(cand, idx[t_idx])
            ok = np.isfinite(cf) & (cf <= f[idx[t_idx]] + 1e-4 * step[t_idx] * slope[t_idx])
            new_f[t_idx[ok]], new_g[t_idx[ok]] = cf[ok], cg[ok]
            accepted[t_idx[ok]] = True
            step[t_idx[~ok]] *= 0.5
        s = step[:, None] * direction
        s[~accepted] = 0.0
        y = new_g - g[idx]
        theta[idx] += s
        f[idx], g[idx] = new_f, new_g
        sy = (s * y).sum(1)
        good = accepted & (sy > 1e-20)
        if good.any():
            gi = idx[good]
            rho = 1.0 / sy[good]
            eye = np.eye(dim)
            left = eye - rho[:, None, None] * np.einsum("si,sj->sij", s[good], y[good])
            h_inv[gi] = np.einsum("sij,sjk,slk->sil", left, h_inv[gi], left) + rho[:, None, None] * np.einsum(
                "si,sj->sij", s[good], s[good])
        stalled = np.abs(s).max(1) < 1e-12
        converged = (np.abs(g[idx]).max(1) < gtol) | ~accepted | stalled | (f_before - new_f <= ftol * np.abs(new_f))
        active[idx[converged]] = False
    return theta, f


class NotIdentifiable(ValueError):
    """The runs cannot determine the form's parameters; the message says why and what would."""


@dataclass(frozen=True)
class Approach3Fit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    loss: float
    n_points: int
    form: str
    """A key of FORMS."""
    ci95: dict[str, list[float]] = field(default_factory=dict)
    bootstrap: int = 0
    replicates: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Bootstrap parameter vectors (E, A, B, alpha, beta) per row: prediction intervals and derived intervals."""

    @property
    def a(self) -> float:
        """Limit of d log N_opt / d log C at large C (exact everywhere under C = 6ND)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Limit of d log D_opt / d log C at large C."""
        return self.alpha / (self.alpha + self.beta)

    def params(self) -> np.ndarray:
        return np.array([self.E, self.A, self.B, self.alpha, self.beta])

    def predict(self, n: np.ndarray, d: np.ndarray) -> np.ndarray:
        return self.E + reducible(self.form, self.A, self.B, self.alpha, self.beta, n, d)

    def prediction_interval(self, n: np.ndarray, d: np.ndarray, log_residuals: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray] | None:
        """95% interval at (n, d); None without a bootstrap.

        Without ``log_residuals``: the 2.5 and 97.5 percentiles of the bootstrap fits' predictions, an interval for
        the law itself. With the fit's residuals in log-loss on its own runs: an interval for a new run's loss, each
        bootstrap prediction times exp of each residual, so a run's own scatter about the law is inside it
        (residual bootstrap prediction; Davison & Hinkley 1997, "Bootstrap Methods and their Application", ch. 6).
        """
        if self.replicates is None:
            return None
        e, a, b, alpha, beta = (self.replicates[:, i : i + 1] for i in range(5))
        pred = e + reducible(self.form, a, b, alpha, beta, np.asarray(n, float)[None], np.asarray(d, float)[None])
        pred = np.where(np.isfinite(pred), pred, np.nan)  # a replicate whose terms overflow says "unbounded"
        if log_residuals is not None:
            residuals = np.asarray(log_residuals, float)
            if residuals.size > MAX_RESIDUALS:  # their quantiles: the same spread at a bounded size
                residuals = np.quantile(residuals, np.linspace(0, 1, MAX_RESIDUALS))
            pred = (pred[:, None, :] * np.exp(residuals)[None, :, None]).reshape(-1, pred.shape[1])
        return np.nanpercentile(pred, 2.5, axis=0), np.nanpercentile(pred, 97.5, axis=0)

    def optimal_allocation(self, compute: np.ndarray, flops: FlopsPerToken = FlopsPerToken()
                           ) -> tuple[np.ndarray, np.ndarray]:
        """N_opt(C), D_opt(C) under C = flops(N)·D (see the module docstring)."""
        n_opt = allocate(self.params()[None], np.asarray(compute, float), flops, self.form)[0]
        return n_opt, np.asarray(compute, float) / flops(n_opt)

    @classmethod
    def from_dict(cls, fitted: dict) -> Approach3Fit:
        """The law of an ``as_dict`` (a fit.json's ``approach3``), without its bootstrap."""
        return cls(E=fitted["E"], A=fitted["A"], B=fitted["B"], alpha=fitted["alpha"], beta=fitted["beta"],
                   loss=fitted["huber_loss"], n_points=fitted["n_points"], form=fitted["form"])

    def as_dict(self) -> dict:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta, "a_limit": self.a,
                "b_limit": self.b, "huber_loss": self.loss, "n_points": self.n_points, "bootstrap": self.bootstrap,
                "ci95": self.ci95, "form": self.form, "formula": FORMS[self.form]}


def allocate(params: np.ndarray, compute: np.ndarray, flops: FlopsPerToken, form: str) -> np.ndarray:
    """N_opt for every parameter row (E, A, B, alpha, beta) and budget: shape (rows, budgets)."""
    _, a_, b_, alpha, beta = (params[:, i : i + 1] for i in range(5))
    c = np.asarray(compute, float)[None, :]
    if flops.is_6nd:  # closed forms (module docstring); Hoffmann et al. 2022, eq. 4 for chinchilla
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            g = ((alpha * a_ / (beta * b_)) ** (1.0 / (alpha + beta)) if form == "chinchilla"
                 else (alpha / beta * (a_ / b_) ** (1.0 / beta)) ** (beta / (alpha + beta)))
        return g * (c / 6.0) ** (beta / (alpha + beta))
    # L along the budget, as a function of x = log N, is a sum of a falling and a rising exponential-like term:
    # unimodal, so a vectorised golden-section search over x in [0, log(C/6)) finds its minimum.
    shape = np.broadcast_shapes(c.shape, alpha.shape)
    lo = np.full(shape, np.log(flops.smallest_n()))
    hi = np.broadcast_to(np.log(c / 6.0), shape).copy()

    def along_budget(x: np.ndarray) -> np.ndarray:
        n = np.exp(x)
        return reducible(form, a_, b_, alpha, beta, n, c / flops(n))

    ratio = (np.sqrt(5.0) - 1) / 2
    for _ in range(120):
        x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        left_lower = along_budget(x1) < along_budget(x2)
        hi = np.where(left_lower, x2, hi)
        lo = np.where(left_lower, lo, x1)
    return np.exp((lo + hi) / 2)


def allocation_exponents(params: np.ndarray, compute_range: tuple[float, float], flops: FlopsPerToken, form: str
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Slopes of log N_opt and log D_opt against log C across ``compute_range``, per parameter row."""
    cs = np.asarray(compute_range, float)
    n_opt = allocate(params, cs, flops, form)
    d_opt = cs[None, :] / flops(n_opt)
    span = np.log(cs[1] / cs[0])
    return np.log(n_opt[:, 1] / n_opt[:, 0]) / span, np.log(d_opt[:, 1] / d_opt[:, 0]) / span


# A scale whose log ran off during the search becomes inf, not a warning: the callers refuse such a law by name.
@np.errstate(over="ignore")
def _to_fit(theta: np.ndarray, loss: float, n: int, form: str) -> Approach3Fit:
    a, b, e, alpha, beta = (float(x) for x in theta)
    return Approach3Fit(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=alpha, beta=beta,
                        loss=loss, n_points=n, form=form)


@np.errstate(over="ignore")
def _as_params(theta: np.ndarray) -> np.ndarray:
    """Optimisation variables (a, b, e, alpha, beta) to law parameters (E, A, B, alpha, beta), per row."""
    a, b, e, alpha, beta = theta.T
    return np.stack([np.exp(e), np.exp(a), np.exp(b), alpha, beta], axis=1)


MIN_POINTS = 6
MIN_DISTINCT = 3
SCREEN_ITERATIONS = 30
KEEP_AFTER_SCREEN = 256
ONE_CURVE_RTOL = 0.02  # D within 2% of a smooth function of N: N's and D's effects cannot be told apart


def check_identifiable(n: np.ndarray, d: np.ndarray) -> None:
    """Raise :class:`NotIdentifiable` when the (N, D) design cannot determine E, A, B, α and β."""
    pairs = len({(float(x), float(y)) for x, y in zip(n, d)})
    if pairs < MIN_POINTS:
        raise NotIdentifiable(f"only {pairs} distinct (N, D) points (needs {MIN_POINTS} for 5 parameters)")
    for name, values in (("N", n), ("D", d)):
        if len(np.unique(values)) < MIN_DISTINCT:
            raise NotIdentifiable(f"only {len(np.unique(values))} distinct {name} (needs {MIN_DISTINCT})")
    check_not_one_curve(n, d)


def check_not_one_curve(n: np.ndarray, d: np.ndarray) -> None:
    """Raise :class:`NotIdentifiable` when D is (within ONE_CURVE_RTOL) a smooth function of N, or either is fixed:
    no law in N and D together, of any form, can then tell their effects apart."""
    for name, values in (("N", n), ("D", d)):
        if len(np.unique(values)) < 2:
            raise NotIdentifiable(f"every run has the same {name}")
    log_n, log_d = np.log(n), np.log(d)
    degree = min(2, len(np.unique(log_n)) - 1)
    resid = log_d - np.polyval(np.polyfit(log_n, log_d, degree), log_n)
    if np.max(np.abs(resid)) < np.log1p(ONE_CURVE_RTOL):
        raise NotIdentifiable("every run lies on one curve D(N) (e.g. one compute level, or one tokens-per-parameter "
                              "ratio), so the effects of N and D cannot be told apart; add runs at other budgets")


def check_is_a_law(fit: Approach3Fit, n: np.ndarray, d: np.ndarray) -> None:
    """Raise :class:`NotIdentifiable` when the best fit is no scaling law: a scale that ran off to infinity, a loss
    that grows with N or D, or no finite prediction at the runs themselves (designs too small to pin five
    parameters end this way: two budgets of three sizes, say)."""
    values = {"E": fit.E, "A": fit.A, "B": fit.B, "α": fit.alpha, "β": fit.beta}
    broken = [f"{k} = {v:.3g}" for k, v in values.items() if not np.isfinite(v)]
    broken += [f"{k} = {v:.3g} ≤ 0" for k, v in (("α", fit.alpha), ("β", fit.beta)) if np.isfinite(v) and v <= 0]
    if not broken and not np.all(np.isfinite(fit.predict(n, d))):
        broken.append("no finite prediction at the runs")
    if broken:
        raise NotIdentifiable(f"the best {fit.form} fit is no law ({', '.join(broken)}): the runs do not determine its "
                              "five parameters; add sizes or budgets")


def fit_approach3(n: np.ndarray, d: np.ndarray, loss: np.ndarray, *, bootstrap: int = 0, seed: int = 0,
                  groups: np.ndarray | None = None, delta: float = HUBER_DELTA, coarse: bool = False,
                  refine_top: int = 5, form: str = DEFAULT_FORM) -> Approach3Fit:
    """Fit L(N, D) of ``form`` on rows with ``n`` parameters, ``d`` tokens and ``loss`` (see the module docstring);
    ``coarse``: start from init_grid's coarse grid.

    ``groups`` names the run of each row: the bootstrap resamples whole runs, so a run's checkpoints stay together.
    """
    check_form(form)
    n, d, loss = (np.asarray(x, float) for x in (n, d, loss))
    check_identifiable(n, d)
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)
    starts = init_grid(coarse, form)
    ones = np.ones_like(log_n)

    def full(theta: np.ndarray, rows) -> tuple[np.ndarray, np.ndarray]:
        return _objective(theta, log_n, log_d, log_l, ones, delta, form)

    # Screen every start briefly, then run the most promising to convergence: starts that are far behind after
    # the screening phase sit in worse basins (checked against running all 4,500 to convergence on Gemstones).
    theta, f = _batched_bfgs(starts, full, max_iter=SCREEN_ITERATIONS)
    keep = np.argsort(np.where(np.isfinite(f), f, np.inf))[:KEEP_AFTER_SCREEN]
    theta, f = _batched_bfgs(theta[keep], lambda t, rows: full(t, rows))
    order = np.argsort(np.where(np.isfinite(f), f, np.inf))
    best_thetas = []
    for i in order[:refine_top]:
        res = minimize(lambda t: tuple(x[0] for x in full(t[None, :], None)), theta[i], jac=True, method="L-BFGS-B",
                       options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
        best_thetas.append((res.fun, res.x))
    best_f, best = min(best_thetas, key=lambda t: t[0])
    fit = _to_fit(best, float(best_f), len(n), form)
    check_is_a_law(fit, n, d)
    if bootstrap <= 0:
        return fit

    # Bootstrap: resample runs with replacement (as multinomial counts), refit from the best few optima.
    rng = np.random.default_rng(seed)
    labels = np.arange(len(n)) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    num_groups = int(labels.max()) + 1
    counts = rng.multinomial(num_groups, np.full(num_groups, 1.0 / num_groups), size=bootstrap)[:, labels].astype(float)
    top = np.array([t for _, t in sorted(best_thetas, key=lambda t: t[0])[:3]])
    batch_theta = np.repeat(top[None], bootstrap, axis=0).reshape(-1, 5)
    batch_weights = np.repeat(counts, len(top), axis=0)

    def reweighted(theta: np.ndarray, rows) -> tuple[np.ndarray, np.ndarray]:
        return _objective(theta, log_n, log_d, log_l, batch_weights[rows], delta, form)

    boot_theta, boot_f = _batched_bfgs(batch_theta, reweighted)
    boot_f = np.where(np.isfinite(boot_f), boot_f, np.inf).reshape(bootstrap, len(top))
    chosen = _as_params(boot_theta.reshape(bootstrap, len(top), 5)[np.arange(bootstrap), boot_f.argmin(1)])
    derived = {"E": chosen[:, 0], "A": chosen[:, 1], "B": chosen[:, 2], "alpha": chosen[:, 3], "beta": chosen[:, 4],
               "a_limit": chosen[:, 4] / (chosen[:, 3] + chosen[:, 4]),
               "b_limit": chosen[:, 3] / (chosen[:, 3] + chosen[:, 4])}
    with np.errstate(invalid="ignore"):  # overflowed replicates leave a bound inf or nan, which callers check
        ci95 = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in derived.items()}
    return Approach3Fit(**{**fit.__dict__, "ci95": ci95, "bootstrap": bootstrap, "replicates": chosen})
