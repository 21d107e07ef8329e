"""Learning-rate transfer across width (experiment=mup_transfer_cpu): the best learning rate at the base width and
at 4x and 8x it, under μP and under the standard parametrization, each from a sweep of 7 rates a factor 2 apart."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from scaling.io import read_json

ROOT = Path(__file__).resolve().parents[1]
STUDIES = {"mup": ["experiment=mup_transfer_cpu"],
           "standard": ["experiment=mup_transfer_cpu", "model.mup_base_width=null"]}


def run() -> dict:
    out: dict = {"command": "python sweep.py " + " ".join(STUDIES["mup"]), "widths": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in STUDIES.items():
            result = subprocess.run([sys.executable, str(ROOT / "sweep.py"), f"sweep.out_dir={tmp}",
                                     f"sweep.name={name}", *args], cwd=ROOT, capture_output=True, text=True,
                                    env=dict(os.environ))
            if result.returncode != 0:
                raise RuntimeError(f"{name} study failed:\n{result.stderr[-3000:]}")
            runs = pd.read_csv(Path(tmp) / name / "results" / "runs.csv")
            cells = read_json(Path(tmp) / name / "report" / "fit.json")["tuning"]["cells"]
            width_of = dict(zip(runs.run_id, runs["grid.d_model"]))
            for cell in cells:
                width = int(width_of[cell["run_id"]])
                line = runs[runs["grid.d_model"] == width].sort_values("config.optim.lr")
                out["widths"].setdefault(width, {})[name] = {
                    "lr_opt": cell["lr_opt"], "interior": cell["lr_interior"], "best_loss": cell["loss"],
                    "losses": dict(zip(line["config.optim.lr"], line.final_val_loss))}
    widths = sorted(out["widths"])
    for name in STUDIES:  # how far the optimum moved from the base width to the widest model
        out[f"{name}_shift"] = out["widths"][widths[-1]][name]["lr_opt"] / out["widths"][widths[0]][name]["lr_opt"]
    return out
