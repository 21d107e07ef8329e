"""Run every fit the data supports, plus the out-of-sample checks; the one entry point for the CLI and the sweep.

``fit.json`` names its (params, flops) convention pair first; a fit the data cannot identify is recorded under
``not_identifiable`` with the reason instead of a number, and the file is strict JSON (no NaN or Infinity).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from scaling.fit import approach1, approach2, approach3, checks, hparams, kaplan
from scaling.fit.compute import FlopsPerToken, fit_flops_per_token
from scaling.fit.table import FitTable
from scaling.io import atomic_write_json

APPROACHES = ("kaplan", "1", "2", "3")
HOLDOUT_BY = ("flops", "size")
LATE_SHARE_NOTE = 0.5  # a note when less of approach 1's envelope than this lies late in its runs
# The result keys a fit may produce, in report order.
FITTED_KEYS = ("kaplan", "approach1", "approach2", "approach3", "untuned", "backtest", "leave_one_budget_out",
               "size_ladder")
COMPUTE_TABLE_DECADES = 6  # compute-optimal rows from the runs' largest budget up to 10^6 times it
LADDER_STEPS = 3  # size-ladder predictions: the last few sizes, each from the sizes below it
BACKTEST_BOOTSTRAP = 100  # refits per backtest fit, for the prediction intervals
E_AT_BOUND = 1e-3  # E below this fraction of the lowest loss: the floor ran to zero
# Fewer bootstrap refits than this leave under one refit in each 2.5% tail: a 95% interval's ends are then its most
# extreme refits, and its width says little.
FEW_REFITS = 40


# ------------------------------------------------------------------------------------------------ out of sample


def _predict(train: pd.DataFrame, test: pd.DataFrame, bootstrap: int, seed: int, form: str) -> dict[str, Any]:
    """Fit approach 3 on ``train``, predict every row of ``test`` with a 95% bootstrap interval."""
    fit = approach3.fit_approach3(train.N, train.D, train.loss, bootstrap=bootstrap, seed=seed, groups=train.run_id,
                                  coarse=True, form=form)
    predicted = fit.predict(test.N, test.D)
    if not np.all(np.isfinite(predicted)):
        raise ValueError(f"the law fitted on the other runs (α = {fit.alpha:.3g}, β = {fit.beta:.3g}) predicts no "
                         "finite loss for the held-out runs: the remaining runs do not identify it")
    # A held-out run scatters about the law as the fitted runs do: its interval holds that scatter too.
    log_residuals = np.log(train.loss.to_numpy()) - np.log(fit.predict(train.N, train.D))
    interval = fit.prediction_interval(test.N, test.D, log_residuals)
    lo, hi = interval if interval is not None else (np.full(len(test), np.nan), np.full(len(test), np.nan))
    actual = test.loss.to_numpy()
    rel = (predicted - actual) / actual
    inside = (lo <= actual) & (actual <= hi)
    return {"n_train_runs": int(train.run_id.nunique()), "n_test_runs": int(test.run_id.nunique()),
            "fit": {k: fit.as_dict()[k] for k in ("E", "A", "B", "alpha", "beta")},
            "runs": [{"run_id": r, "N": float(n), "D": float(d), "actual": float(a), "predicted": float(p),
                      "rel_error": float(e), "pi95": [float(x), float(y)], "inside_pi95": bool(i)}
                     for r, n, d, a, p, e, x, y, i in zip(test.run_id, test.N, test.D, actual, predicted, rel, lo, hi,
                                                          inside)],
            **_errors(rel), "inside_pi95": int(inside.sum())}


def _errors(rel: np.ndarray) -> dict[str, Any]:
    """Mean |error| and its signed part: scatter about the law averages out of the signed mean, a bias of the law
    (every held-out run missed on one side) does not, and shows as a signed mean as large as the mean |error|."""
    return {"mean_abs_rel_error": float(np.mean(np.abs(rel))), "max_abs_rel_error": float(np.max(np.abs(rel))),
            "mean_rel_error": float(np.mean(rel)), "n_overpredicted": int(np.sum(rel > 0))}


def _split(points: pd.DataFrame, held_rows: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out whole runs: every row of a run any of whose rows is held out."""
    held_runs = set(points.run_id[held_rows])
    held = points.run_id.isin(held_runs)
    return points[~held], points[held]


