"""The default CPU study end to end (`make sweep`, about 5 minutes on 2 cores): the goals it is designed for
(README: "The default study's law"). Of four draws the backtest held in all, the profiles of every budget but the
smallest in all, and the floor in the two seed-0 draws (seeds 1 and 2 have intervals reaching down to zero): these
are checked. The smallest budget's profile (2 of 4 draws: its optimum sits at the step floor) and the agreement on a
with narrow intervals (1 of 4: inside the noise of its 23 runs) run as expected failures that may pass."""

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


def interior_minimum(study, smallest: bool) -> None:
    """The profiles of the smallest budget (``smallest``) or of every larger one have an interior minimum with two
    sizes or more on each side."""
    sweep, _ = study
    runs = pd.read_csv(sweep / "results" / "runs.csv")
    assert runs["steps"].min() >= 1000  # grid/default.yaml's min_steps
    lowest = runs["grid.budget_flops"].min()
    for budget, profile in runs.groupby("grid.budget_flops"):
        if (budget == lowest) != smallest:
            continue
        found = find_optimum(profile.params_total, profile.tokens, profile.final_val_loss, budget, "akima")
        assert not isinstance(found, str), found
        sizes = np.sort(profile.params_total.to_numpy())
        assert (sizes < found.n_opt).sum() >= 2 and (sizes > found.n_opt).sum() >= 2, budget


def test_every_profile_above_the_smallest_budget_has_an_interior_minimum_with_two_sizes_each_side(study):
    interior_minimum(study, smallest=False)


# The smallest budget's optimum sits at the step floor: over four seeds its mean profile is lowest at width 20, the
# fourth of the five sizes that train min_steps, and the sizes above lie 0.09 and 0.20 nats higher (README).
@pytest.mark.xfail(strict=False, reason="at the step floor: the smallest budget's profile met the goal in 2 of 4 "
                   "draws of this study and 2 of 4 of the long one; every larger budget's in all 4 of this study "
                   "(README)")
def test_the_smallest_budgets_profile_has_an_interior_minimum_with_two_sizes_each_side(study):
    interior_minimum(study, smallest=True)


def test_one_law_under_one_convention_with_a_floor_above_zero(study):
    sweep, fit = study
    assert fit["conventions"]["params"] == "total" and fit["conventions"]["flops"] == "6n_attention"
    assert fit["approach3"]["form"] == "kaplan_floor"
    lo, hi = fit["approach3"]["ci95"]["E"]
    assert lo > 0
    assert "Extrapolation error" in (sweep / "report" / "report.md").read_text()


def test_the_floor_lies_below_every_observed_loss(study):
    sweep, fit = study
    runs = pd.read_csv(sweep / "results" / "runs.csv")
    assert fit["approach3"]["ci95"]["E"][1] < runs.final_val_loss.min()


# Of four draws of this design (seed 0 on two versions of the model code that round the last bits differently,
# seeds 1 and 2), the agreement held in all and with intervals under 0.5 wide in one: at 23 single-seed runs the
# widths sit inside the noise; three seeds fitted together bring them to 0.19-0.32 (README, "The default study's law").
@pytest.mark.xfail(strict=False, reason="noise-limited at 23 runs: a agrees in 4 of 4 draws, intervals under 0.5 "
                   "wide in 1 of 4; with three seeds fitted together, in intervals 0.19-0.32 wide")
def test_the_approaches_agree_on_a_with_intervals_that_say_something(study):
    _, fit = study
    estimates = {name: (fit[name]["a"], fit[name]["ci95"]["a"]) for name in ("approach1", "approach2", "approach3")}
    for a, _ in estimates.values():
        assert all(lo <= a <= hi for _, (lo, hi) in estimates.values()), estimates
    # A compute-optimal N that grows between C^0.3 and C^0.8 at most (the 1,024-token design: widths 0.73-0.36-0.64).
    assert all(hi - lo < 0.5 for _, (lo, hi) in estimates.values()), estimates


# In the default form 0.81%, 0.57%, 0.86% and 0.76% in four draws; the separable form's 0.46%, 0.85%, 1.96% and
# 1.83% were biased high (README, "Why approach 3's default form is not Chinchilla's").
def test_the_extrapolation_error_is_at_most_one_percent(study):
    _, fit = study
    assert fit["backtest"]["mean_abs_rel_error"] <= 0.01
