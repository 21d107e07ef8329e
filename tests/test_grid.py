"""Grid expansion: counts, IsoFLOP arithmetic, hyper-parameter rules, generated shapes, frozen round trip."""

from __future__ import annotations

import logging
import math
import re

import pytest
import yaml

from scaling.sweepdir import frozen_yaml
from scaling.config import ConfigError, load_train_config, run_id
from scaling.flops import count_params, flops_per_token
from scaling.grid import GridConfig, expand, plan_table, shape_for_target
from scaling.config import parse
from tests.conftest import compose_raw


def grid_and_base(overrides=()):
    raw = compose_raw(["sweep.name=test", *overrides], config_name="sweep")
    grid = parse(GridConfig, raw.pop("grid"), "grid.")
    raw.pop("sweep"), raw.pop("launcher")
    return grid, raw


def test_default_grid_is_an_honest_isoflop_grid():
    grid, base = grid_and_base()
    points = expand(grid, base)
    assert grid.kind == "isoflop"
    # Six sizes per budget, the window moving up with the budget; at the smallest budget the sixth size would train
    # fewer than min_steps steps, so it is left out.
    per_budget = [len([p for p in points if p.grid["budget_flops"] == c]) for c in grid.budgets_flops]
    assert per_budget == [5, 6, 6, 6, 6, 6, 6]
    sizes = {p.grid["size"]: p.grid["params_total"] for p in points}
    assert len(sizes) >= 8 and max(sizes.values()) / min(sizes.values()) >= 10
    assert min(p.config.num_steps for p in points) >= grid.min_steps == 1000
    for p in points:
        # tokens = C / FLOPs-per-token(size), rounded to whole steps: within one batch of nominal
        actual = p.config.budget.tokens * flops_per_token(p.config.model, "6n_attention")
        assert abs(actual / p.grid["budget_flops"] - 1) <= p.config.budget.batch_tokens / p.config.budget.tokens
        assert p.config.budget.tokens % p.config.budget.batch_tokens == 0


def test_the_plan_table_keeps_its_columns_apart_at_any_budget():
    # Fixed-width columns ran into each other beyond the defaults: at 1e20 FLOPs the parameter counts and the
    # tokens printed as one number ("333,87242,602,211,225,088").
    grid, base = grid_and_base(["grid.budgets_flops=[1e20]", "grid.min_steps=1"])
    points = expand(grid, base)
    lines = plan_table(points, {p.grid["size"]: 1000.0 for p in points}).splitlines()
    header, rows = lines[0].split(), lines[2:2 + len(points)]
    assert header[:3] == ["id", "size", "seed"]
    for point, row in zip(points, rows):
        cells = row.split()
        assert len(cells) == 13 and cells[0] == point.id and cells[6] == f"{point.config.budget.tokens:,}"


def test_cartesian_counts_and_seeds():
    grid, base = grid_and_base(["grid=tiny", "grid.seeds=[0,1]"])
    points = expand(grid, base)
    assert len(points) == 3 * 2 * 2
    assert {p.config.seed for p in points} == {0, 1}


def test_deepseek_rule_sets_lr_and_batch_from_compute():
    grid, base = grid_and_base(["grid.hparam_rule=deepseek", "grid.min_steps=1"])
    for p in expand(grid, base):
        c = p.grid["compute"]
        assert p.config.optim.lr == pytest.approx(0.3118 * p.grid["budget_flops"] ** -0.125, rel=1e-9)
        # Rounded to whole sequences, then to whole micro-batches of them: off by at most half of each.
        micro, seq = p.config.budget.micro_batch_size, p.config.model.seq_len
        assert abs(p.config.budget.batch_tokens - 0.2920 * c**0.3271) <= seq / 2 + micro * seq / 2
        assert p.config.optim.warmup_steps == math.ceil(0.1 * p.config.num_steps)


def test_lr_inverse_width_rule_scales_only_the_global_lr():
    grid, base = grid_and_base(["grid=tiny", "grid.hparam_rule=lr_inverse_width", "grid.base_width=64"])
    for p in expand(grid, base):
        assert p.config.optim.lr == pytest.approx(base["optim"]["lr"] * 64 / p.config.model.d_model)
        assert p.config.model.init_std == base["model"]["init_std"]


def test_ladder_counts_tokens_per_parameter_against_every_parameter():
    grid, base = grid_and_base(["grid=ladder", "grid.tokens_per_param=[20]", "budget.batch_tokens=1024",
                                "budget.micro_batch_size=8"])
    for p in expand(grid, base):
        total = count_params(p.config.model).total
        assert abs(p.config.budget.tokens - 20 * total) <= p.config.budget.batch_tokens / 2
        assert p.grid["tokens_per_param"] == pytest.approx(p.config.budget.tokens / total)


