"""Sweep throughput on this machine: the same grid points with 1 worker x 2 threads and with 2 workers x 1 thread,
next to the ceiling the cores themselves allow (a matmul loop, one process with 2 threads vs 2 processes); and points
forked from one preloaded process against a new interpreter per point, alternated."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The two smallest budgets of the default grid: 10 points, an even number, so neither layout ends with an idle core
# only because the point count is odd; both layouts together take a few minutes.
GRID = ["grid.budgets_flops=[2.5e11,5.0e11]", "sweep.fit=false"]
MATMUL_SIZES = (256, 1024)  # the widest default-grid matmul is ~256; 1024 shows where threads start to pay
MATMUL_SECONDS = 4.0

_MATMUL = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
n = int(sys.argv[2])
a, b = torch.randn(n, n), torch.randn(n, n)
for _ in range(3):
    a @ b
start, count = time.perf_counter(), 0
while time.perf_counter() - start < float(sys.argv[3]):
    a @ b
    count += 1
print(2 * n**3 * count / (time.perf_counter() - start))
"""


def points_per_hour(workers: int, threads: int, preload: bool = True) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "sweep.py"), f"sweep.out_dir={tmp}", "sweep.name=layout", *GRID,
                        f"launcher.workers={workers}", f"launcher.threads_per_worker={threads}",
                        f"launcher.preload={str(preload).lower()}"], cwd=ROOT,
                       check=True, capture_output=True, env=dict(os.environ))
        seconds = time.perf_counter() - start
        points = len(list(Path(tmp).glob("layout/runs/*/summary.json")))
    return {"workers": workers, "threads_per_worker": threads, "preload": preload, "points": points,
            "seconds": seconds, "points_per_hour": 3600 * points / seconds}


def matmul_flops_per_s(processes: int, threads: int, n: int) -> float:
    """Total fp32 matmul FLOP/s of ``processes`` concurrent processes with ``threads`` threads each."""
    procs = [subprocess.Popen([sys.executable, "-c", _MATMUL, str(threads), str(n), str(MATMUL_SECONDS)],
                              stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    return sum(float(p.communicate()[0]) for p in procs)


def core_ceiling() -> list[dict]:
    rows = []
    for n in MATMUL_SIZES:
        one = matmul_flops_per_s(1, 1, n)
        one_by_two = matmul_flops_per_s(1, 2, n)
        two_by_one = matmul_flops_per_s(2, 1, n)
        rows.append({"n": n, "1x1_flops_per_s": one, "1x2_flops_per_s": one_by_two, "2x1_flops_per_s": two_by_one,
                     "ratio_2x1_over_1x2": two_by_one / one_by_two})
    return rows


def run() -> dict:
    one_by_two = points_per_hour(1, 2)
    two_by_one = points_per_hour(2, 1)
    return {"grid": GRID, "1x2": one_by_two, "2x1": two_by_one,
            "ratio_2x1_over_1x2": two_by_one["points_per_hour"] / one_by_two["points_per_hour"],
            "matmul_ceiling": core_ceiling()}


def point_start(rounds: int = 2) -> dict:
    """The default launcher (2 workers x 1 thread) with points forked from a preloaded process and with a new
    interpreter per point, alternated (fresh, forked, fresh, forked, ...) so the shared machine's drift is shared."""
    fresh, forked = [], []
    for _ in range(rounds):
        fresh.append(points_per_hour(2, 1, preload=False))
        forked.append(points_per_hour(2, 1, preload=True))
    total = {name: 3600 * sum(r["points"] for r in rows) / sum(r["seconds"] for r in rows)
             for name, rows in (("fresh", fresh), ("forked", forked))}
    return {"grid": GRID, "fresh": fresh, "forked": forked, "fresh_points_per_hour": total["fresh"],
            "forked_points_per_hour": total["forked"], "ratio": total["forked"] / total["fresh"],
            "pair_ratios": [b["points_per_hour"] / a["points_per_hour"] for a, b in zip(fresh, forked)]}
