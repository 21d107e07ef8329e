"""Grid expansion: counts, IsoFLOP arithmetic, hyper-parameter rules, generated shapes, frozen round trip."""

from __future__ import annotations

import math

import pytest
import yaml

from scaling.cli import frozen_yaml
from scaling.config import ConfigError, load_train_config, run_id
from scaling.flops import count_params, flops_per_token
from scaling.grid import GridConfig, expand, shape_for_target
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
    assert grid.kind == "isoflop" and len(points) == 4 * 5
    sizes = {p.grid["size"]: p.grid["params_non_embedding"] for p in points}
    assert len(sizes) >= 5 and max(sizes.values()) / min(sizes.values()) >= 10
    for p in points:
        # tokens = C / FLOPs-per-token(size), rounded to whole steps: within one batch of nominal
        actual = p.config.budget.tokens * flops_per_token(p.config.model, "6n_attention")
        assert abs(actual / p.grid["budget_flops"] - 1) <= p.config.budget.batch_tokens / p.config.budget.tokens
        assert p.config.budget.tokens % p.config.budget.batch_tokens == 0


def test_cartesian_and_ladder_counts_and_seeds():
    grid, base = grid_and_base(["grid=tiny", "grid.seeds=[0,1]"])
    points = expand(grid, base)
    assert len(points) == 3 * 2 * 2
    assert {p.config.seed for p in points} == {0, 1}
    grid, base = grid_and_base(["grid=ladder"])
    for p in expand(grid, base):
        n = count_params(p.config.model).non_embedding
        ratio = p.config.budget.tokens / n
        assert min(abs(ratio - k) / k for k in (10, 20, 40)) < 0.5 or p.config.num_steps <= 2


def test_deepseek_rule_sets_lr_and_batch_from_compute():
    grid, base = grid_and_base(["grid.hparam_rule=deepseek"])
    for p in expand(grid, base):
        c = p.grid["compute"]
        assert p.config.optim.lr == pytest.approx(0.3118 * p.grid["budget_flops"] ** -0.125, rel=1e-9)
        assert 0.5 < p.config.budget.batch_tokens / (0.2920 * c**0.3271) < 2
        assert p.config.optim.warmup_steps == math.ceil(0.1 * p.config.num_steps)


def test_inverse_width_rule_scales_lr():
    grid, base = grid_and_base(["grid=tiny", "grid.hparam_rule=inverse_width", "grid.base_width=64"])
    for p in expand(grid, base):
        assert p.config.optim.lr == pytest.approx(base["optim"]["lr"] * 64 / p.config.model.d_model)


def test_shapes_from_target_parameter_counts():
    _, base = grid_and_base(["grid=cartesian"])
    model = load_train_config(base).model
    for target in (30_000, 250_000, 1_000_000):
        shape = shape_for_target(target, model, aspect_ratio=32, head_dim=32)
        import dataclasses

        n = count_params(dataclasses.replace(model, num_layers=shape.num_layers, d_model=shape.d_model,
                                             num_heads=shape.num_heads)).non_embedding
        assert 0.6 < n / target < 1.6


def test_frozen_config_round_trips_to_the_same_run(tmp_path):
    grid, base = grid_and_base(["grid=tiny"])
    point = expand(grid, base)[0]
    text = frozen_yaml(point.raw, tmp_path)
    loaded = yaml.safe_load(text)
    loaded.pop("defaults"), loaded.pop("hydra")
    assert run_id(load_train_config(loaded)) == point.id


def test_grid_errors_name_the_point():
    grid, base = grid_and_base(["grid=tiny", "grid.budgets_tokens=[100]"])
    with pytest.raises(ConfigError, match="grid point .*budget.tokens"):
        expand(grid, base)
    with pytest.raises(ConfigError, match="grid.budgets_flops"):
        grid_and_base(["grid.budgets_flops=[]"])[0]
