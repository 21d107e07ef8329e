"""Trainer step vs the minimal baseline GPT, interleaved in one process (A B A B ...), one thread; the last rows in a
process that keeps freed memory, as training processes do.

The own-process rows run the two sides in processes of their own, alternated (A B A B ... as processes): the
best-settings row changes process-wide state (the allocator), and a training run has its process to itself.
`python -m bench.throughput side ours|baseline fp32|fp32_kept|best L H D STEPS` is one side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from bench.baseline_gpt import make_step
from scaling.config import ModelConfig, OptimConfig
from scaling.flops import flops_per_token
from scaling.hardware import cpu_has_fast_bf16, keep_freed_memory, measure_cpu_peak_flops_per_s
from scaling.model import GPT
from scaling.optim import build_optimizer
from scaling.trainer import train_step

SHAPES = [(2, 2, 64), (4, 4, 128), (6, 6, 384)]  # (layers, heads, d_model)
BATCH, SEQ, VOCAB = 8, 256, 256
OPTIM = OptimConfig(lr=1e-3, min_lr_ratio=0.1, schedule="cosine", warmup_steps=0, decay_fraction=0.2,
                    decay_shape="linear",
                    weight_decay=0.1, beta1=0.9, beta2=0.95, eps=1e-8, grad_clip=1.0)


ARCHS = ("llama", "gpt2")  # the default architecture first


def model_config(layers: int, heads: int, d: int, arch: str = "llama") -> ModelConfig:
    """The default architecture (llama: RMSNorm, SwiGLU at 8/3 width as in configs/model/llama_tiny.yaml, RoPE), or
    the GPT-2 variant with the baseline's blocks (LayerNorm, GELU MLP 4x, learned positions); embeddings tied."""
    return ModelConfig(arch=arch, num_layers=layers, d_model=d, num_heads=heads, d_ff=None,
                       ffn_ratio=2.6667 if arch == "llama" else 4.0, seq_len=SEQ, vocab_size=VOCAB,
                       tie_embeddings=True, init_std=0.02, norm_eps=1e-5, rope_theta=1e4, mup_base_width=None)


def make_ours(cfg: ModelConfig, dtype: torch.dtype | None, compile_model: bool):
    device = torch.device("cpu")
    model = GPT(cfg)
    optimizer = build_optimizer(model, OPTIM, device)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    step_model = torch.compile(model) if compile_model else model

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        train_step(step_model, optimizer, scaler, [torch.cat([x, y[:, -1:]], dim=1)], device, dtype, 1.0)

    return step


