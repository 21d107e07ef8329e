"""The fitter's input: a table of runs (N, D, C, loss) from a sweep directory or a CSV/JSONL file.

Bad rows are dropped with a warning that names them; missing columns are an error that lists the columns found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.errors import UserError
from scaling.flops import FLOP_CONVENTIONS, PARAM_CONVENTIONS
from scaling.results import collect


class FitInputError(UserError, ValueError):
    pass


@dataclass
class FitTable:
    points: pd.DataFrame
    """One row per run: N, D, C, loss (+ run_id, budget when known)."""
    curves: pd.DataFrame | None
    """One row per eval event: run_id, N, D, C, loss (approach 1); None for a plain table."""
    conventions: dict[str, str]
    notes: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)


def _clean(df: pd.DataFrame, label: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    values = df[["N", "D", "C", "loss"]].to_numpy(float)
    bad = ~np.isfinite(values).all(1) | (values <= 0).any(1)
    dropped = [f"{label.iloc[i]}: non-finite or non-positive N/D/C/loss" for i in np.flatnonzero(bad)]
    return df[~bad].reset_index(drop=True), dropped


def from_file(path: Path, n_col: str = "N", d_col: str = "D", c_col: str = "C", loss_col: str = "loss") -> FitTable:
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        df = pd.read_json(path, lines=path.suffix.lower() == ".jsonl")
    else:
        df = pd.read_csv(path)
    found = ", ".join(map(str, df.columns))
    for flag, col in (("--n-col", n_col), ("--loss-col", loss_col)):
        if col not in df.columns:
            raise FitInputError(f"{path}: no column {col!r} ({flag}); columns found: {found}")
    notes = []
    def number(col: str) -> pd.Series:  # float: 6·N·D overflows int64 at real scales
        return pd.to_numeric(df[col], errors="coerce").astype(float)

    out = pd.DataFrame({"N": number(n_col), "loss": number(loss_col)})
    if d_col in df.columns:
        out["D"] = number(d_col)
        out["C"] = number(c_col) if c_col in df.columns else 6 * out["N"] * out["D"]
        if c_col not in df.columns:
            notes.append(f"no {c_col!r} column: C = 6·N·D")
    elif c_col in df.columns:
        out["C"] = number(c_col)
        out["D"] = out["C"] / (6 * out["N"])
        notes.append(f"no {d_col!r} column: D = C / (6·N) from {c_col!r}")
    else:
        raise FitInputError(f"{path}: needs a token column {d_col!r} (--d-col) or a FLOP column {c_col!r} (--c-col); "
                            f"columns found: {found}")
    out["run_id"] = df["run_id"].astype(str) if "run_id" in df.columns else [f"row {i + 2}" for i in range(len(df))]
    points, dropped = _clean(out, out["run_id"])
    return FitTable(points=points, curves=None, notes=notes, excluded=dropped,
                    conventions={"params": f"column {n_col}", "flops": f"column {c_col}" if c_col in df.columns
                                 else "6ND"})


def from_sweep(sweep_dir: Path, params: str = "non_embedding", flops: str = "kaplan") -> FitTable:
    """Finished runs of a sweep; diverged, failed and unfinished runs are excluded and listed."""
    if params not in PARAM_CONVENTIONS:
        raise FitInputError(f"--params {params!r}: use one of {', '.join(PARAM_CONVENTIONS)}")
    if flops not in FLOP_CONVENTIONS:
        raise FitInputError(f"--flops {flops!r}: use one of {', '.join(FLOP_CONVENTIONS)}")
    runs, evals = collect(sweep_dir)
    excluded = [f"{r.run_id}: {r.status}" for r in runs.itertuples() if r.status != "finished"]
    runs = runs[runs.status == "finished"]
    if runs.empty:
        raise FitInputError(f"{sweep_dir}: no finished runs to fit" + (f" ({'; '.join(excluded)})" if excluded else ""))
    points = pd.DataFrame({"run_id": runs.run_id, "N": runs[f"params_{params}"].astype(float),
                           "D": runs.tokens.astype(float), "C": runs[f"flops_{flops}"].astype(float),
                           "loss": runs.final_val_loss.astype(float)})
    if "grid.budget_flops" in runs.columns and runs["grid.budget_flops"].notna().all():
        points["budget"] = runs["grid.budget_flops"].astype(float).to_numpy()
    points, dropped = _clean(points.reset_index(drop=True), points.run_id.reset_index(drop=True))
    curves = None
    if not evals.empty:
        ev = evals[evals.run_id.isin(points.run_id)]
        n_of = dict(zip(points.run_id, points.N))
        curves = pd.DataFrame({"run_id": ev.run_id, "N": ev.run_id.map(n_of), "D": ev.tokens.astype(float),
                               "C": ev[f"flops_{flops}"].astype(float), "loss": ev.val_loss.astype(float)})
        curves = curves[(curves.D > 0) & np.isfinite(curves.loss)]
    return FitTable(points=points, curves=curves, excluded=excluded + dropped,
                    conventions={"params": params, "flops": flops})


def load(path: Path, **kwargs) -> FitTable:
    path = Path(path)
    if not path.exists():
        raise FitInputError(f"{path} does not exist; pass a sweep directory or a CSV/JSONL table")
    if path.is_dir():
        return from_sweep(path, **{k: v for k, v in kwargs.items() if k in ("params", "flops")})
    return from_file(path, **{k: v for k, v in kwargs.items() if k.endswith("_col")})