def backtest(points: pd.DataFrame, holdout_by: str, holdout_frac: float, bootstrap: int, seed: int, form: str
             ) -> dict[str, Any]:
    """Hold out the largest nominal budgets (or sizes), whole runs at a time, and predict them."""
    key = points.nominal_C if holdout_by == "flops" else points.N
    levels = np.unique(key)
    num_out = min(len(levels) - 1, max(1, int(round(holdout_frac * len(levels)))))
    if num_out < 1:
        raise ValueError(f"backtest needs at least 2 {'budgets' if holdout_by == 'flops' else 'sizes'}")
    train, test = _split(points, key >= levels[-num_out])
    out = _predict(train, test, bootstrap, seed, form)
    return {"holdout_by": holdout_by, "held_out": [float(v) for v in levels[-num_out:]], **out}


def leave_one_budget_out(points: pd.DataFrame, bootstrap: int, seed: int, form: str) -> dict[str, Any]:
    """Each nominal budget predicted from the others."""
    if (points.groupby("run_id").nominal_C.nunique() > 1).any():
        raise ValueError("runs span several budgets (checkpoints of one run): a budget cannot be held out whole")
    budgets, runs_per_budget = np.unique(points.nominal_C, return_counts=True)
    if len(budgets) < 3:
        raise ValueError(f"needs at least 3 budgets, got {len(budgets)}")
    if runs_per_budget.min() < approach3.MIN_DISTINCT:
        raise ValueError(f"some budgets have fewer than {approach3.MIN_DISTINCT} runs: not a design of whole budgets "
                         "(an IsoFLOP grid) to hold out one at a time")
    folds = []
    for c in budgets:
        train, test = _split(points, points.nominal_C == c)
        try:
            folds.append({"budget": float(c), **_predict(train, test, bootstrap, seed, form)})
        except ValueError as e:
            folds.append({"budget": float(c), "not_fitted": str(e)})
    return _pooled(folds)


def size_ladder(points: pd.DataFrame, bootstrap: int, seed: int, form: str) -> dict[str, Any]:
    """Fit on the smallest k sizes, predict the next, for the last ``LADDER_STEPS`` sizes."""
    sizes = np.unique(points.N)
    steps = []
    for k in range(max(approach3.MIN_DISTINCT, len(sizes) - LADDER_STEPS), len(sizes)):
        train, test = points[points.N < sizes[k]], points[points.N == sizes[k]]
        try:
            steps.append({"size": float(sizes[k]), **_predict(train, test, bootstrap, seed, form)})
        except ValueError as e:
            steps.append({"size": float(sizes[k]), "not_fitted": str(e)})
    return _pooled(steps)


def _backtest_every_form(points: pd.DataFrame, holdout_by: str, holdout_frac: float, bootstrap: int, seed: int,
                         form: str) -> dict[str, Any]:
    """The backtest in ``form``, with the other forms' errors on the same split beside it: the evidence for (or
    against) the form, in every report."""
    out = backtest(points, holdout_by, holdout_frac, bootstrap, seed, form)
    out["other_forms"] = {}
    for other in (f for f in approach3.FORMS if f != form):
        try:
            errors = backtest(points, holdout_by, holdout_frac, 0, seed, other)
            out["other_forms"][other] = {k: errors[k] for k in ("mean_abs_rel_error", "mean_rel_error",
                                                                "n_overpredicted")}
        except ValueError as e:
            out["other_forms"][other] = {"not_fitted": str(e)}
    return out


def _pooled(folds: list[dict[str, Any]]) -> dict[str, Any]:
    done = [f for f in folds if "runs" in f]
    if not done:
        raise ValueError("; ".join(f"{f.get('budget', f.get('size')):.3g}: {f['not_fitted']}" for f in folds))
    errors = np.array([r["rel_error"] for f in done for r in f["runs"]])
    return {"folds": folds, "n_predicted": int(errors.size), **_errors(errors),
            "inside_pi95": sum(f["inside_pi95"] for f in done)}


# ------------------------------------------------------------------------------------------------ the laws


def _kaplan(table: FitTable, notes: list[str]) -> dict[str, Any]:
    p = table.points
    out: dict[str, Any] = {"rule": kaplan.CONVERGENCE_RULE}
    for label, x, other in (("L(N)", p.N, p.D), ("L(D)", p.D, p.N)):
        xs, ls, left_out = kaplan.unlimited_points(x, other, p.loss)
        if left_out:
            out[f"{label} left out"] = left_out
        for floor in (False, True):
            name = f"{label}{' + E' if floor else ''}"
            try:
                out[name] = kaplan.fit_1d(xs, ls, floor)
            except ValueError as e:
                notes.append(f"kaplan {name} not fitted: {e} not limited by the other variable (rule above)")
    frontier_c, frontier_l = kaplan.frontier(p.nominal_C, p.N, p.C, p.loss)
    for floor in (False, True):
        try:
            out[f"L(C){' + E' if floor else ''}"] = kaplan.fit_1d(frontier_c, frontier_l, floor)
        except ValueError as e:
            notes.append(f"kaplan L(C) not fitted: {e}")
    try:
        out["L(N, D)"] = kaplan.fit_joint(p.N, p.D, p.loss)
    except ValueError as e:
        notes.append(f"kaplan L(N, D) not fitted: {e}")
    if all(key == "rule" or key.endswith("left out") for key in out):
        raise ValueError("no law had the points it needs (the kaplan notes say which)")
    return out


