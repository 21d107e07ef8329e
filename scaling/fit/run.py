"""Run every fit the data supports, plus the extrapolation backtest; the one entry point for CLI and sweep."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from scaling.fit import approach1, approach2, approach3, kaplan
from scaling.fit.table import FitTable
from scaling.io import atomic_write_json

log = logging.getLogger(__name__)

APPROACHES = ("kaplan", "1", "2", "3")
FITTED_KEYS = ("kaplan", "approach1", "approach2", "approach3", "backtest")  # the result keys a fit may produce
COMPUTE_TABLE = (1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24)


def backtest(points, holdout_by: str, holdout_frac: float, seed: int) -> dict[str, Any]:
    """Fit approach 3 on all but the largest runs (by FLOPs or by size) and predict the held-out losses."""
    key = points["C"] if holdout_by == "flops" else points["N"]
    num_out = max(1, int(round(holdout_frac * len(points))))
    # Hold out every run at or above the cut, so ties in N or C fall on one side only.
    cut = np.sort(key.to_numpy())[-num_out]
    held = key >= cut
    if (~held).sum() < approach3.MIN_POINTS:
        raise ValueError(f"backtest needs at least {approach3.MIN_POINTS} runs below the hold-out cut, "
                         f"got {(~held).sum()}")
    train, test = points[~held], points[held]
    fit = approach3.fit_approach3(train.N, train.D, train.loss, seed=seed)
    predicted = fit.predict(test.N, test.D)
    rel = (predicted - test.loss.to_numpy()) / test.loss.to_numpy()
    return {"holdout_by": holdout_by, "n_train": int(len(train)), "n_test": int(len(test)),
            "fit": fit.as_dict(),
            "runs": [{"run_id": r, "N": float(n), "D": float(d), "actual": float(a), "predicted": float(p),
                      "rel_error": float(e)} for r, n, d, a, p, e in
                     zip(test.run_id, test.N, test.D, test.loss, predicted, rel)],
            "mean_abs_rel_error": float(np.mean(np.abs(rel))), "max_abs_rel_error": float(np.max(np.abs(rel)))}


def fit_all(table: FitTable, approaches: tuple[str, ...] = APPROACHES, bootstrap: int = 200, seed: int = 0,
            approach2_method: str = "akima", holdout_by: str = "flops", holdout_frac: float = 0.2
            ) -> dict[str, Any]:
    """Every requested approach the data supports; what is skipped and why goes into ``notes``."""
    p = table.points
    results: dict[str, Any] = {"conventions": table.conventions, "n_points": int(len(p)),
                               "compute_range": [float(p.C.min()), float(p.C.max())],
                               "notes": list(table.notes), "excluded": list(table.excluded)}

    def attempt(name: str, fn) -> None:
        try:
            results[name] = fn()
        except ValueError as e:
            results["notes"].append(f"{name} not fitted: {e}")
            log.warning("%s not fitted: %s", name, e)

    if "kaplan" in approaches:
        def kaplan_fits() -> dict:
            out: dict[str, Any] = {}
            for label, x in (("L(N)", p.N), ("L(D)", p.D)):
                xs, ls = kaplan.lowest_per(x.to_numpy(), p.loss.to_numpy())
                for floor in (False, True):
                    try:
                        out[f"{label}{' + E' if floor else ''}"] = kaplan.fit_1d(xs, ls, floor)
                    except ValueError as e:
                        results["notes"].append(f"kaplan {label}{' + E' if floor else ''} not fitted: {e}")
            frontier_c, frontier_l = _frontier(p.C.to_numpy(), p.loss.to_numpy())
            for floor in (False, True):
                try:
                    out[f"L(C){' + E' if floor else ''}"] = kaplan.fit_1d(frontier_c, frontier_l, floor)
                except ValueError as e:
                    results["notes"].append(f"kaplan L(C) not fitted: {e}")
            out["L(N, D)"] = kaplan.fit_joint(p.N, p.D, p.loss)
            return out
        attempt("kaplan", kaplan_fits)
    if "1" in approaches:
        curves = table.curves if table.curves is not None and not table.curves.empty else p
        attempt("approach1", lambda: approach1.fit_approach1(curves.run_id, curves.N, curves.D, curves.C,
                                                             curves.loss, bootstrap=bootstrap, seed=seed))
    if "2" in approaches:
        budgets = p["budget"].to_numpy() if "budget" in p.columns else None
        attempt("approach2", lambda: approach2.fit_approach2(p.N, p.loss, p.C, approach2_method,
                                                             budgets=budgets).as_dict())
    if "3" in approaches:
        def a3() -> dict:
            fit = approach3.fit_approach3(p.N, p.D, p.loss, bootstrap=bootstrap, seed=seed)
            out = fit.as_dict()
            n_opt, d_opt = fit.optimal_allocation(np.array(COMPUTE_TABLE))
            out["compute_optimal"] = [{"C": c, "N_opt": float(n), "D_opt": float(d), "tokens_per_param": float(d / n),
                                       "loss": float(fit.predict(n, d))}
                                      for c, n, d in zip(COMPUTE_TABLE, n_opt, d_opt)]
            return out
        attempt("approach3", a3)
        attempt("backtest", lambda: backtest(p, holdout_by, holdout_frac, seed))
    return results


def _frontier(c: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs that no cheaper run beats: the compute-efficient frontier of final losses."""
    order = np.argsort(c)
    best, keep = np.inf, []
    for i in order:
        if loss[i] < best:
            best = loss[i]
            keep.append(i)
    return c[keep], loss[keep]


def fitted(results: dict[str, Any]) -> list[str]:
    """The approaches (and backtest) that produced a result, in report order."""
    return [k for k in FITTED_KEYS if k in results]


def write_fit(table: FitTable, out_dir: Path, **kwargs: Any) -> dict[str, Any]:
    """fit.json, figures (PNG + PDF) and report.md in ``out_dir``."""
    from scaling import plots, report

    out_dir = Path(out_dir)
    results = fit_all(table, **kwargs)
    results["figures"] = plots.write_all(table, results, out_dir)
    atomic_write_json(out_dir / "fit.json", results)
    report.write(results, out_dir)
    return results