def test_isoflop_windows_centre_each_budget_on_the_target_ratio():
    grid, base = grid_and_base(["grid.sizes_per_budget=3", "grid.center_tokens_per_param=100", "grid.min_steps=1"])
    every_grid, _ = grid_and_base(["grid.sizes_per_budget=null", "grid.min_steps=1"])
    points, every = expand(grid, base), expand(every_grid, base)
    for c in grid.budgets_flops:
        ratios = [p.grid["tokens_per_param"] for p in sorted((p for p in points if p.grid["budget_flops"] == c),
                                                               key=lambda p: p.grid["params_total"])]
        assert len(ratios) == 3 and ratios[0] > ratios[1] > ratios[2]
        # The size nearest the target ratio, among every size the grid has, is in the window.
        nearest = min((p.grid["tokens_per_param"] for p in every if p.grid["budget_flops"] == c),
                      key=lambda r: abs(math.log(r / 100)))
        assert nearest in ratios


@pytest.mark.parametrize("overrides,words", [
    (["grid=cartesian", "grid.size_targets=[-5]"], "grid.size_targets: [-5] holds a count of 0 or below"),
    (["grid=cartesian", "grid.size_targets=[100000]", "grid.aspect_ratio=0"], "grid.aspect_ratio: 0.0 is below 1"),
    (["grid=cartesian", "grid.size_targets=[100000]", "grid.head_dim=0"], "grid.head_dim: 0 is below 2"),
    (["grid.base_width=0"], "grid.base_width: 0 is below 1"),
])
def test_shape_and_width_settings_are_checked_before_any_shape_is_drawn(overrides, words):
    """A negative size target used to end in a TypeError from a complex cube root; a base width of 0 gave every
    point a learning rate of 0."""
    with pytest.raises(ConfigError, match=re.escape(words) + ".*fix:"):
        grid_and_base(overrides)


def test_a_seed_listed_twice_is_named():
    with pytest.raises(ConfigError, match=r"grid.seeds: \[0, 1, 0\] lists a seed twice.*fix: list each seed once"):
        grid_and_base(["grid.seeds=[0,1,0]"])


def test_sizes_per_budget_needs_an_isoflop_grid_and_three_sizes_each_with_its_own_fix():
    with pytest.raises(ConfigError, match="grid.sizes_per_budget.*set on a .* grid.*grid.kind=isoflop"):
        grid_and_base(["grid=tiny", "grid.sizes_per_budget=3"])
    with pytest.raises(ConfigError, match="sizes_per_budget.*0 sizes cannot make a profile.*use 3 or more, or null"):
        grid_and_base(["grid.sizes_per_budget=0"])


def test_shapes_from_target_parameter_counts():
    _, base = grid_and_base(["grid=cartesian"])
    model = load_train_config(base).model
    for target in (30_000, 250_000, 1_000_000):
        shape = shape_for_target(target, model, aspect_ratio=32, head_dim=32)
        import dataclasses

        n = count_params(dataclasses.replace(model, num_layers=shape.num_layers, d_model=shape.d_model,
                                             num_heads=shape.num_heads)).non_embedding
        # Depths and widths in steps of one head give shapes about 10% apart in N near these targets.
        assert 0.85 < n / target < 1.15


def test_frozen_config_round_trips_to_the_same_run(tmp_path):
    grid, base = grid_and_base(["grid=tiny"])
    point = expand(grid, base)[0]
    text = frozen_yaml(point.raw, tmp_path)
    loaded = yaml.safe_load(text)
    loaded.pop("defaults"), loaded.pop("hydra")
    assert run_id(load_train_config(loaded)) == point.id


def test_grid_errors_name_the_point():
    grid, base = grid_and_base(["grid=tiny", "grid.budgets_tokens=[100]"])
    with pytest.raises(ConfigError, match="grid point .*budget.tokens") as err:
        expand(grid, base)
    # The point's own fix, once: a second "(fix: adjust the grid)" used to follow it.
    assert str(err.value).count("fix:") == 1 and str(err.value).endswith("(fix: raise budget.tokens or lower "
                                                                           "budget.batch_tokens)")
    with pytest.raises(ConfigError, match="grid.budgets_flops"):
        grid_and_base(["grid.budgets_flops=[]"])[0]


def test_a_point_shorter_than_min_steps_is_refused_by_name():
    grid, base = grid_and_base(["grid.sizes_per_budget=null", "budget.batch_tokens=8192",
                                "budget.micro_batch_size=16"])
    with pytest.raises(ConfigError, match="grid point .*: grid.min_steps"):
        expand(grid, base)