def interleaved(a, b, x, y, repeats: int, warmup: int = 3) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        a(x, y)
        b(x, y)
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            fn(x, y)
            times.append(time.perf_counter() - start)
    return times_a, times_b


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The one batch every step of both sides trains on (inputs, targets), the same in every process."""
    torch.manual_seed(0)
    data = torch.randint(0, VOCAB, (BATCH, SEQ + 1))
    return data[:, :-1].contiguous(), data[:, 1:].contiguous()


def run(repeats: int = 15) -> list[dict]:
    torch.set_num_threads(1)
    x, y = fixed_batch()
    fast_bf16 = cpu_has_fast_bf16()
    peak_dtypes = (None, torch.bfloat16) if fast_bf16 else (None,)  # emulated bf16 runs on the fp32 units
    peaks = dict.fromkeys(peak_dtypes, 0.0)
    rows = []
    settings = [("fp32 eager", None, False, None), ("fp32 compiled ours vs eager baseline", None, True, None),
                ("bf16 ours vs fp32 baseline", torch.bfloat16, False, None)]
    if fast_bf16:
        settings.append(("bf16 eager", torch.bfloat16, False, torch.bfloat16))
    for (layers, heads, d), arch in ((shape, arch) for shape in SHAPES for arch in ARCHS):
        cfg = model_config(layers, heads, d, arch)
        fpt = flops_per_token(cfg, "6n_attention")
        for dtype in peak_dtypes:  # the best rate seen so far: a single reading on a shared VM can be 15% low
            peaks[dtype] = max(peaks[dtype], measure_cpu_peak_flops_per_s(dtype, repeats=20))
        # Every setting for the default architecture; the GPT-2 variant, the baseline's own blocks, in fp32 eager.
        for label, ours_dtype, compile_model, base_dtype in settings if arch == "llama" else settings[:1]:
            # Emulated bf16 steps take up to ~25 s at (6,6,384): a few repeats measure a slowdown of that size.
            emulated = ours_dtype is torch.bfloat16 and not fast_bf16
            ours, base = make_ours(cfg, ours_dtype, compile_model), make_step(layers, heads, d, VOCAB, SEQ, base_dtype)
            t_ours, t_base = interleaved(ours, base, x, y, 3 if emulated else repeats, warmup=1 if emulated else 3)
            rows.append(_row((layers, heads, d), arch, label, t_ours, t_base, fpt,
                             peaks[ours_dtype if fast_bf16 else None]))
    # Last, in a process of its own: glibc's setting is process-wide and cannot be undone.
    out = subprocess.run([sys.executable, "-m", "bench.throughput", "interleaved-kept", str(repeats),
                          str(peaks[None])], capture_output=True, text=True, check=True)
    return rows + json.loads(out.stdout)


KEPT_LABEL = "fp32 eager, both with freed memory kept (as the trainer runs)"


def interleaved_kept(repeats: int, peak_flops_per_s: float) -> list[dict]:
    """The default architecture against the baseline in fp32 eager, interleaved in one process whose allocator keeps
    freed memory (scaling.hardware.keep_freed_memory), as every training process runs: both sides get it."""
    torch.set_num_threads(1)
    keep_freed_memory()
    x, y = fixed_batch()
    rows = []
    for layers, heads, d in SHAPES:
        cfg = model_config(layers, heads, d)
        ours, base = make_ours(cfg, None, False), make_step(layers, heads, d, VOCAB, SEQ, None)
        t_ours, t_base = interleaved(ours, base, x, y, repeats)
        rows.append(_row((layers, heads, d), "llama", KEPT_LABEL, t_ours, t_base,
                         flops_per_token(cfg, "6n_attention"), peak_flops_per_s))
    return rows


def _row(shape: tuple[int, int, int], arch: str, setting: str, t_ours: list[float], t_base: list[float],
         flops_per_token_: float, peak_flops_per_s: float) -> dict:
    tokens = BATCH * SEQ
    med_ours, med_base = statistics.median(t_ours), statistics.median(t_base)
    return {
        "shape": "({},{},{})".format(*shape), "arch": arch, "setting": setting,
        "ours_tokens_per_s": tokens / med_ours, "baseline_tokens_per_s": tokens / med_base,
        "speedup": med_base / med_ours,
        # Each A/B pair ran back to back, so its ratio cancels slow drifts of the shared VM.
        "pair_ratio_quartiles": statistics.quantiles([b / a for a, b in zip(t_ours, t_base)], n=4),
        "ours_spread_pct": 100 * (max(t_ours) - min(t_ours)) / med_ours,
        "baseline_spread_pct": 100 * (max(t_base) - min(t_base)) / med_base,
        "ours_mfu": tokens / med_ours * flops_per_token_ / peak_flops_per_s,
        "peak_flops_per_s": peak_flops_per_s,
    }


# plain fp32 eager; fp32 eager with the allocator the trainer sets, on both sides; the trainer's best CPU settings
OWN_PROCESS_SETTINGS = ("fp32", "fp32_kept", "best")


def own_process_label(setting: str) -> str:
    if setting == "fp32":
        return "fp32 eager, each side alone in its process"
    if setting == "fp32_kept":
        return "fp32 eager, each side alone in its process, both with freed memory kept (as the trainer runs)"
    return ("bf16 autocast" if cpu_has_fast_bf16() else "fp32") + " + freed memory kept (own process) vs baseline"


def one_side(side: str, setting: str, shape: tuple[int, int, int], steps: int) -> list[float]:
    """Step times of one side in this process: ours (llama) under ``setting``, or the fp32 baseline (with the
    trainer's allocator setting under ``fp32_kept``)."""
    torch.set_num_threads(1)
    x, y = fixed_batch()
    if setting == "fp32_kept" or (side == "ours" and setting == "best"):
        keep_freed_memory()
    if side == "ours":
        best = setting == "best"
        step = make_ours(model_config(*shape), torch.bfloat16 if best and cpu_has_fast_bf16() else None, False)
    else:
        step = make_step(*shape, VOCAB, SEQ, None)
    for _ in range(3):
        step(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - start)
    return times


def own_processes(shape: tuple[int, int, int], setting: str, rounds: int = 5) -> dict:
    """Each side in a process of its own, alternated (A B A B ... as processes): a training run has its process to
    itself, so neither side's step meets memory the other left behind, as the interleaved rows' steps do."""
    steps = 4 if shape[2] >= 384 else 30  # each process measures a few seconds at least: the VM drifts
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(rounds):
        for side in times:
            out = subprocess.run([sys.executable, "-m", "bench.throughput", "side", side, setting,
                                  *map(str, shape), str(steps)], capture_output=True, text=True, check=True)
            times[side] += json.loads(out.stdout)
    med_ours, med_base = statistics.median(times["ours"]), statistics.median(times["baseline"])
    tokens = BATCH * SEQ
    return {"shape": "({},{},{})".format(*shape), "setting": own_process_label(setting),
            "ours_tokens_per_s": tokens / med_ours, "baseline_tokens_per_s": tokens / med_base,
            "speedup": med_base / med_ours, "rounds": rounds, "steps_per_round": steps}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.throughput")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("side", help="one side's step times in this process")
    one.add_argument("side", choices=("ours", "baseline"))
    one.add_argument("setting", choices=OWN_PROCESS_SETTINGS)
    one.add_argument("shape", nargs=3, type=int)
    one.add_argument("steps", type=int)
    kept = commands.add_parser("interleaved-kept", help="the rows of interleaved_kept")
    kept.add_argument("repeats", type=int)
    kept.add_argument("peak_flops_per_s", type=float)
    args = parser.parse_args()
    if args.command == "side":
        print(json.dumps(one_side(args.side, args.setting, tuple(args.shape), args.steps)))
    else:
        print(json.dumps(interleaved_kept(args.repeats, args.peak_flops_per_s)))
