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
from scaling.fit import hparams
from scaling.fit.approach2 import group_budgets
from scaling.results import collect
from scaling.sweepdir import MANIFEST, read_manifest


class FitInputError(UserError, ValueError):
    pass


CONVENTIONS_WHY = (
    "C counts what the hardware computes, the output layer and attention included (6n_attention): Porian et al. "
    "2024 (arXiv 2406.19146, §3) trace much of Kaplan's larger exponent to leaving the last layer's FLOPs out of C. "
    "N counts every parameter (total): Pearce & Song 2024 (arXiv 2406.12907) show that non-embedding N at small "
    "scale biases the fitted exponent towards Kaplan's, and recommend total parameters and compute. The "
    "alternatives are one flag away: --total (6N FLOPs with total N) or --params/--flops.")
TOTAL_CONVENTIONS = {"params": "total", "flops": "6n"}


@dataclass
class FitTable:
    points: pd.DataFrame
    """One row per observation: run_id, N, D, C, loss, nominal_C (the grid's budget, or C rounded to 0.1 decade);
    budget (isoflop grids only). A plain table may hold several rows (checkpoints) of one run."""
    curves: pd.DataFrame | None
    """Several eval events per run (approach 1): run_id, N, D, C, loss; None where runs have one row each."""
    conventions: dict[str, str]
    """The parameter count ("params") and FLOP convention ("flops") of N and C, and why they were chosen."""
    notes: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    tuning: pd.DataFrame | None = None
    """A tuned sweep (``grid.tune``): every finished run with its cell and setting (scaling.fit.hparams); ``points``
    then holds each cell's best run."""
    untuned: pd.DataFrame | None = None
    """A tuned sweep's untuned runs, as ``points``: the law the study would have found without tuning."""
    study_cost: dict[str, float] | None = None
    """A sweep with cooldown branches: the FLOPs it trained (trunks whole, branches from their start) against the
    FLOPs of the same runs trained independently."""


def _clean(df: pd.DataFrame, label: pd.Series, source: str) -> tuple[pd.DataFrame, list[str]]:
    values = df[["N", "D", "C", "loss"]].to_numpy(float)
    bad = ~np.isfinite(values).all(1) | (values <= 0).any(1)
    dropped = [f"{label.iloc[i]}: non-finite or non-positive N/D/C/loss" for i in np.flatnonzero(bad)]
    if bad.all():
        raise FitInputError(f"{source}: no usable rows: every row has a non-finite or non-positive N, D, C or loss "
                            "(fix: check the loss and size columns)")
    return df[~bad].reset_index(drop=True), dropped


def _curves_of(points: pd.DataFrame) -> pd.DataFrame | None:
    """The rows themselves as training curves, where some run has at least two of them."""
    return points if points.run_id.duplicated().any() else None


def from_file(path: Path, n_col: str = "N", d_col: str = "D", c_col: str = "C", loss_col: str = "loss",
              run_col: str = "run_id") -> FitTable:
    path = Path(path)
    kind = {".jsonl": "JSON lines", ".json": "JSON"}.get(path.suffix.lower(), "CSV")
    try:
        df = pd.read_csv(path) if kind == "CSV" else pd.read_json(path, lines=kind == "JSON lines")
    except ValueError as e:  # pandas' parser errors, empty files and undecodable bytes are all ValueErrors
        reason = " ".join(str(e).split())  # pandas' tokenizer errors end in a newline: keep the error one line
        raise FitInputError(f"{path}: not a readable {kind} table: {reason} (fix: a {kind} table with the columns "
                            f"{n_col}, {d_col} (or {c_col}) and {loss_col}, one row per run or evaluation)") from None
    if df.empty:
        raise FitInputError(f"{path}: the table has no rows (fix: one row per run or evaluation)")
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
    out["run_id"] = df[run_col].astype(str) if run_col in df.columns else [f"row {i + 2}" for i in range(len(df))]
    points, dropped = _clean(out, out["run_id"], str(path))
    points["nominal_C"] = group_budgets(points.C.to_numpy())
    return FitTable(points=points, curves=_curves_of(points), notes=notes, excluded=dropped,
                    conventions={"params": f"column {n_col}", "flops": f"column {c_col}" if c_col in df.columns
                                 else "6ND"})


def sweep_conventions(sweep_dir: Path, params: str | None = None, flops: str | None = None) -> dict[str, str]:
    """The sweep's own (params, flops) pair from its manifest, with either one overridden."""
    pair = dict(read_manifest(sweep_dir).get("conventions") or {})
    pair.update({k: v for k, v in (("params", params), ("flops", flops)) if v is not None})
    for key, allowed in (("params", PARAM_CONVENTIONS), ("flops", FLOP_CONVENTIONS)):
        if key not in pair:
            raise FitInputError(f"{sweep_dir}: the manifest names no {key} convention (an older sweep); pass "
                                f"--{key} ({', '.join(allowed)})")
        if pair[key] not in allowed:
            raise FitInputError(f"--{key} {pair[key]!r}: use one of {', '.join(allowed)}")
    return pair


