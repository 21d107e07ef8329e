"""How often a study design meets the fit's four checks (scaling.fit.checks), over every draw of it on disk.

A draw is the runs of a group of seeds in one sweep directory, restricted to the design's budgets: the long study's
runs are the default study's, seed for seed, and any study's runs at a subset of its budgets are that smaller design's,
point for point. Two directories that hold the same seeds with identical losses (the same code, rounding alike) are
one draw, counted once; the same seeds with different losses (model code that rounds its last bits differently) are
separate draws.

    python -m bench.study_draws sweeps/default sweeps/default_long \
        --budgets 1.25e11,1.77e11,2.5e11,3.54e11,5e11,7.07e11,1e12 --groups 0 1 0,1,2

prints one row per draw: the four checks (met or not, and what was measured) and each approach's a, then what sets
approach 1 apart in each draw: its a again with approach 3's law in place of the losses at the runs' ends, before
them, and everywhere (an envelope that recovers the law from the law's own values is not biased by the grid's few
sizes; whichever losses move it away are the ones it reads differently).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.fit.approach1 import fit_approach1
from scaling.fit.approach3 import Approach3Fit
from scaling.fit.run import fit_all
from scaling.fit.table import FitTable, from_sweep
from scaling.results import collect

CHECKS = ("profiles", "agreement", "floor", "backtest")


@functools.cache
def _load(sweep_dir: Path) -> tuple[FitTable, pd.DataFrame]:
    """The sweep's fit table and its runs (with their grid seeds), read once however many groups draw from it."""
    return from_sweep(sweep_dir), collect(sweep_dir)[0]


def draw(sweep_dir: Path, seeds: list[int], budgets: list[float]) -> FitTable | None:
    """The sweep's finished runs of ``seeds`` at ``budgets`` as a fit table, or None where a seed has no runs."""
    table, runs = _load(sweep_dir)
    chosen = runs[runs["grid.seed"].isin(seeds) & runs["grid.budget_flops"].isin(budgets)]
    if set(chosen["grid.seed"]) != set(seeds):
        return None
    ids = set(chosen.run_id)
    points = table.points[table.points.run_id.isin(ids)].reset_index(drop=True)
    curves = None if table.curves is None else table.curves[table.curves.run_id.isin(ids)]
    return dataclasses.replace(table, points=points, curves=curves, study_cost=None)


def row(label: str, results: dict) -> str:
    checks = results["checks"]
    cells = [("met" if checks[name]["met"] else "not met") + f": {checks[name]['measured']}" for name in CHECKS]
    return f"| {label} | {results['n_runs']} | " + " | ".join(cells) + " |"


def approach1_reading(table: FitTable, results: dict) -> str:
    """Approach 1's a on the runs, and again with approach 3's law in place of the losses at the runs' ends, then in
    place of the losses before them: which of its inputs sets it apart from approach 3."""
    if table.curves is None or "approach3" not in results or "approach1" not in results:
        return "not fitted"
    law, curves = Approach3Fit.from_dict(results["approach3"]), table.curves
    on_law = law.predict(curves.N.to_numpy(), curves.D.to_numpy())
    at_end = (curves.D == curves.groupby("run_id").D.transform("max")).to_numpy()

    def a_with(loss: np.ndarray) -> float:
        return fit_approach1(curves.run_id, curves.N, curves.D, curves.C, loss)["a"]

    return (f"{results['approach1']['a']:.2f} | {a_with(np.where(at_end, on_law, curves.loss)):.2f} | "
            f"{a_with(np.where(at_end, curves.loss, on_law)):.2f} | {a_with(on_law):.2f} | "
            f"{results['approach3']['a']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.study_draws", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--budgets", required=True, help="the design's budgets in FLOPs, comma-separated")
    parser.add_argument("--groups", nargs="+", required=True, help="seed groups, each comma-separated: 0 1 0,1,2")
    args = parser.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]
    seen: set[tuple] = set()
    met = dict.fromkeys(CHECKS, 0)
    agreement = {"inside": 0, "overlap": 0}  # the agreement check's two weaker parts
    draws = 0
    readings = []
    print("| draw | runs | " + " | ".join(CHECKS) + " |\n|---|---|" + "---|" * len(CHECKS))
    for group in args.groups:
        seeds = [int(s) for s in group.split(",")]
        for sweep in args.sweeps:
            table = draw(sweep, seeds, budgets)
            if table is None:
                continue
            key = (tuple(seeds), tuple(sorted(zip(table.points.run_id, table.points.loss))))
            if key in seen:
                continue
            seen.add(key)
            results = fit_all(table)
            label = f"seeds {group} ({sweep.name})"
            print(row(label, results), flush=True)
            readings.append(f"| {label} | {approach1_reading(table, results)} |")
            draws += 1
            for name in CHECKS:
                met[name] += bool(results["checks"][name]["met"])
            for part in agreement:
                agreement[part] += bool(results["checks"]["agreement"].get(part))
    print("\nmet in " + ", ".join(f"{name} {met[name]} of {draws}" for name in CHECKS)
          + f" (agreement: every estimate inside every interval in {agreement['inside']}, the intervals overlapping "
          f"in {agreement['overlap']})")
    print("\nApproach 1's a with approach 3's law in place of some losses:\n\n| draw | on the runs | law at the runs' "
          "ends | law before the runs' ends | law everywhere | approach 3 |\n|---|---|---|---|---|---|\n"
          + "\n".join(readings))


if __name__ == "__main__":
    main()
