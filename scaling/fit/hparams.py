"""Per-size tuning: each (N, D) cell's best run, its best learning rate and batch, and power laws of those in C.

A tuned grid (``grid.tune``) trains every cell with several settings. The law is fitted on each cell's best run
(Porian et al. 2024, §4); the best learning rate and batch are then fitted as power laws of compute,
η_opt = η₀·C^k and B_opt = B₀·C^m (DeepSeek-AI 2024, "DeepSeek LLM", §3.1), which propose the settings of the
next, larger budget. Imports no torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# Columns of a tuned sweep's runs table that describe a run's setting.
SETTINGS = {"lr": "config.optim.lr", "batch_tokens": "config.budget.batch_tokens", "beta2": "config.optim.beta2"}


def landscape(runs: pd.DataFrame, n: pd.Series, loss: pd.Series) -> pd.DataFrame:
    """One row per finished run of a tuned sweep: its cell, N, nominal C, setting, loss, and whether it is its
    cell's best (lowest loss) and the untuned setting."""
    out = pd.DataFrame({"run_id": runs.run_id.to_numpy(), "cell": runs["grid.cell"].to_numpy(),
                        "N": n.to_numpy(), "C": runs["grid.compute"].astype(float).to_numpy(),
                        "loss": loss.to_numpy(), "untuned": runs["grid.untuned"].astype(bool).to_numpy(),
                        **{k: runs[col].astype(float).to_numpy() for k, col in SETTINGS.items()}})
    out = out[np.isfinite(out.loss)]
    out["best"] = out.index.isin(out.groupby("cell").loss.idxmin())
    return out.reset_index(drop=True)


def _vertex(x: np.ndarray, y: np.ndarray) -> tuple[float, bool]:
    """The minimum of y over log x: the vertex of the parabola through the best point and its two neighbours when
    the best is interior (the loss is smooth in log-lr near its optimum), else the best x and False (at an edge)."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    i = int(np.argmin(y))
    if i == 0 or i == len(x) - 1:
        return float(x[i]), False
    lx = np.log(x[i - 1 : i + 2])
    a, b, _ = np.polyfit(lx, y[i - 1 : i + 2], 2)
    return (float(math.exp(-b / (2 * a))) if a > 0 else float(x[i])), True


def best_settings(table: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the best run's setting, the learning rate and batch refined along their swept axes (the other
    settings held at the best run's), and how much the cell's best beat its untuned run."""
    rows = []
    for cell, runs in table.groupby("cell", sort=False):
        best = runs[runs.best].iloc[0]
        row = {"cell": cell, "N": best.N, "C": best.C, "loss": best.loss, "run_id": best.run_id,
               "beta2": best.beta2}
        for key, others in (("lr", ("batch_tokens", "beta2")), ("batch_tokens", ("lr", "beta2"))):
            line = runs[np.all([np.isclose(runs[o], best[o]) for o in others], axis=0)]
            if line[key].nunique() > 1:
                row[f"{key}_opt"], row[f"{key}_interior"] = _vertex(line[key].to_numpy(), line.loss.to_numpy())
            else:
                row[f"{key}_opt"], row[f"{key}_interior"] = float(best[key]), None
        untuned = runs[runs.untuned]
        row["untuned_loss"] = float(untuned.loss.iloc[0]) if len(untuned) else None
        rows.append(row)
    return pd.DataFrame(rows)


def _power_law(c: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Least squares of log y on log C: y = coef·C^exponent."""
    exponent, log_coef = np.polyfit(np.log(c), np.log(y), 1)
    return {"coef": float(math.exp(log_coef)), "exponent": float(exponent)}


def tuning_results(table: pd.DataFrame) -> dict[str, Any]:
    """fit.json's ``tuning``: per-cell best settings, the hyper-parameter laws in C and the next budget's settings."""
    cells = best_settings(table)
    out: dict[str, Any] = {"cells": cells.to_dict("records"), "notes": []}
    edge = cells[cells.lr_interior == False].cell.tolist()  # noqa: E712 (None: lr not swept)
    if edge:
        out["notes"].append(f"the best learning rate of {', '.join(edge)} is at the edge of the swept range: its "
                            "optimum lies beyond it (fix: widen grid.tune.lr_factors)")
    out["laws"], out["next"] = {}, {}
    for variable in ("C", "N"):  # in C as DeepSeek fitted them; in N for a sweep of sizes at one budget
        levels = np.unique(cells[variable])
        if len(levels) < 2:
            continue
        laws = {key: _power_law(cells[variable].to_numpy(), cells[f"{key}_opt"].to_numpy())
                for key in ("lr", "batch_tokens") if cells[f"{key}_interior"].notna().any()}
        if not laws:
            continue
        out["laws"][variable] = laws
        if not out["next"]:  # one more step of the grid's own spacing
            at = float(levels[-1] * levels[-1] / levels[-2])
            out["next"] = {variable: at, **{k: law["coef"] * at ** law["exponent"] for k, law in laws.items()}}
    if not out["laws"]:
        out["notes"].append("one budget and one size, or nothing swept: no hyper-parameter law")
    return out