def _approach1(table: FitTable, bootstrap: int, seed: int, notes: list[str]) -> dict[str, Any]:
    c = table.curves if table.curves is not None else table.points
    out = approach1.fit_approach1(c.run_id, c.N, c.D, c.C, c.loss, bootstrap=bootstrap, seed=seed)
    if out["late_share"] < LATE_SHARE_NOTE:
        notes.append(f"approach 1: {100 * (1 - out['late_share']):.0f}% of its envelope are checkpoints in "
                     f"mid-schedule, before their run's last {100 * (1 - approach1.LATE_IN_RUN):.0f}% (all of Hoffmann "
                     "et al.'s lay within it): its a reads how they differ from finished runs as well as the law "
                     "(README, 'How to read a fit')")
    return out


def _approach3(table: FitTable, flops: FlopsPerToken | None, bootstrap: int, seed: int, form: str,
               notes: list[str]) -> dict[str, Any]:
    p = table.points
    fit = approach3.fit_approach3(p.N, p.D, p.loss, bootstrap=bootstrap, seed=seed, groups=p.run_id, form=form)
    out = fit.as_dict()
    if fit.E < E_AT_BOUND * p.loss.min():
        notes.append(f"approach 3: E = {fit.E:.3g} ran to zero: the runs show no floor (too narrow a range of N "
                     "and D to tell E from the power-law terms); predictions far beyond the runs are unreliable")
    if flops is None:
        return out
    c_range = (float(p.nominal_C.min()), float(p.nominal_C.max()))
    a_range, b_range = approach3.allocation_exponents(fit.params()[None], c_range, flops, form)
    out.update(a=float(a_range[0]), b=float(b_range[0]), a_plus_b=float(a_range[0] + b_range[0]),
               exponents_over=c_range)
    if fit.replicates is not None:
        a_s, b_s = approach3.allocation_exponents(fit.replicates, c_range, flops, form)
        out["ci95"].update(a=np.percentile(a_s, [2.5, 97.5]).tolist(), b=np.percentile(b_s, [2.5, 97.5]).tolist())
    cs = c_range[1] * 10.0 ** np.arange(COMPUTE_TABLE_DECADES + 1)
    n_opt, d_opt = fit.optimal_allocation(cs, flops)
    interval = fit.prediction_interval(n_opt, d_opt)
    out["compute_optimal"] = [
        {"C": float(c), "N_opt": float(n), "D_opt": float(d), "tokens_per_param": float(d / n),
         "loss": float(fit.predict(n, d)), "loss_pi95": None if interval is None else [float(interval[0][i]),
                                                                                       float(interval[1][i])]}
        for i, (c, n, d) in enumerate(zip(cs, n_opt, d_opt))]
    return out


def _untuned(untuned: pd.DataFrame, results: dict[str, Any], form: str) -> dict[str, Any]:
    """The approach-3 law of the untuned runs alone, and how far it is from the tuned law: what tuning changed."""
    fit = approach3.fit_approach3(untuned.N, untuned.D, untuned.loss, bootstrap=0, groups=untuned.run_id, form=form)
    out = {k: fit.as_dict()[k] for k in ("E", "A", "B", "alpha", "beta", "a_limit")}
    tuned = results.get("approach3")
    if tuned:
        law = approach3.Approach3Fit.from_dict(tuned)
        gaps = fit.predict(untuned.N, untuned.D) / law.predict(untuned.N, untuned.D) - 1
        out["mean_loss_gap"] = float(np.mean(gaps))
        out["shift"] = {k: out[k] - tuned[k] for k in ("alpha", "beta", "a_limit")}
    return out


