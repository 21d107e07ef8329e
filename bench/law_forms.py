"""Approach 3's two forms side by side on every real table the project ships (tests/data): how closely each fits
(mean |relative residual|) and how well it predicts what it did not see (the backtest: the largest budgets held out,
or the largest sizes where a table's runs are checkpoints at many budgets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.fit.approach3 import FORMS, fit_approach3
from scaling.fit.run import backtest

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
PORIAN_KEYS = ["source_file", "dataset", "hparams", "warmup", "decay", "param_count", "loss_split"]


def _tables() -> list[tuple[str, str, pd.DataFrame]]:
    """(name, hold-out axis, points with run_id, N, D, C, nominal_C, loss) for every shipped table."""
    tables = [(f"this project: {name}", "flops", pd.read_csv(DATA / f"{name}.csv"))
              for name in ("default_study_3_seeds", "long_study_64x_4_seeds")]
    for subset in ("hot", "cool_end", "cool_begin", "slim_chinchilla"):
        rows = pd.read_json(DATA / "gemstones" / f"wandb_df_for_fitting_{subset}.jsonl", lines=True)
        run = rows.run_name if "run_name" in rows else rows.params_active_precise.astype(str)
        c = 6 * rows.params_active_precise * rows.tokens
        tables.append((f"Gemstones {subset}", "size", pd.DataFrame(
            {"run_id": run, "N": rows.params_active_precise, "D": rows.tokens, "C": c, "nominal_C": c,
             "loss": rows.final_loss})))
    points = pd.read_csv(DATA / "porian2024" / "isoflop_points.csv")
    for fit in json.loads((DATA / "porian2024" / "fit_results.json").read_text()):
        sel = points
        for key in PORIAN_KEYS:
            sel = sel[sel[key] == fit[key]]
        sel = sel[np.isfinite(sel.loss)]
        name = "Porian " + "/".join(str(fit[k]) for k in ("dataset", "hparams", "warmup", "decay", "param_count"))
        tables.append((name, "flops", pd.DataFrame({"run_id": np.arange(len(sel)).astype(str), "N": sel.n.values,
                                                    "D": sel.t.values, "C": sel.flops.values,
                                                    "nominal_C": sel.flops.values, "loss": sel.loss.values})))
    return tables


def compare() -> dict:
    rows = []
    for name, holdout_by, p in _tables():
        row: dict = {"table": name, "points": len(p), "held_out_by": holdout_by}
        for form in FORMS:
            fit = fit_approach3(p.N, p.D, p.loss, form=form)
            held = backtest(p, holdout_by, 0.2, 0, 0, form)
            row[form] = {"mean_abs_residual": float(np.mean(np.abs(fit.predict(p.N, p.D) / p.loss - 1))),
                         "backtest": held["mean_abs_rel_error"], "backtest_signed": held["mean_rel_error"]}
        rows.append(row)
    return {"tables": rows}
