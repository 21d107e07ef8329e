"""Device choice, threads, precision context and the peak FLOP/s that MFU is measured against."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import time
import warnings
from pathlib import Path

import torch

from scaling.config import PrecisionConfig, RunConfig
from scaling.errors import UserError

log = logging.getLogger(__name__)

# Dense (no sparsity) tensor-core peaks in FLOP/s from the vendors' data sheets, by dtype.
# fp32 uses TF32 tensor cores when allowed, which is what the trainer enables.
GPU_PEAK_FLOPS_PER_S: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12},
    "H100": {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12},  # SXM
    "A100": {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    "L40S": {"bf16": 362e12, "fp16": 362e12, "tf32": 183e12, "fp32": 91.6e12},
    "A10G": {"bf16": 125e12, "fp16": 125e12, "tf32": 62.5e12, "fp32": 31.2e12},
    "L4": {"bf16": 121e12, "fp16": 121e12, "tf32": 60e12, "fp32": 30e12},
    "RTX 4090": {"bf16": 165e12, "fp16": 165e12, "tf32": 82.6e12, "fp32": 82.6e12},
}


class PrecisionError(UserError, ValueError):
    pass


def resolve_device(cfg: RunConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PrecisionError("run.device: CUDA requested but no GPU is visible (fix: run.device=auto or cpu)")
    return device


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks for reuse instead of handing them back to the kernel.

    A training step frees and re-allocates the same activation buffers every step. By default glibc serves large
    blocks with mmap and trims the heap's top when nothing lies above it, so a step can page-fault its activations
    in again (measured in the trainer on CPU: ~1,600 minor faults per step at (2,2,64), 5,000-17,000 at (6,6,384));
    kept, they fall to ~0. The step-time gain measured 0.95-1.30x on a noisy 2-core VM (bench/NOTES.md). The process
    keeps its peak heap, which the next step needs anyway. Process-wide; returns False where the C library is not
    glibc (no ``mallopt``).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    # 1 GiB where glibc accepts it, else its 64-bit maximum of 32 MiB (DEFAULT_MMAP_THRESHOLD_MAX).
    kept = mallopt(m_mmap_threshold, 1 << 30) or mallopt(m_mmap_threshold, 32 << 20)
    return bool(kept and mallopt(m_trim_threshold, (1 << 31) - 1))


def resolve_threads(cfg: RunConfig) -> int:
    if cfg.num_threads is not None:
        return cfg.num_threads
    return int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))


def autocast_dtype(precision: PrecisionConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32; refuses combinations that cannot apply on ``device``."""
    if precision.dtype == "fp32":
        return None
    if precision.dtype == "fp16" and device.type != "cuda":
        raise PrecisionError("precision.dtype=fp16 needs CUDA (its GradScaler is CUDA-only here) "
                             "(fix: precision=bf16 or precision=fp32 on CPU)")
    if precision.dtype == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PrecisionError("precision.dtype=bf16 is not supported by this GPU (fix: precision=fp16)")
    if precision.dtype == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        log.warning("precision.dtype=bf16: this CPU has no bf16 matmul units (AMX, AVX512-BF16), so bf16 is emulated "
                    "and many times slower than fp32 (bench/results); fix: precision=fp32")
    return torch.bfloat16 if precision.dtype == "bf16" else torch.float16


def configure_tf32(precision: PrecisionConfig, device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision.tf32
        torch.backends.cudnn.allow_tf32 = precision.tf32
    elif precision.tf32:
        log.warning("precision.tf32=true has no effect on %s", device.type)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16 (x86), or Arm's BF16 extension; without one, CPU bf16 matmuls are emulated on the fp32
    units (measured 9-17x slower than fp32: bench/results)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16", "bf16"})


def measure_cpu_peak_flops_per_s(dtype: torch.dtype | None, size: int = 1024, repeats: int = 5) -> float:
    """Best-of-``repeats`` square matmul rate on this process's threads: the CPU peak MFU is quoted against."""
    a = torch.randn(size, size, dtype=dtype or torch.float32)
    b = torch.randn(size, size, dtype=dtype or torch.float32)
    a @ b  # warm the kernel choice
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_flops_per_s(device: torch.device, dtype: torch.dtype | None, tf32: bool,
                     cpu_peak: float | None) -> float | None:
    """Peak for MFU, or None when the device is unknown (no MFU is logged rather than a guess)."""
    if device.type == "cpu":
        if cpu_peak is not None:
            return cpu_peak
        # Emulated bf16 runs on the fp32 units, so their peak is the hardware's.
        return measure_cpu_peak_flops_per_s(dtype if dtype is None or cpu_has_fast_bf16() else None)
    key = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "tf32" if tf32 else "fp32")
    return gpu_peak_flops_per_s(torch.cuda.get_device_name(device), key)


def gpu_peak_flops_per_s(name: str, dtype_key: str) -> float | None:
    """Spec-sheet peak of a GPU by (a substring of) its name; None, with a warning, for an unknown GPU."""
    for gpu, peaks in GPU_PEAK_FLOPS_PER_S.items():
        if gpu in name:
            return peaks[dtype_key]
    warnings.warn(f"no peak FLOP/s known for GPU {name!r}: MFU will not be logged "
                  "(fix: add its peaks to GPU_PEAK_FLOPS_PER_S in scaling/hardware.py)")
    return None
