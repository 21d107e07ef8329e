"""Per-size tuning: the grid trains every cell with each setting, the fit keeps each cell's best run and fits the
best learning rate and batch as power laws."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from scaling.config import ConfigError
from scaling.fit import hparams
from scaling.grid import expand
from scaling.io import read_json
from tests.conftest import run_cli
from tests.test_grid import grid_and_base
from tests.test_sweep import SWEEP_TINY


def test_tuned_grid_trains_each_cell_once_per_setting():
    grid, base = grid_and_base(["grid=tiny", "grid.tune.lr_factors=[0.5,1,2]", "grid.tune.batch_factors=[1,2]"])
    points = expand(grid, base)
    assert len(points) == 3 * 2 * 3 * 2
    cells: dict[str, list] = {}
    for p in points:
        cells.setdefault(p.grid["cell"], []).append(p)
    assert len(cells) == 6
    for runs in cells.values():
        assert sum(p.grid["untuned"] for p in runs) == 1
        untuned = next(p for p in runs if p.grid["untuned"])
        for p in runs:
            assert p.config.optim.lr == pytest.approx(untuned.config.optim.lr * p.grid["tune_lr_factor"])
            assert p.config.budget.batch_tokens == untuned.config.budget.batch_tokens * p.grid["tune_batch_factor"]
    untuned_grid = expand(*grid_and_base(["grid=tiny"]))
    assert all("cell" not in p.grid for p in untuned_grid)


def test_repeated_settings_are_refused():
    with pytest.raises(ConfigError, match="grid.tune.lr_factors"):
        grid_and_base(["grid.tune.lr_factors=[1,1]"])


def synthetic_landscape(lr_exponent: float = -0.125, batch_exponent: float = 0.33) -> pd.DataFrame:
    """Loss quadratic in log lr and log batch around optima that follow power laws of C."""
    rows = []
    for c in (1e17, 4e17, 1.6e18):
        lr_opt, batch_opt = 0.3 * c**lr_exponent, 0.29 * c**batch_exponent
        for i, f_lr in enumerate((0.25, 0.5, 1.0, 2.0, 4.0)):
            for f_batch in (0.5, 1.0, 2.0):
                lr, batch = 0.3 * 1e17**lr_exponent * f_lr * (c / 1e17) ** -0.1, batch_opt * f_batch * 1.2
                loss = 3 + 0.1 * math.log(lr / lr_opt) ** 2 + 0.05 * math.log(batch / batch_opt) ** 2
                rows.append({"run_id": f"{c:g}-{i}-{f_batch}", "cell": f"C={c:g}", "N": 1e6, "C": c, "loss": loss,
                             "lr": lr, "batch_tokens": batch, "beta2": 0.95, "untuned": f_lr == 1.0 and f_batch == 1})
    table = pd.DataFrame(rows)
    table["best"] = table.index.isin(table.groupby("cell").loss.idxmin())
    return table


def test_hyperparameter_laws_recover_the_optima_in_c():
    out = hparams.tuning_results(synthetic_landscape())
    assert out["laws"]["C"]["lr"]["exponent"] == pytest.approx(-0.125, abs=1e-6)
    assert out["laws"]["C"]["batch_tokens"]["exponent"] == pytest.approx(0.33, abs=1e-6)
    assert out["next"]["C"] == pytest.approx(6.4e18)
    assert out["next"]["lr"] == pytest.approx(0.3 * 6.4e18**-0.125, rel=1e-5)
    assert not out["notes"]


def test_an_optimum_at_the_edge_of_the_range_is_named():
    table = synthetic_landscape()
    table = table[table.lr <= table.groupby("cell").lr.transform(lambda lr: np.sort(lr.unique())[1])]
    table = table.assign(best=table.index.isin(table.groupby("cell").loss.idxmin()))
    assert "edge of the swept range" in hparams.tuning_results(table)["notes"][0]


def test_tuned_sweep_fits_each_cells_best_run(tmp_path):
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=t", *SWEEP_TINY,
                     "grid.tune.lr_factors=[1,3]", "grid.budgets_tokens=[16384,24576,32768]")
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "t"
    runs = pd.read_csv(sweep / "results" / "runs.csv")
    fit = json.loads((sweep / "report" / "fit.json").read_text())
    assert len(runs) == 18 and fit["n_runs"] == 9  # nine cells, each fitted on its best run
    best = runs.loc[runs.groupby("grid.cell").final_val_loss.idxmin()]
    assert {c["run_id"] for c in fit["tuning"]["cells"]} == set(best.run_id)
    assert set(fit["tuning"]["laws"]) == {"C", "N"} and "lr" in fit["tuning"]["laws"]["C"]
    assert "untuned" in fit and fit["untuned"]["alpha"] > 0
    report = (sweep / "report" / "report.md").read_text()
    assert "## Per-size tuning" in report and "figures/tuning.png" in report
    assert read_json(sweep / "manifest.json")["points"][0]["grid"]["cell"]
