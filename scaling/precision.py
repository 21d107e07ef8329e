"""``precision=auto``: bf16 autocast where this device runs the model's step faster in bf16, fp32 elsewhere.

On CUDA the answer is the hardware's (bf16 tensor cores from compute capability 8.0). On a CPU, bf16 pays only with
bf16 matmul units (AMX, AVX512-BF16) and only for models wide enough to be matmul-bound, so the choice is measured:
a short probe times a forward and backward pass of the model in both dtypes, alternated, once per machine and model
shape, cached in the data cache. The choice replaces ``auto`` in the config before it is hashed or frozen, so a
run's config.yaml and summary.json name the dtype it trained in, and a sweep decides once for all its points.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from pathlib import Path

import torch

from scaling.config import ModelConfig
from scaling.hardware import BF16_MIN_CAPABILITY, autocast, cpu_has_fast_bf16
from scaling.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

CACHE_FILE = "precision-probe.json"
MIN_SPEEDUP = 1.1  # bf16 must beat fp32 by this much: below it, a shared machine's noise could flip the choice
PROBE_SEQUENCES = 4
PROBE_REPEATS = 3


def choose(model: ModelConfig, device: torch.device, threads: int, cache_dir: Path) -> tuple[str, str]:
    """The dtype ``auto`` stands for with this model on this device, and why (one line for the log)."""
    if device.type == "cuda":
        name, capability = torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device)
        if capability >= BF16_MIN_CAPABILITY:
            return "bf16", f"{name} has bf16 tensor cores"
        return "fp32", f"{name} (compute capability {capability[0]}.{capability[1]}) has no bf16 tensor cores"
    if not cpu_has_fast_bf16():
        return "fp32", "this CPU has no bf16 matmul units (AMX, AVX512-BF16): bf16 would be emulated"
    speedup = _cached_speedup(model, threads, cache_dir)
    dtype = "bf16" if speedup >= MIN_SPEEDUP else "fp32"
    return dtype, (f"a bf16 step measured {speedup:.2f}x the fp32 step for this model on this CPU "
                   f"({'at least' if dtype == 'bf16' else 'below'} {MIN_SPEEDUP}x)")


def _cached_speedup(model: ModelConfig, threads: int, cache_dir: Path) -> float:
    key = _probe_key(model, threads)
    path = Path(cache_dir) / CACHE_FILE
    if path.exists() and key in read_json(path):
        return float(read_json(path)[key])
    log.info("precision=auto: timing a bf16 and an fp32 step of this model (once per machine and shape)")
    speedup = bf16_speedup(model, threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Merged with what other processes wrote meanwhile; a lost entry is only measured again.
    atomic_write_json(path, {**(read_json(path) if path.exists() else {}), key: speedup})
    return speedup


def _probe_key(model: ModelConfig, threads: int) -> str:
    """The machine (CPU model and flags), torch, the thread count and the model's shape."""
    try:
        cpu = "\n".join(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                        if line.startswith(("model name", "flags")))
    except OSError:
        cpu = ""
    shape = (model.arch, model.num_layers, model.d_model, model.num_heads, model.ffn_dim, model.seq_len,
             model.vocab_size)
    return hashlib.sha256(json.dumps([cpu, torch.__version__, threads, shape]).encode()).hexdigest()[:16]


def bf16_speedup(model_cfg: ModelConfig, threads: int) -> float:
    """fp32 step time / bf16 step time (forward and backward), medians of alternated steps on one CPU batch."""
    from scaling.model import GPT

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        model = GPT(model_cfg)
        batch = torch.randint(0, model_cfg.vocab_size, (PROBE_SEQUENCES, model_cfg.seq_len + 1), generator=generator)
        device = torch.device("cpu")

        def step(dtype: torch.dtype | None) -> float:
            start = time.perf_counter()
            with autocast(device, dtype):
                loss = model(batch[:, :-1], batch[:, 1:])
            loss.backward()
            model.zero_grad(set_to_none=True)
            return time.perf_counter() - start

        for dtype in (None, torch.bfloat16):  # first calls pick kernels and allocate
            step(dtype)
        fp32, bf16 = [], []
        for _ in range(PROBE_REPEATS):
            fp32.append(step(None))
            bf16.append(step(torch.bfloat16))
        return statistics.median(fp32) / statistics.median(bf16)
    finally:
        torch.set_num_threads(previous_threads)
