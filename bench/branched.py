"""Cooldown branches against independent cosine runs over the same (N, D) points (experiment=scaling_cpu_branched):
the FLOPs and wall time each study took, and how far apart their approach-3 laws are."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from scaling.io import read_json

ROOT = Path(__file__).resolve().parents[1]
STUDIES = {"branched": ["experiment=scaling_cpu_branched"],
           "cosine": ["experiment=scaling_cpu_branched", "grid.branched=false", "optim=adamw_cosine"]}


def _law(fit: dict, n: float, d: float) -> float:
    return fit["E"] + fit["A"] / n ** fit["alpha"] + fit["B"] / d ** fit["beta"]


def run() -> dict:
    out: dict = {"command": "python sweep.py " + " ".join(STUDIES["branched"]), "studies": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in STUDIES.items():
            start = time.perf_counter()
            result = subprocess.run([sys.executable, str(ROOT / "sweep.py"), f"sweep.out_dir={tmp}",
                                     f"sweep.name={name}", *args], cwd=ROOT, capture_output=True, text=True,
                                    env=dict(os.environ))
            if result.returncode != 0:
                raise RuntimeError(f"{name} study failed:\n{result.stderr[-3000:]}")
            fit = read_json(Path(tmp) / name / "report" / "fit.json")
            runs = pd.read_csv(Path(tmp) / name / "results" / "runs.csv")
            flops = float(runs.flops_6n_attention.sum())
            trained = fit.get("study_cost", {}).get("flops_trained", flops)
            out["studies"][name] = {"seconds": time.perf_counter() - start, "flops_points": flops,
                                    "flops_trained": trained, "approach3": fit["approach3"],
                                    "losses": dict(zip(runs.run_id, runs.final_val_loss))}
            out["studies"][name]["points"] = list(zip(runs.params_total, runs.tokens, runs.run_id))
            out["studies"][name]["sizes"] = dict(zip(runs.run_id, runs["grid.size"]))
    b, c = out["studies"]["branched"], out["studies"]["cosine"]
    out["flops_ratio"] = b["flops_trained"] / c["flops_trained"]
    out["seconds_ratio"] = b["seconds"] / c["seconds"]
    # The laws at every grid point, and each run's loss against its twin (same N and D, other schedule).
    gaps = [abs(_law(b["approach3"], n, d) / _law(c["approach3"], n, d) - 1) for n, d, _ in c["points"]]
    twins = {(n, d): b["losses"][rid] for n, d, rid in b["points"]}
    out["runs"] = [{"size": c["sizes"][rid], "params_total": int(n), "tokens": int(d),
                    "tokens_per_param": round(d / n, 1), "branched_loss": twins[(n, d)],
                    "cosine_loss": c["losses"][rid], "gap": twins[(n, d)] / c["losses"][rid] - 1}
                   for n, d, rid in c["points"]]
    run_gaps = [r["gap"] for r in out["runs"]]
    out["law_gap_max"], out["law_gap_mean"] = max(gaps), sum(gaps) / len(gaps)
    out["run_gap_mean"] = sum(run_gaps) / len(run_gaps)
    out["run_gap_max_abs"] = max(map(abs, run_gaps))
    out["exponents"] = {}
    for k in ("alpha", "beta", "a_limit"):
        in_other = []
        for mine, other in ((b, c), (c, b)):
            lo, hi = other["approach3"]["ci95"][k]
            in_other.append(lo is not None and lo <= mine["approach3"][k] <= hi)
        out["exponents"][k] = {"branched": b["approach3"][k], "cosine": c["approach3"][k],
                               "branched_ci95": b["approach3"]["ci95"][k], "cosine_ci95": c["approach3"]["ci95"][k],
                               "each_inside_the_other": all(in_other)}
    for s in out["studies"].values():
        del s["points"], s["losses"], s["sizes"]
        s["approach3"] = {k: s["approach3"][k] for k in ("E", "A", "B", "alpha", "beta", "a_limit", "ci95")}
    assert math.isfinite(out["flops_ratio"])
    return out