def test_an_isoflop_window_holds_only_sizes_that_train_min_steps():
    floor = 2000
    grid, base = grid_and_base([f"grid.min_steps={floor}"])
    every, _ = grid_and_base(["grid.sizes_per_budget=null", "grid.min_steps=1"])
    points, all_points = expand(grid, base), expand(every, base)
    for c in grid.budgets_flops:
        window = sorted(p.grid["params_total"] for p in points if p.grid["budget_flops"] == c)
        eligible = sorted(p.grid["params_total"] for p in all_points
                          if p.grid["budget_flops"] == c and p.config.num_steps >= floor)
        # Consecutive sizes among those long enough, as many as there are up to sizes_per_budget.
        assert len(window) == min(grid.sizes_per_budget, len(eligible))
        start = eligible.index(window[0])
        assert window == eligible[start:start + len(window)]
    with pytest.raises(ConfigError, match="grid.min_steps: only 2 size"):
        expand(*grid_and_base(["grid.min_steps=2500"]))


def test_a_window_that_min_steps_cuts_short_is_named_with_the_sizes_it_leaves_out(caplog):
    """The default grid's smallest budget loses its sixth size to min_steps: the sweep says so, once, naming the
    size and the edge where the profile's optimum may sit. Without the floor every window is whole and nothing is
    said."""
    with caplog.at_level(logging.WARNING, logger="scaling.grid"):
        expand(*grid_and_base())
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "at 1.25e+11 FLOPs: 2x28 left out" in warnings[0] and "5 sizes up to 2x24" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scaling.grid"):
        expand(*grid_and_base(["grid.min_steps=1"]))
    assert not caplog.records


def test_branched_grid_has_one_trunk_per_size_and_branches_at_each_decay_start():
    grid, base = grid_and_base(["grid.branched=true", "optim=adamw_wsd"])
    points = expand(grid, base)
    independent = expand(*grid_and_base(["optim=adamw_wsd"]))
    assert sorted((p.grid["size"], p.config.budget.tokens) for p in points) == sorted(
        (p.grid["size"], p.config.budget.tokens) for p in independent)  # the same (N, D) points
    by_id = {p.id: p for p in points}
    for size in {p.grid["size"] for p in points}:
        group = sorted((p for p in points if p.grid["size"] == size), key=lambda p: p.config.budget.tokens)
        trunk = group[-1]
        assert trunk.config.branch.trunk is None and trunk.grid["cost_tokens"] == trunk.config.budget.tokens
        assert len({p.config.optim.warmup_steps for p in group}) == 1  # one warmup: one shared prefix
        for p in group[:-1]:
            start = p.config.optim.decay_start(p.config.num_steps)
            assert by_id[p.config.branch.trunk] is trunk and p.config.branch.step == start
            assert start in trunk.config.checkpoint.branch_steps
            assert p.grid["cost_tokens"] == p.config.budget.tokens - start * p.config.budget.batch_tokens
    # The default grid's budgets lie sqrt(2) apart and each size trains in up to six of them, all branches of one
    # trunk: the grid costs about half of its independent runs (0.54; 0.74 when the same budgets double instead).
    cost = sum(p.grid["cost_tokens"] * flops_per_token(p.config.model, "6n_attention") for p in points)
    assert 0.45 < cost / sum(p.grid["compute"] for p in points) < 0.65


def test_branched_grid_needs_a_wsd_schedule():
    grid, base = grid_and_base(["grid.branched=true"])
    with pytest.raises(ConfigError, match="grid.branched.*optim=adamw_wsd"):
        expand(grid, base)


@pytest.mark.parametrize("overrides", [
    # the wide study grown by two doublings (its smallest budget's window is cut by min_steps: the test above)
    ["experiment=scaling_cpu_wide", "grid.budgets_flops=[2.5e11,5e11,1e12,2e12,4e12,8e12,1.6e13]"],
    ["experiment=chinchilla_gpu"],
])
def test_shipped_isoflop_windows_keep_two_sizes_each_side_of_their_target(overrides, caplog):
    """Every window holds two sizes or more on each side of the size nearest the target tokens per parameter, so no
    profile's optimum is pinned to the grid's largest or smallest size, and the sweep has nothing to warn about."""
    grid, base = grid_and_base(overrides)
    with caplog.at_level(logging.WARNING, logger="scaling.grid"):
        points = expand(grid, base)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    for c in grid.budgets_flops:
        ratios = sorted(p.grid["tokens_per_param"] for p in points if p.grid["budget_flops"] == c)
        nearest = ratios.index(min(ratios, key=lambda r: abs(math.log(r / grid.center_tokens_per_param))))
        assert 2 <= nearest <= len(ratios) - 3, (c, ratios)


def test_a_budget_beyond_the_grids_sizes_is_named_with_the_fix(caplog):
    """A budget whose target size is the grid's largest gets the largest sizes as its window, with no larger size to
    put the optimum inside: the sweep says so and names the fix."""
    with caplog.at_level(logging.WARNING, logger="scaling.grid"):
        expand(*grid_and_base(["experiment=scaling_cpu_wide", "grid.budgets_flops=[5e13]"]))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "at 5e+13 FLOPs is not centred: 2x112" in warnings[0], warnings
    assert "add larger sizes to grid.sizes" in warnings[0]
