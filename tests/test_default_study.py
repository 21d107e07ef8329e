"""The default CPU study end to end (`make sweep`: seven budgets, 41 runs, 8-14 minutes on 2 cores) against the
goals it is designed for, read from the fit's own checks (scaling.fit.checks; README: "The default study's law").
`make sweep` is seed 0, and runs on CPU are deterministic on one machine: the draw checked here met the floor, the
backtest and every profile above the smallest budget. Over the six single-seed draws of this design on record
(`python -m bench.study_draws`, bench/results/2026-12-07-study-draws.md), the backtest held in 6, the floor in 5 and
the profiles above the smallest budget in 5. The smallest budget's profile (4 of 6: its optimum sits at the step
floor) and the agreement on a with narrow intervals (3 of 6) run as expected failures that may pass."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

SMALLEST_WHY = ("at the step floor: the smallest budget's profile met the goal in 4 of 6 single-seed draws of this "
                "design; seed 0 misses (README)")
AGREEMENT_WHY = ("noise-limited at 41 runs: the approaches agreed with every interval under 0.5 wide in 3 of 6 "
                 "single-seed draws (README)")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    result = run_cli("sweep.py", f"sweep.out_dir={out}", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = out / "default"
    return sweep, json.loads((sweep / "report" / "fit.json").read_text())


def test_every_run_trains_the_grids_minimum_steps(study):
    sweep, _ = study
    assert pd.read_csv(sweep / "results" / "runs.csv")["steps"].min() >= 1000  # grid/default.yaml's min_steps


def profiles(study, smallest: bool) -> list[dict]:
    """The profiles check of the smallest budget (``smallest``) or of every larger one."""
    _, fit = study
    budgets = fit["checks"]["profiles"]["budgets"]
    return budgets[:1] if smallest else budgets[1:]


def test_every_profile_above_the_smallest_budget_has_an_interior_minimum_with_two_sizes_each_side(study):
    assert all(b["met"] for b in profiles(study, smallest=False)), profiles(study, smallest=False)


# The smallest budget's optimum sits at the step floor: over four seeds its mean profile is lowest at width 20, the
# fourth of the five sizes that train min_steps, and the sizes above lie 0.09 and 0.20 nats higher (README; measured
# on the MLP widths before their correction).
@pytest.mark.xfail(strict=False, reason=SMALLEST_WHY)
def test_the_smallest_budgets_profile_has_an_interior_minimum_with_two_sizes_each_side(study):
    assert profiles(study, smallest=True)[0]["met"], profiles(study, smallest=True)


def test_one_law_under_one_convention(study):
    sweep, fit = study
    assert fit["conventions"]["params"] == "total" and fit["conventions"]["flops"] == "6n_attention"
    assert fit["approach3"]["form"] == "kaplan_floor"
    assert "Extrapolation error" in (sweep / "report" / "report.md").read_text()


def test_the_floor_is_bounded_away_from_zero_and_below_every_observed_loss(study):
    _, fit = study
    assert fit["checks"]["floor"]["met"], fit["checks"]["floor"]


@pytest.mark.xfail(strict=False, reason=AGREEMENT_WHY)
def test_the_approaches_agree_on_a_with_intervals_that_say_something(study):
    _, fit = study
    assert fit["checks"]["agreement"]["met"], fit["checks"]["agreement"]


def test_the_extrapolation_error_is_at_most_one_percent(study):
    _, fit = study
    assert fit["checks"]["backtest"]["met"], fit["checks"]["backtest"]
