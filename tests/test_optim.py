"""Learning-rate schedules are pure functions of the step with the documented shapes; weight decay hits matrices."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from scaling.config import ModelConfig, OptimConfig
from scaling.model import GPT
from scaling.optim import build_optimizer, lr_at, schedule_cut_short

BASE = OptimConfig(lr=1.0, min_lr_ratio=0.1, schedule="cosine", warmup_steps=10, decay_fraction=0.2,
                   decay_shape="linear", weight_decay=0.1, beta1=0.9, beta2=0.95, eps=1e-8, grad_clip=1.0)


def test_cosine_warms_up_and_ends_at_the_floor_on_the_last_step():
    lrs = [lr_at(s, 100, BASE) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


def test_wsd_is_flat_then_decays_over_the_last_fraction():
    cfg = dataclasses.replace(BASE, schedule="wsd")
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[10:80] == [1.0] * 70 and lrs[-1] == pytest.approx(0.1) and lrs[85] < 1.0


def test_a_warmup_the_run_cannot_hold_is_named_and_a_fitting_one_is_not():
    """lr_at cuts a warmup longer than the run: the cosine then peaks on the last step and never decays, which no
    run of the configured schedule does."""
    assert schedule_cut_short(BASE, 100) is None
    assert schedule_cut_short(dataclasses.replace(BASE, warmup_steps=0), 1) is None
    lrs = [lr_at(s, 8, dataclasses.replace(BASE, warmup_steps=1000)) for s in range(8)]
    assert lrs[-1] == max(lrs) == 1.0  # what the warning is about
    cut = schedule_cut_short(dataclasses.replace(BASE, warmup_steps=1000), 8)
    assert "optim.warmup_steps=1000" in cut and "cut to 7 steps" in cut and "never decays" in cut
    assert "the run's 2 steps: the warmup is cut to 1 step and" in schedule_cut_short(BASE, 2)  # read "1 steps"
    assert "never decays" not in schedule_cut_short(dataclasses.replace(BASE, warmup_steps=8, schedule="constant"), 8)
    assert "ends at its peak" in schedule_cut_short(dataclasses.replace(BASE, warmup_steps=7), 8)
    wsd = dataclasses.replace(BASE, schedule="wsd")  # 100 steps: the decay starts at step 80
    assert schedule_cut_short(dataclasses.replace(wsd, warmup_steps=80), 100) is None
    assert "step 80" in schedule_cut_short(dataclasses.replace(wsd, warmup_steps=81), 100)


def test_constant_and_decay_groups():
    assert [lr_at(s, 50, dataclasses.replace(BASE, schedule="constant")) for s in (10, 49)] == [1.0, 1.0]
    model = GPT(ModelConfig(arch="gpt2", num_layers=1, d_model=16, num_heads=2, d_ff=None, ffn_ratio=4.0,
                            seq_len=8, vocab_size=32, tie_embeddings=True, init_std=0.02, norm_eps=1e-5,
                            rope_theta=1e4, mup_base_width=None))
    decay, no_decay = build_optimizer(model, BASE, torch.device("cpu")).param_groups
    assert all(p.dim() == 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert model.tok_emb.weight in no_decay["params"] and no_decay["weight_decay"] == 0.0


def test_wsd_1_sqrt_cooldown_and_its_prefix_is_shared_by_shorter_runs():
    cfg = dataclasses.replace(BASE, schedule="wsd", decay_shape="1-sqrt")
    long, short = [lr_at(s, 100, cfg) for s in range(100)], [lr_at(s, 50, cfg) for s in range(50)]
    # 1-sqrt: a quarter of the way into the 20-step cooldown the rate has lost half its way to the floor.
    assert long[84] == pytest.approx(0.1 + 0.9 * (1 - 0.5)) and long[-1] == pytest.approx(0.1)
    assert cfg.decay_start(50) == 40 and short[:40] == long[:40] and short[40] < long[40]
