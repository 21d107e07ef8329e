"""Figures of a fit, each saved as PNG and PDF. Headless (Agg); no torch."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scaling.fit.approach3 import Approach3Fit  # noqa: E402
from scaling.fit.compute import FlopsPerToken  # noqa: E402
from scaling.fit.table import FitTable  # noqa: E402


def save_figure(fig, out_dir: Path, name: str) -> str:
    """Save as figures/<name>.png and .pdf under ``out_dir``; returns the PNG's relative path."""
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        fig.savefig(out_dir / "figures" / f"{name}.{ext}", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return f"figures/{name}.png"


def _a3(results: dict[str, Any]) -> Approach3Fit | None:
    r = results.get("approach3")
    if not r:
        return None
    return Approach3Fit.from_dict(r)


def _flops(results: dict[str, Any]) -> FlopsPerToken:
    """C = f(N)·D of the fit's convention (6ND where the runs did not determine one)."""
    f = results["conventions"].get("C_of_N_D")
    return FlopsPerToken(k=f["k"], gamma=f["gamma"]) if f else FlopsPerToken()


def _c_label(table: FitTable) -> str:
    return f"C (FLOPs, {table.conventions['flops']})"


def _n_label(table: FitTable) -> str:
    return f"N (params, {table.conventions['params']})"


def loss_vs_compute(table: FitTable, results: dict, out_dir: Path) -> str | None:
    p = table.points
    fig, ax = plt.subplots(figsize=(6, 4.2))
    sc = ax.scatter(p.C, p.loss, c=np.log10(p.N), cmap="viridis", s=22, zorder=3)
    fig.colorbar(sc, ax=ax, label=f"log10 {_n_label(table)}")
    if "approach1" in results:
        f = results["approach1"]["frontier"]
        ax.plot(f["C"], f["loss"], "k--", lw=1, label="envelope (approach 1)")
    fit = _a3(results)
    if fit is not None:
        cs = np.geomspace(p.C.min(), p.C.max() * 10, 100)
        n, d = fit.optimal_allocation(cs, _flops(results))
        ax.plot(cs, fit.predict(n, d), "r-", lw=1.5, label="approach 3 at N_opt(C)")
    ax.set(xscale="log", yscale="log", xlabel=_c_label(table), ylabel="loss")
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir, "loss_vs_compute")


def isoflop(table: FitTable, results: dict, out_dir: Path) -> str | None:
    r = results.get("approach2")
    if not r:
        return None
    p = table.points
    from scaling.fit.approach2 import group_budgets

    budgets = p["budget"].to_numpy() if "budget" in p.columns else group_budgets(p.C.to_numpy())
    fig, ax = plt.subplots(figsize=(6, 4.2))
    colors = plt.cm.plasma(np.linspace(0, 0.9, len(np.unique(budgets))))
    for color, c in zip(colors, np.unique(budgets)):
        m = budgets == c
        order = np.argsort(p.N[m].to_numpy())
        ax.plot(p.N[m].to_numpy()[order], p.loss[m].to_numpy()[order], "o-", color=color, ms=4, lw=1,
                label=f"{c:.2g}")
    for o in r["optima"]:
        ax.plot(o["n_opt"], o["loss_opt"], "k*", ms=10)
    ax.set(xscale="log", yscale="log", xlabel=_n_label(table), ylabel="loss", title=f"IsoFLOP profiles ({r['method']})")
    ax.legend(fontsize=7, title="C", ncol=2)
    return save_figure(fig, out_dir, "isoflop")


def optimal_allocation(table: FitTable, results: dict, out_dir: Path) -> str | None:
    fit = _a3(results)
    if fit is None and "approach2" not in results and "approach1" not in results:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    cs = np.geomspace(table.points.C.min(), 1e24, 100)
    for ax, which in zip(axes, ("N", "D")):
        if "approach2" in results:
            r = results["approach2"]
            xs = [o["compute"] for o in r["optima"]]
            ys = [o["n_opt" if which == "N" else "d_opt"] for o in r["optima"]]
            coef, exp = (r["n_coefficient"], r["a"]) if which == "N" else (r["d_coefficient"], r["b"])
            lo, hi = r["ci95"]["a" if which == "N" else "b"]
            ax.plot(xs, ys, "bo", ms=5, label=f"approach 2 optima, exponent {exp:.3f}")
            ax.plot(cs, coef * cs**exp, "b-", lw=1)
            c0 = np.exp(np.mean(np.log(xs)))
            y0 = coef * c0**exp
            ax.fill_between(cs, y0 * (cs / c0) ** lo, y0 * (cs / c0) ** hi, color="b", alpha=0.12, label="95% CI")
        if "approach1" in results:
            law = results["approach1"]["n_law" if which == "N" else "d_law"]
            ax.plot(cs, law["coefficient"] * cs ** law["exponent"], "g--", lw=1,
                    label=f"approach 1, exponent {law['exponent']:.3f}")
        if fit is not None:
            n, d = fit.optimal_allocation(cs, _flops(results))
            ax.plot(cs, n if which == "N" else d, "r-", lw=1.5,
                    label=f"approach 3, exponent {results['approach3']['a' if which == 'N' else 'b']:.3f} "
                          "over the runs")
        ax.set(xscale="log", yscale="log", xlabel=_c_label(table),
               ylabel=f"{which}_opt" + (f" ({table.conventions['params']} params)" if which == "N" else " (tokens)"))
        ax.legend(fontsize=7)
    return save_figure(fig, out_dir, "optimal_allocation")