def from_sweep(sweep_dir: Path, params: str | None = None, flops: str | None = None) -> FitTable:
    """Finished runs of a sweep under its own conventions (or the ones given); diverged, failed and unfinished runs
    are excluded and listed."""
    conventions = sweep_conventions(sweep_dir, params, flops)
    params, flops = conventions["params"], conventions["flops"]
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
    if "final_val_loss_se" in runs.columns:
        points["loss_se"] = runs.final_val_loss_se.astype(float).to_numpy()
        points["eval_sequences"] = runs.eval_sequences.astype(float).to_numpy()
    tuning = untuned = None
    if "grid.cell" in runs.columns:
        tuning = hparams.landscape(runs, points.N, points.loss)
        untuned = points[points.run_id.isin(tuning.run_id[tuning.untuned])]
        points = points[points.run_id.isin(tuning.run_id[tuning.best])]
    points, dropped = _clean(points.reset_index(drop=True), points.run_id.reset_index(drop=True), str(sweep_dir))
    points = _with_nominal_c(points, runs)
    curves = None
    if not evals.empty:
        ev = evals[evals.run_id.isin(points.run_id)]
        n_of = dict(zip(points.run_id, points.N))
        curves = pd.DataFrame({"run_id": ev.run_id, "N": ev.run_id.map(n_of), "D": ev.tokens.astype(float),
                               "C": ev[f"flops_{flops}"].astype(float), "loss": ev.val_loss.astype(float)})
        curves = curves[(curves.D > 0) & np.isfinite(curves.loss)]
    notes = mixed_versions(runs[runs.run_id.isin(points.run_id)]) + without_history(points, evals)
    return FitTable(points=points, curves=curves, notes=notes,
                    excluded=excluded + dropped, conventions={"params": params, "flops": flops},
                    study_cost=_study_cost(runs, flops),
                    tuning=tuning, untuned=None if untuned is None or untuned.empty else _with_nominal_c(untuned, runs))


# What a run's numbers depend on besides its config: the project's code and the library that computes them.
VERSION_COLUMNS = {"git_sha": "commits of the code", "version.scaling": "versions of scaling",
                   "version.torch": "versions of torch"}


def mixed_versions(runs: pd.DataFrame) -> list[str]:
    """A note for each of VERSION_COLUMNS on which the fitted runs differ: a sweep grown or resumed across an upgrade
    fits runs that one code would not all have given (the run id is the config's hash, not the code's)."""
    notes = []
    for column, what in VERSION_COLUMNS.items():
        if column not in runs.columns:
            continue
        counts = runs[column].dropna().astype(str).value_counts()
        if len(counts) > 1:
            groups = ", ".join(f"{value[:12]}: {n} run{'s' * (n != 1)}" for value, n in counts.items())
            notes.append(f"the runs were trained by {len(counts)} {what} ({groups}): a change between them can move "
                         "every loss (fix: to fit the runs of one, move the other's run directories aside and run "
                         "the sweep again)")
    return notes


def without_history(points: pd.DataFrame, evals: pd.DataFrame) -> list[str]:
    """A note naming the fitted runs that have no evaluation in their ``metrics.jsonl`` (the file lost or emptied):
    every finished run logs its final evaluation there, and approach 1's envelope is read from those histories, so
    without the note it would lack the runs silently."""
    logged = set(evals.run_id) if not evals.empty else set()
    lacking = sorted(set(points.run_id) - logged)
    if not lacking:
        return []
    return [f"{len(lacking)} of the {len(points)} fitted runs have no evaluation history ({', '.join(lacking)}: "
            "metrics.jsonl missing or without evals), so approach 1's envelope lacks them; their final losses are "
            "fitted (fix: delete their run directories and run the sweep again to train them again)"]


def _with_nominal_c(points: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``points`` with ``nominal_C``: hold-outs and frontiers group runs by the grid's nominal budget, never by
    actual C (step rounding moves it)."""
    nominal = dict(zip(runs.run_id, runs["grid.compute"].astype(float)))
    out = points.reset_index(drop=True).copy()
    out["nominal_C"] = out["budget"] if "budget" in out.columns else out.run_id.map(nominal)
    return out


def _study_cost(runs: pd.DataFrame, flops: str) -> dict[str, float] | None:
    if "branch_tokens" not in runs.columns or not (runs.branch_tokens > 0).any():
        return None
    independent = runs[f"flops_{flops}"].astype(float)
    trained = independent * (1 - runs.branch_tokens.astype(float) / runs.tokens.astype(float))
    return {"flops_trained": float(trained.sum()), "flops_independent": float(independent.sum()),
            "ratio": float(trained.sum() / independent.sum()), "branches": int((runs.branch_tokens > 0).sum()),
            "runs": len(runs)}


def load(path: Path, **kwargs: str | None) -> FitTable:
    """A sweep directory (``params``, ``flops``: its conventions) or a table file (``*_col``: its columns); an
    argument of the other kind, which would change nothing, is refused. None: the default."""
    path = Path(path)
    if not path.exists():
        raise FitInputError(f"{path} does not exist; pass a sweep directory or a CSV/JSONL table")
    given = {k: v for k, v in kwargs.items() if v is not None}
    columns = {k: v for k, v in given.items() if k.endswith("_col")}
    conventions = {k: v for k, v in given.items() if k in ("params", "flops")}
    if path.is_dir():
        if not (path / MANIFEST).exists():
            raise FitInputError(f"{path} is a directory but not a sweep's (no {MANIFEST}); pass a sweep directory or "
                                "a CSV/JSONL table")
        if columns:
            # A sweep's columns are its own: a column asked for would be silently ignored.
            flags = ", ".join("--" + k.replace("_", "-") for k in columns)
            raise FitInputError(f"{path}: {flags} name a table's columns; a sweep's N and C follow its conventions "
                                "(fix: drop the flag, or choose them with --params and --flops)")
        return from_sweep(path, **conventions)
    if conventions:
        # A table has one N and one C column: a convention asked for would be silently ignored.
        raise FitInputError(f"{path}: --params, --flops and --total choose among a sweep's recorded conventions; a "
                            "table's N and C are its columns (fix: drop the flag, or name the columns you want with "
                            "--n-col and --c-col)")
    return from_file(path, **columns)
