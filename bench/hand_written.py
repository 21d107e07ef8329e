"""Where the hand-written backward passes of the rotation and SwiGLU pay: the llama training step with autograd's
backward of the plain ops against the hand-written one, interleaved in one process of its own that keeps freed memory
as every training process does (scaling.hardware.keep_freed_memory), one thread, fp32.

`scaling.model.HAND_WRITTEN_MIN_ELEMENTS` switches between the two by the size of the fused projection each one
differentiates; the two give bit-identical results (tests/test_model.py), so only speed decides. The shapes are the
default study's (2 layers, 2 heads, micro-batches of 4x128 bytes) and the throughput benchmark's (8x256).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch

from bench.throughput import BATCH, SEQ, SHAPES, VOCAB, interleaved, make_ours, model_config
from scaling import model as model_module
from scaling.hardware import keep_freed_memory

SHAPES_AND_BATCHES = [((2, 2, width), 4, 128) for width in (16, 32, 64)] + [(s, BATCH, SEQ) for s in SHAPES]
SECONDS_PER_SHAPE = 30.0  # each side's share of the repeats, roughly
Step = Callable[[torch.Tensor, torch.Tensor], None]


def _with_threshold(step: Step, min_elements: float) -> Step:
    """``step`` with the model's size switch set to ``min_elements`` (0: always hand-written; inf: never)."""
    def run(x: torch.Tensor, y: torch.Tensor) -> None:
        model_module.HAND_WRITTEN_MIN_ELEMENTS = min_elements
        step(x, y)
    return run


def run() -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "bench.hand_written"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def measure() -> list[dict]:
    torch.set_num_threads(1)
    default = model_module.HAND_WRITTEN_MIN_ELEMENTS
    rows = []
    try:
        for (layers, heads, d), batch, seq in SHAPES_AND_BATCHES:
            cfg = dataclasses.replace(model_config(layers, heads, d), seq_len=seq)
            torch.manual_seed(0)
            data = torch.randint(0, VOCAB, (batch, seq + 1))
            x, y = data[:, :-1], data[:, 1:]
            autograd = _with_threshold(make_ours(cfg, None, False), float("inf"))
            hand = _with_threshold(make_ours(cfg, None, False), 0)
            start = time.perf_counter()
            hand(x, y)
            repeats = min(400, max(10, int(SECONDS_PER_SHAPE / 2 / (time.perf_counter() - start))))
            t_autograd, t_hand = interleaved(autograd, hand, x, y, repeats)
            qkv, gate_up = batch * seq * 3 * d, batch * seq * 2 * cfg.ffn_dim
            rows.append({
                "shape": f"({layers},{heads},{d})", "tokens": f"{batch}x{seq}", "repeats": repeats,
                "qkv_elements": qkv, "gate_up_elements": gate_up,
                "speedup": statistics.median(t_hand) / statistics.median(t_autograd),
                "pair_ratio_quartiles": statistics.quantiles([h / a for a, h in zip(t_autograd, t_hand)], n=4),
                "default_rotation": "autograd" if qkv < default else "hand-written",
                "default_swiglu": "autograd" if gate_up < default else "hand-written",
            })
    finally:
        model_module.HAND_WRITTEN_MIN_ELEMENTS = default
    return rows


if __name__ == "__main__":
    keep_freed_memory()
    print(json.dumps(measure()))
