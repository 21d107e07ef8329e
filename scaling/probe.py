"""A quick throughput probe: a few real training steps of one model shape, for the dry-run time estimates."""

from __future__ import annotations

import time

import torch

from scaling.config import TrainConfig
from scaling.hardware import keep_freed_memory, resolve_device
from scaling.model import GPT
from scaling.optim import build_optimizer


def tokens_per_second(cfg: TrainConfig, steps: int = 3) -> float:
    """Training tokens/s of ``cfg``'s model at its micro-batch on this process's threads (random tokens)."""
    keep_freed_memory()  # as the trainer does, so the estimate matches the runs
    device = resolve_device(cfg.run)
    model = GPT(cfg.model).to(device)
    optimizer = build_optimizer(model, cfg.optim, device)
    batch = torch.randint(0, cfg.model.vocab_size, (cfg.budget.micro_batch_size, cfg.model.seq_len + 1), device=device)

    def step() -> None:
        model(batch[:, :-1], batch[:, 1:]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: first-call allocations and kernel selection
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch[:, :-1].numel() / (time.perf_counter() - start)