def _eval_noise(p: pd.DataFrame) -> dict[str, Any]:
    """How the eval loss's standard error compares with the loss differences the fit resolves: the gaps between
    neighbouring sizes of one budget."""
    gaps = [np.abs(np.diff(group.sort_values("N").loss.to_numpy())) for _, group in p.groupby("nominal_C")]
    gaps = np.concatenate(gaps) if gaps else np.array([])
    return {"sequences": int(p.eval_sequences.median()), "median_se": float(p.loss_se.median()),
            "median_se_rel": float((p.loss_se / p.loss).median()),
            "median_gap": float(np.median(gaps)) if gaps.size else None}


def few_refits(bootstrap: int) -> str | None:
    """A warning where ``bootstrap`` refits are too few for the 95% intervals they give."""
    if not 0 < bootstrap < FEW_REFITS:
        return None
    return (f"95% intervals from {bootstrap} bootstrap refits: under {FEW_REFITS}, each 2.5% tail holds less than one "
            "refit, so an interval's ends are its most extreme refits (use 200 or more for intervals to report)")


def fit_all(table: FitTable, approaches: tuple[str, ...] = APPROACHES, bootstrap: int = 200, seed: int = 0,
            approach2_method: str = "akima", holdout_by: str = "flops", holdout_frac: float = 0.2,
            form: str = approach3.DEFAULT_FORM) -> dict[str, Any]:
    """Every requested approach the data supports, approach 3 and its checks in ``form``; what is skipped and why
    goes into ``notes`` or ``not_identifiable``."""
    approach3.check_form(form)
    p = table.points
    notes = list(table.notes)
    if (few := few_refits(bootstrap)) is not None:
        notes.append(few)
    results: dict[str, Any] = {"conventions": dict(table.conventions), "n_points": int(len(p)),
                               "n_runs": int(p.run_id.nunique()), "compute_range": [float(p.C.min()), float(p.C.max())],
                               "notes": notes, "excluded": list(table.excluded), "not_identifiable": {}}
    if table.study_cost is not None:
        results["study_cost"] = dict(table.study_cost)
    if "loss_se" in p.columns and p.loss_se.notna().all():
        results["eval"] = _eval_noise(p)
    if table.tuning is not None:
        results["tuning"] = hparams.tuning_results(table.tuning)
    flops: FlopsPerToken | None = None
    try:
        flops = fit_flops_per_token(p.N, p.D, p.C)
        results["conventions"]["C_of_N_D"] = flops.as_dict()
    except ValueError as e:
        notes.append(f"compute-optimal allocation not solved: {e}")

    def attempt(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        try:
            results[name] = fn()
        except approach3.NotIdentifiable as e:
            results["not_identifiable"][name] = str(e)
        except ValueError as e:
            notes.append(f"{name} not fitted: {e}")

    if "kaplan" in approaches:
        attempt("kaplan", lambda: _kaplan(table, notes))
    if "1" in approaches:
        attempt("approach1", lambda: _approach1(table, bootstrap, seed, notes))
    if "2" in approaches:
        budgets = p["budget"].to_numpy() if "budget" in p.columns else None
        attempt("approach2", lambda: approach2.fit_approach2(p.N, p.D, p.loss, p.C, approach2_method, budgets=budgets,
                                                             bootstrap=bootstrap, seed=seed).as_dict())
    if "3" in approaches:
        attempt("approach3", lambda: _approach3(table, flops, bootstrap, seed, form, notes))
        if table.untuned is not None and "tuning" in results:
            attempt("untuned", lambda: _untuned(table.untuned, results, form))
        held_out_bootstrap = min(bootstrap, BACKTEST_BOOTSTRAP)
        attempt("backtest", lambda: _backtest_every_form(p, holdout_by, holdout_frac, held_out_bootstrap, seed,
                                                         form))
        attempt("leave_one_budget_out", lambda: leave_one_budget_out(p, held_out_bootstrap, seed, form))
        attempt("size_ladder", lambda: size_ladder(p, held_out_bootstrap, seed, form))
    results["checks"] = checks.study_checks(p, results)
    return results


def fitted(results: dict[str, Any]) -> list[str]:
    """The approaches and checks that produced a result, in report order."""
    return [k for k in FITTED_KEYS if k in results]


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by None and numpy scalars made plain: strict JSON."""
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [finite(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_fit(table: FitTable, out_dir: Path, **kwargs: Any) -> dict[str, Any]:
    """fit.json, figures (PNG + PDF) and report.md in ``out_dir``."""
    from scaling.fit import plots, report

    out_dir = Path(out_dir)
    results = fit_all(table, **kwargs)
    results["figures"] = plots.write_all(table, results, out_dir)
    results = finite(results)
    atomic_write_json(out_dir / "fit.json", results)
    report.write(results, out_dir)
    return results
