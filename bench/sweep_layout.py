"""Sweep throughput on this machine: the same grid points with 1 worker x 2 threads and with 2 workers x 1 thread."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The smallest budget of the default grid: its 5 sizes (seconds each), so both layouts fit in a few minutes.
GRID = ["grid.budgets_flops=[2.0e11]", "sweep.fit=false"]


def points_per_hour(workers: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "sweep.py"), f"sweep.out_dir={tmp}", "sweep.name=layout", *GRID,
                        f"launcher.workers={workers}", f"launcher.threads_per_worker={threads}"], cwd=ROOT,
                       check=True, capture_output=True, env=dict(os.environ))
        seconds = time.perf_counter() - start
        points = len(list(Path(tmp).glob("layout/runs/*/summary.json")))
    return {"workers": workers, "threads_per_worker": threads, "points": points, "seconds": seconds,
            "points_per_hour": 3600 * points / seconds}


def run() -> dict:
    one_by_two = points_per_hour(1, 2)
    two_by_one = points_per_hour(2, 1)
    return {"1x2": one_by_two, "2x1": two_by_one,
            "ratio_2x1_over_1x2": two_by_one["points_per_hour"] / one_by_two["points_per_hour"]}
