"""The default CPU study end to end (`make sweep`, about 7 minutes on 2 cores): the goals it is designed for.
Two goals are not met at this budget; they are marked as expected failures with the measured figures, so that the
day they hold the test says so (README: "The default study's law")."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scaling.fit.approach2 import find_optimum
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    result = run_cli("sweep.py", f"sweep.out_dir={out}", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = out / "default"
    return sweep, json.loads((sweep / "report" / "fit.json").read_text())


def test_every_profile_has_an_interior_minimum_with_two_sizes_each_side(study):
    sweep, fit = study
    runs = pd.read_csv(sweep / "results" / "runs.csv")
    assert runs["steps"].min() >= 300
    for budget, profile in runs.groupby("grid.budget_flops"):
        found = find_optimum(profile.params_total, profile.tokens, profile.final_val_loss, budget, "akima")
        assert not isinstance(found, str), found
        sizes = np.sort(profile.params_total.to_numpy())
        assert (sizes < found.n_opt).sum() >= 2 and (sizes > found.n_opt).sum() >= 2, budget


def test_one_law_under_one_convention_and_the_approaches_agree(study):
    sweep, fit = study
    assert fit["conventions"]["params"] == "total" and fit["conventions"]["flops"] == "6n_attention"
    estimates = {name: (fit[name]["a"], fit[name]["ci95"]["a"]) for name in ("approach1", "approach2", "approach3")}
    for a, _ in estimates.values():
        assert all(lo <= a <= hi for _, (lo, hi) in estimates.values()), estimates
    lo, hi = fit["approach3"]["ci95"]["E"]
    assert lo > 0
    assert "Extrapolation error" in (sweep / "report" / "report.md").read_text()


@pytest.mark.xfail(strict=True, reason="measured 2026-12-01: E's 95% interval [0.88, 1.73] reaches above the lowest "
                   "loss 1.674; the runs span 8x in compute (README)")
def test_the_floor_lies_below_every_observed_loss(study):
    sweep, fit = study
    runs = pd.read_csv(sweep / "results" / "runs.csv")
    assert fit["approach3"]["ci95"]["E"][1] < runs.final_val_loss.min()


@pytest.mark.xfail(strict=True, reason="measured 2026-12-01: 2.40% mean |error| predicting the largest budget (README)")
def test_the_extrapolation_error_is_at_most_one_percent(study):
    _, fit = study
    assert fit["backtest"]["mean_abs_rel_error"] <= 0.01