def contours(table: FitTable, results: dict, out_dir: Path) -> str | None:
    fit = _a3(results)
    if fit is None:
        return None
    p = table.points
    n = np.geomspace(p.N.min() / 3, p.N.max() * 3, 120)
    d = np.geomspace(p.D.min() / 3, p.D.max() * 3, 120)
    nn, dd = np.meshgrid(n, d)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cs = ax.contourf(nn, dd, fit.predict(nn, dd), levels=20, cmap="viridis_r")
    fig.colorbar(cs, ax=ax, label="predicted loss")
    compute = _flops(results)(nn) * dd
    budgets = np.geomspace(compute.min(), compute.max(), 60)
    n_opt, d_opt = fit.optimal_allocation(budgets, _flops(results))
    inside = (n_opt >= n[0]) & (n_opt <= n[-1]) & (d_opt >= d[0]) & (d_opt <= d[-1])
    ax.plot(n_opt[inside], d_opt[inside], "r-", lw=2, label="efficient frontier")
    ax.scatter(p.N, p.D, c="white", edgecolors="k", s=15, label="runs")
    ax.set(xscale="log", yscale="log", xlabel=_n_label(table), ylabel="D (tokens)", title="L(N, D), approach 3")
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir, "loss_contours")


def residuals(table: FitTable, results: dict, out_dir: Path) -> str | None:
    fit = _a3(results)
    if fit is None:
        return None
    p = table.points
    res = np.log(fit.predict(p.N, p.D)) - np.log(p.loss)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter(p.C, res, c=np.log10(p.N), s=18)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel=_c_label(table), ylabel="log predicted − log actual", title="approach 3 residuals")
    return save_figure(fig, out_dir, "residuals")


def backtest(table: FitTable, results: dict, out_dir: Path) -> str | None:
    checks = [(name, results[name]) for name in ("backtest", "leave_one_budget_out", "size_ladder") if name in results]
    if not checks:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    everything = []
    for (name, r), color in zip(checks, ("r", "b", "g")):
        runs = r["runs"] if "runs" in r else [x for f in r["folds"] for x in f.get("runs", [])]
        actual = np.array([x["actual"] for x in runs])
        predicted = np.array([x["predicted"] for x in runs])
        lo = np.array([np.nan if x["pi95"][0] is None else x["pi95"][0] for x in runs])
        hi = np.array([np.nan if x["pi95"][1] is None else x["pi95"][1] for x in runs])
        ax.errorbar(actual, predicted, yerr=[predicted - lo, hi - predicted], fmt="o", color=color, ms=4, lw=0.8,
                    label=f"{name.replace('_', ' ')}: mean |err| {100 * r['mean_abs_rel_error']:.2f}%")
        everything += [actual, predicted]
    values = np.concatenate(everything)
    ax.plot([values.min(), values.max()], [values.min(), values.max()], "k--", lw=0.8)
    ax.set(xlabel="actual loss", ylabel="predicted loss (95% bootstrap interval)", title="out-of-sample predictions")
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir, "backtest")


def tuning_landscape(table: FitTable, results: dict, out_dir: Path) -> str | None:
    """Loss against learning rate per (N, D) cell of a tuned sweep, each cell's best marked."""
    t = table.tuning
    if t is None or t.lr.nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.2))
    colours = plt.cm.viridis(np.linspace(0, 1, t.cell.nunique()))
    for colour, (cell, runs) in zip(colours, t.groupby("cell", sort=False)):
        best = runs[runs.best].iloc[0]
        line = runs[np.isclose(runs.batch_tokens, best.batch_tokens) & np.isclose(runs.beta2, best.beta2)]
        line = line.sort_values("lr")
        ax.plot(line.lr, line.loss, "o-", color=colour, ms=3, lw=1, label=cell)
        ax.plot([best.lr], [best.loss], "*", color=colour, ms=10)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (peak)", ylabel="final validation loss", title="Per-size tuning (★ best per cell)")
    ax.legend(fontsize=6, ncol=2)
    return save_figure(fig, out_dir, "tuning")


FIGURES: tuple[Callable[[FitTable, dict, Path], str | None], ...] = (
    loss_vs_compute, isoflop, optimal_allocation, contours, residuals, backtest, tuning_landscape)


def write_all(table: FitTable, results: dict, out_dir: Path) -> list[str]:
    """Every figure the results support; one that cannot be drawn is named in ``results["notes"]`` and the others,
    fit.json and the report are still written."""
    paths = []
    with warnings.catch_warnings():  # degenerate axes (every run at one C) draw fine; matplotlib's warning is noise
        warnings.simplefilter("ignore", UserWarning)
        for make in FIGURES:
            try:
                path = make(table, results, out_dir)
            except (ValueError, OverflowError) as e:
                plt.close("all")
                results["notes"].append(f"figure {make.__name__} not drawn: {e}")
                continue
            if path is not None:
                paths.append(path)
    return paths
