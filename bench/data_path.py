"""Data path: loader time per step against step time, the token cache, and process start to first step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from scaling.cli import absolutize
from scaling.config import load_train_config
from scaling.data import BatchSampler, prepare
from scaling.model import GPT
from scaling.optim import build_optimizer
from scaling.trainer import train_step

ROOT = Path(__file__).resolve().parents[1]


def default_config():
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        raw = OmegaConf.to_container(compose(config_name="train"), resolve=True)
    raw.pop("hydra", None)
    absolutize(raw, "run.out_dir", "data.cache_dir")
    return load_train_config(raw)


def run(steps: int = 10) -> dict:
    torch.set_num_threads(1)
    cfg = default_config()
    prepare(cfg.data)  # builds the cache if no run has yet
    start = time.perf_counter()
    data = prepare(cfg.data)
    cached_prepare_s = time.perf_counter() - start
    sampler = BatchSampler(data.train, cfg.model.seq_len, cfg.seed)
    model = GPT(cfg.model)
    device = torch.device("cpu")
    optimizer = build_optimizer(model, cfg.optim, device)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    mb, accum = cfg.budget.micro_batch_size, cfg.grad_accum_steps
    load_s = step_s = 0.0
    for step in range(steps + 1):
        t0 = time.perf_counter()
        batches = [torch.from_numpy(sampler.batch((step * accum + i) * mb, mb)) for i in range(accum)]
        t1 = time.perf_counter()
        train_step(model, optimizer, scaler, batches, device, None, 1.0)
        t2 = time.perf_counter()
        if step:  # the first step pays one-off allocations
            load_s, step_s = load_s + t1 - t0, step_s + t2 - t1
    with tempfile.TemporaryDirectory() as tmp:
        begin = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), f"run.out_dir={tmp}", "run.progress=false",
                                 "run.log_interval_steps=1", "run.cpu_peak_flops_per_s=1e11"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "SCALING_CACHE_DIR": str(Path(cfg.data.cache_dir))})
        first_step_s = None
        while proc.poll() is None and first_step_s is None:
            # The trainer logs its plan ("... steps of ...") immediately before the first step.
            logs = list(Path(tmp).glob("*/train.log"))
            if logs and "steps of" in logs[0].read_text():
                first_step_s = time.perf_counter() - begin
            time.sleep(0.01)
        proc.kill()
        proc.wait()
    return {"loader_ms_per_step": 1000 * load_s / steps, "step_ms": 1000 * step_s / steps,
            "loader_fraction": load_s / step_s, "cached_prepare_s": cached_prepare_s,
            "start_to_first_step_s": first_step_s, "token_cache": str(data.directory),
            "token_caches_on_disk": len(list(Path(cfg.data.cache_dir).glob("tokens-*/meta.json"))),
            "note": "start-to-first-step: process start until the trainer begins step 1, token cache already built"}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
