"""Device choice, threads, precision context and the peak FLOP/s that MFU is measured against."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import time
import warnings
from pathlib import Path

import torch

from scaling.config import PrecisionConfig, RunConfig
from scaling.errors import UserError

log = logging.getLogger(__name__)

BF16_MIN_CAPABILITY = (8, 0)


def _peaks(bf16: float, tf32: float, fp32: float) -> dict[str, float]:
    return {"bf16": bf16, "fp16": bf16, "tf32": tf32, "fp32": fp32}


# Dense (no sparsity) tensor-core peaks in FLOP/s, by dtype; fp32 uses TF32 tensor cores when allowed. Each pattern
# is matched as whole words of torch.cuda.get_device_name() ("L4" does not match "L40"), most specific first; an
# unknown GPU gets no MFU rather than a wrong one. Sources, NVIDIA's data sheets, bf16 dense: H100 (SXM 989, PCIe
# 756, NVL 835 TFLOP/s), H200 (SXM 989, NVL 835), HGX B200 (2,250 per GPU; 4,500 with sparsity), A100 (312),
# L40S (362), L40 (181), L4 (121), A10 (125); GeForce RTX 4090 from the Ada architecture whitepaper (82.6 with the
# fp32 accumulation training uses; 165 with fp16 accumulation).
GPU_PEAK_FLOPS_PER_S: tuple[tuple[str, dict[str, float]], ...] = (
    (r"H100.*NVL", _peaks(835e12, 418e12, 60e12)),
    (r"H100.*PCIe", _peaks(756e12, 378e12, 51e12)),
    (r"H100", _peaks(989e12, 494e12, 67e12)),  # SXM (HBM3), the default H100 name
    (r"H200.*NVL", _peaks(835e12, 418e12, 60e12)),
    (r"H200", _peaks(989e12, 494e12, 67e12)),  # SXM
    (r"B200", _peaks(2250e12, 1100e12, 75e12)),
    (r"A100", _peaks(312e12, 156e12, 19.5e12)),
    (r"L40S", _peaks(362e12, 183e12, 91.6e12)),
    (r"L40", _peaks(181e12, 90.5e12, 90.5e12)),
    (r"L4", _peaks(121e12, 60e12, 30e12)),
    (r"A10G?", _peaks(125e12, 62.5e12, 31.2e12)),
    (r"RTX 4090", _peaks(82.6e12, 82.6e12, 82.6e12)),
)


class PrecisionError(UserError, ValueError):
    pass


def resolve_device(cfg: RunConfig) -> torch.device:
    return device_named(cfg.device, "run.device")


def device_named(name: str, field: str) -> torch.device:
    """``auto`` (a GPU when one is visible), ``cpu`` or ``cuda[:i]``; ``field`` names the setting in errors."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PrecisionError(f"{field}: CUDA requested but no GPU is visible (fix: {field}=auto or cpu)")
    return device


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks for reuse instead of handing them back to the kernel.

    A training step frees and re-allocates the same activation buffers every step. By default glibc serves large
    blocks with mmap and trims the heap's top when nothing lies above it, so a step can page-fault its activations
    in again; kept, they are reused (the measured effect: bench/NOTES.md). The process keeps its peak heap, which the
    next step needs anyway. Process-wide; returns False where the C library is not glibc (no ``mallopt``).
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
    if precision.dtype == "auto":
        raise PrecisionError("precision.dtype=auto reached the trainer unresolved (fix: start runs through train.py "
                             "or sweep.py, or call scaling.cli.resolve_precision on the config first)")
    if precision.dtype == "fp16" and device.type != "cuda":
        raise PrecisionError("precision.dtype=fp16 needs CUDA (its GradScaler is CUDA-only here) "
                             "(fix: precision=bf16 or precision=fp32 on CPU)")
    if precision.dtype == "bf16" and device.type == "cuda":
        # is_bf16_supported() is also True where bf16 is emulated (V100, T4): tensor cores need sm_80 or newer.
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) < BF16_MIN_CAPABILITY:
            raise PrecisionError(f"precision.dtype=bf16: {torch.cuda.get_device_name(device)} (compute capability "
                                 f"{major}.{minor}) has no bf16 tensor cores; they need {BF16_MIN_CAPABILITY[0]}."
                                 f"{BF16_MIN_CAPABILITY[1]} or newer (fix: precision=fp16)")
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
    units and run many times slower than fp32 (bench/results)."""
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
    """Spec-sheet peak of a GPU by its name (see GPU_PEAK_FLOPS_PER_S); None, with a warning, for an unknown GPU."""
    for pattern, peaks in GPU_PEAK_FLOPS_PER_S:
        if re.search(rf"(?<![A-Za-z0-9]){pattern}(?![A-Za-z0-9])", name):
            return peaks[dtype_key]
    warnings.warn(f"no peak FLOP/s known for GPU {name!r}: MFU will not be logged "
                  "(fix: add its peaks to GPU_PEAK_FLOPS_PER_S in scaling/hardware.py)")
    return None
