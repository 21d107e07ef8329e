"""Parameter counts and FLOPs from the config alone agree with the built model and with a FLOP counter."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from scaling.config import ModelConfig
from scaling.flops import count_params, flops_per_token
from tests.flop_counter import register_cpu_sdpa_flops
from scaling.model import GPT

BASE = ModelConfig(arch="llama", num_layers=2, d_model=64, num_heads=2, d_ff=None, ffn_ratio=8 / 3, seq_len=64,
                   vocab_size=512, tie_embeddings=True, init_std=0.02, norm_eps=1e-5, rope_theta=1e4,
                   mup_base_width=None)
SHAPES = [
    dict(),
    dict(arch="gpt2", ffn_ratio=4.0),
    dict(num_layers=3, d_model=96, num_heads=3, tie_embeddings=False),
    dict(arch="gpt2", num_layers=4, d_model=128, num_heads=4, tie_embeddings=False, d_ff=200),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_param_counts_match_built_model(shape):
    cfg = dataclasses.replace(BASE, **shape)
    model = GPT(cfg)
    counts = count_params(cfg)
    assert counts.total == sum(p.numel() for p in model.parameters())  # tied weights counted once
    embedding = model.tok_emb.weight.numel() + (model.pos_emb.weight.numel() if model.pos_emb is not None else 0)
    assert counts.embedding == embedding
    assert counts.lm_head == (0 if cfg.tie_embeddings else model.lm_head.weight.numel())
    assert counts.non_embedding == sum(p.numel() for p in model.blocks.parameters()) + sum(
        p.numel() for p in model.norm.parameters())


@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[2], SHAPES[3]])
def test_palm_convention_matches_flop_counter(shape):
    cfg = dataclasses.replace(BASE, **shape)
    model = GPT(cfg)
    batch = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len + 1))
    register_cpu_sdpa_flops()  # otherwise the counter drops CPU attention
    counter = FlopCounterMode(display=False)
    with counter:
        model(batch[:, :-1], batch[:, 1:]).backward()
    measured_per_token = counter.get_total_flops() / (2 * cfg.seq_len)
    predicted = flops_per_token(cfg, "6n_attention")
    assert abs(measured_per_token / predicted - 1) < 0.05, (measured_per_token, predicted)


def test_conventions_are_ordered_and_named():
    cfg = dataclasses.replace(BASE, tie_embeddings=False)
    kaplan, six_n, palm = (flops_per_token(cfg, c) for c in ("kaplan", "6n", "6n_attention"))
    assert kaplan < six_n and kaplan < palm
    assert flops_per_token(cfg, "chinchilla") > 0
    with pytest.raises(ValueError, match="unknown FLOP convention"):
        flops_per_token(cfg, "7n")


def test_chinchilla_appendix_f_matches_hand_count():
    # One layer, d=4, 1 head, ff=8, seq 2, vocab 10, GPT-2 MLP (two matrices): the formula of App. F by hand.
    cfg = dataclasses.replace(BASE, arch="gpt2", num_layers=1, d_model=4, num_heads=1, d_ff=8, seq_len=2,
                              vocab_size=10)
    s, d, v, ff = 2, 4, 10, 8
    forward = 2 * s * v * d + (2 * 3 * s * d * d + 2 * s * s * d + 3 * s * s + 2 * s * s * d + 2 * s * d * d) + (
        2 * s * 2 * d * ff) + 2 * s * d * v
    assert flops_per_token(cfg, "chinchilla") == pytest.approx(3 * forward / s)
