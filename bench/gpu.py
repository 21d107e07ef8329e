"""GPU benchmarks: a ~100M-parameter model in bf16 (tokens/s, MFU; eager and torch.compile, SDPA flash path),
and packing tiny grid points several per GPU vs one at a time (points/hour)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from scaling.config import ModelConfig, OptimConfig
from scaling.flops import flops_per_token
from scaling.hardware import gpu_peak_flops_per_s
from scaling.model import GPT
from scaling.optim import build_optimizer
from scaling.trainer import train_step

ROOT = Path(__file__).resolve().parents[1]
OPTIM = OptimConfig(lr=6e-4, min_lr_ratio=0.1, schedule="cosine", warmup_steps=0, decay_fraction=0.2,
                    decay_shape="linear",
                    weight_decay=0.1, beta1=0.9, beta2=0.95, eps=1e-8, grad_clip=1.0)


def big_model(compile_model: bool, steps: int = 200, micro_batch: int = 32) -> dict:
    cfg = ModelConfig(arch="llama", num_layers=12, d_model=768, num_heads=12, d_ff=None, ffn_ratio=8 / 3,
                      seq_len=1024, vocab_size=32768, tie_embeddings=False, init_std=0.02, norm_eps=1e-5,
                      rope_theta=1e4, mup_base_width=None)
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    model = GPT(cfg).to(device)
    optimizer = build_optimizer(model, OPTIM, device)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    step_model = torch.compile(model) if compile_model else model
    batch = torch.randint(0, cfg.vocab_size, (micro_batch, cfg.seq_len + 1), device=device)
    for _ in range(10):  # warm-up and compilation
        train_step(step_model, optimizer, scaler, [batch], device, torch.bfloat16, 1.0)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(step_model, optimizer, scaler, [batch], device, torch.bfloat16, 1.0)
    torch.cuda.synchronize()
    tokens_per_s = steps * micro_batch * cfg.seq_len / (time.perf_counter() - start)
    peak = gpu_peak_flops_per_s(torch.cuda.get_device_name(device), "bf16")
    fpt = flops_per_token(cfg, "6n_attention")
    return {"compile": compile_model, "params_non_embedding": sum(p.numel() for p in model.blocks.parameters()),
            "tokens_per_s": tokens_per_s, "mfu": tokens_per_s * fpt / peak if peak else None,
            "device": torch.cuda.get_device_name(device)}


# Packing points: long enough (about 20 s of training each on an H100 in bf16) that the GPU's work, not process
# start-up (~5 s), dominates; the same 8 points and the same 4 workers in both layouts.
PACK_POINTS = ["grid=tiny", "grid.seeds=[0,1,2,3]", "grid.sizes=[{name: null, num_layers: 4, d_model: 256, "
               "num_heads: 4}]", "grid.budgets_tokens=[20971520,41943040]", "budget.batch_tokens=65536",
               "budget.micro_batch_size=64", "model.seq_len=1024", "eval.tokens=65536", "eval.interval_steps=0"]
PACK_WORKERS = 4


def packing(points_per_gpu: int) -> dict:
    """Points/hour with 4 workers: ``points_per_gpu`` of them share each GPU (1: only as many workers as GPUs
    run at once, the launcher caps the rest)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(ROOT / "sweep.py"), f"sweep.out_dir={tmp}", "sweep.name=pack",
                               *PACK_POINTS, "sweep.fit=false", "precision=bf16", "run.device=cuda",
                               f"launcher.workers={PACK_WORKERS}", f"launcher.points_per_gpu={points_per_gpu}"],
                              cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
        seconds = time.perf_counter() - start
        summaries = [json.loads(p.read_text()) for p in Path(tmp).glob("pack/runs/*/summary.json")]
        if done.returncode != 0:
            raise RuntimeError(f"sweep exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return {"points_per_gpu": points_per_gpu, "workers": PACK_WORKERS, "points": len(summaries),
            "seconds": seconds, "points_per_hour": 3600 * len(summaries) / seconds,
            "training_s_per_point": sum(s["wallclock_s"] for s in summaries) / max(1, len(summaries))}


def main(out: Path) -> None:
    """Each measurement is written to ``out`` as soon as it is taken; one that fails records its error and the
    others still run."""
    results: dict = {"device": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count()}
    steps = {"eager": lambda: big_model(False), "compiled": lambda: big_model(True),
             "packing_1": lambda: packing(1), "packing_4": lambda: packing(4)}
    for name, measure in steps.items():
        try:
            results[name] = measure()
        except Exception as e:  # a benchmark that fails must not take the others' figures with it
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        if all("points_per_hour" in results.get(k, {}) for k in ("packing_1", "packing_4")):
            results["packing_ratio"] = results["packing_4"]["points_per_hour"] / results["packing_1"]["points_per_hour"]
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"{name}: {json.dumps(results[name])}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
