"""The CUDA path: bf16 autocast, fp16 with a working GradScaler, TF32, torch.compile, exact resume with the CUDA RNG,
MFU from the peak table, GPU slots, out-of-memory advice. Skipped without a GPU (`pytest -m cuda` on a GPU box)."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
import torch

from scaling.hardware import GPU_PEAK_FLOPS_PER_S, gpu_peak_flops_per_s
from scaling.trainer import OutOfMemory, train
from tests.conftest import make_config

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = ["run.device=cuda", "run.cpu_peak_flops_per_s=null"]


def events(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def known_gpu() -> bool:
    return gpu_peak_flops_per_s(torch.cuda.get_device_name(), "bf16") is not None


@pytest.mark.parametrize("precision", ["bf16", "fp16", "tf32"])
def test_tiny_run_on_cuda(tmp_path, precision):
    cfg, raw = make_config(tmp_path, [f"precision={precision}", *CUDA])
    run_dir = train(cfg, raw)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["device"].startswith("cuda")
    evals = [e for e in events(run_dir) if e["event"] == "eval"]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    train_events = [e for e in events(run_dir) if e["event"] == "train"]
    assert all((e["mfu"] is not None) == known_gpu() for e in train_events)
    # A tiny model cannot fill a GPU, but a peak from the wrong row of the table would show as > 100%.
    assert all(e["mfu"] is None or 0 < e["mfu"] < 1 for e in train_events)


def test_the_peak_table_knows_this_gpu():
    name = torch.cuda.get_device_name()
    assert known_gpu(), f"{name!r} is not in GPU_PEAK_FLOPS_PER_S ({[p for p, _ in GPU_PEAK_FLOPS_PER_S]})"


def test_fp16_grad_scaler_scales(tmp_path):
    from scaling.model import GPT
    from scaling.optim import build_optimizer
    from scaling.trainer import train_step

    cfg, _ = make_config(tmp_path, ["precision=fp16", *CUDA])
    device = torch.device("cuda")
    model = GPT(cfg.model).to(device)
    optimizer = build_optimizer(model, cfg.optim, device)
    scaler = torch.amp.GradScaler("cuda")
    batch = torch.randint(0, cfg.model.vocab_size, (4, cfg.model.seq_len + 1), device=device)
    loss, _ = train_step(model, optimizer, scaler, [batch], device, torch.float16, cfg.optim.grad_clip)
    assert scaler.is_enabled() and scaler.get_scale() > 1.0 and torch.isfinite(loss)


def test_compiled_run_on_cuda_learns(tmp_path):
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    cfg, raw = make_config(tmp_path, ["precision=bf16", "run.compile=true", *CUDA])
    run_dir = train(cfg, raw)
    evals = [e for e in events(run_dir) if e["event"] == "eval"]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]


def test_resume_on_cuda_is_exact(tmp_path):
    """A run stopped by SIGTERM mid-way and started again logs the same losses as one run straight through: the
    checkpoint holds the CUDA RNG state too."""
    from tests.test_reliability import RUN, comparable, start, wait_for_step

    args = [*RUN, *CUDA, "precision=bf16"]
    whole = start("train.py", f"run.out_dir={tmp_path / 'whole'}", *args)
    assert whole.wait() == 0, whole.communicate()
    proc = start("train.py", f"run.out_dir={tmp_path / 'parts'}", *args)
    run_dir = wait_for_step(tmp_path / "parts", 12, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait() == 3
    again = start("train.py", f"run.out_dir={tmp_path / 'parts'}", *args)
    assert again.wait() == 0, again.communicate()
    assert comparable(run_dir) == comparable(next((tmp_path / "whole").iterdir()))


def test_cuda_out_of_memory_names_the_micro_batch(tmp_path):
    # Sized from this device: one micro-batch of logits alone (vocab 32K, fp32) needs twice its memory.
    total = torch.cuda.get_device_properties(0).total_memory
    seq_len, vocab = 2048, 32768
    micro_batch = int(2 * total / (seq_len * vocab * 4)) + 1
    cfg, raw = make_config(tmp_path, [*CUDA, "model.vocab_size=32768", f"model.seq_len={seq_len}",
                                      f"budget.micro_batch_size={micro_batch}",
                                      f"budget.batch_tokens={micro_batch * seq_len}",
                                      f"budget.tokens={micro_batch * seq_len}", f"eval.tokens={seq_len}"])
    with pytest.raises(OutOfMemory, match=f"budget.micro_batch_size={max(1, micro_batch // 2)}"):
        train(cfg, raw)


def test_local_launcher_gives_each_worker_its_own_gpu(tmp_path):
    from scaling.launch import LocalLauncherConfig, workers_and_slots

    gpus = [str(i) for i in range(torch.cuda.device_count())]
    cfg = LocalLauncherConfig(kind="local", workers=None, threads_per_worker=1, points_per_gpu=1,
                              status_interval_s=30.0, preload=True)
    workers, slots = workers_and_slots(cfg, gpus, os.cpu_count() or 1)
    assert workers == len(gpus) and sorted(slots) == gpus
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    assert out.returncode == 0 and len(out.stdout.strip().splitlines()) >= len(gpus)
