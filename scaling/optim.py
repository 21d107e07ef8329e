"""AdamW with decay on matrices only, and learning-rate schedules as pure functions of the step."""

from __future__ import annotations

import math

import torch
from torch import nn

from scaling.config import OptimConfig
from scaling.model import GPT, is_hidden_matrix


def build_optimizer(model: GPT, cfg: OptimConfig, device: torch.device, fused: bool = True) -> torch.optim.AdamW:
    """Weight decay on weight matrices only: not on norms, biases or embeddings (embeddings are lookups whose
    rows see few gradient updates; decaying them mostly shrinks rare tokens).

    Each group carries ``lr_scale``, the factor on the schedule's rate: 1, except under μP for the matrices inside
    the blocks, whose Adam rate is lr / width_mult (Yang et al. 2022, Table 3: Adam's update is of order one per
    coordinate, so a fan_in-wide matrix needs a 1/fan_in rate); embeddings, the output layer, norms and biases
    keep lr. ``fused``: one kernel per step where the device has it (not for FSDP2's sharded parameters)."""
    hidden_scale = 1.0 / model.cfg.width_mult
    by_kind: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decayed = p.dim() >= 2 and "emb" not in name
        by_kind.setdefault((decayed, hidden_scale if is_hidden_matrix(name, p) else 1.0), []).append(p)
    groups = [{"params": params, "weight_decay": cfg.weight_decay if decayed else 0.0, "lr_scale": scale}
              for (decayed, scale), params in sorted(by_kind.items(), key=lambda kv: (not kv[0][0], kv[0][1]))]
    # The fused kernel exists for CUDA and CPU tensors in recent torch; it is one launch per step instead of many.
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                             fused=fused and device.type in ("cuda", "cpu"))


def schedule_cut_short(cfg: OptimConfig, num_steps: int) -> str | None:
    """Why a run of ``num_steps`` steps cannot follow ``cfg``'s schedule, or None. lr_at cuts a warmup longer than
    the run to end on its last step; a cosine warmup that ends there leaves no step to decay; a wsd warmup that runs
    past the decay's start jumps from the ramp onto the decay."""
    last = num_steps - 1
    if cfg.warmup_steps > last:
        return (f"optim.warmup_steps={cfg.warmup_steps} does not fit the run's {_steps(num_steps)}: the warmup is "
                f"cut to {_steps(last)}" + ("" if cfg.schedule == "constant" else " and the rate never decays"))
    if cfg.schedule == "cosine" and 0 < cfg.warmup_steps == last:
        return (f"optim.warmup_steps={cfg.warmup_steps} leaves none of the run's {num_steps} steps to the cosine "
                "decay: the rate ends at its peak")
    if cfg.schedule == "wsd" and cfg.warmup_steps > cfg.decay_start(num_steps):
        return (f"optim.warmup_steps={cfg.warmup_steps} runs past step {cfg.decay_start(num_steps)}, where the wsd "
                f"decay of this {num_steps}-step run starts: the rate jumps from the ramp onto the decay")
    return None


def _steps(n: int) -> str:
    return f"{n} step" + ("" if n == 1 else "s")


def lr_at(step: int, num_steps: int, cfg: OptimConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of a run of ``num_steps`` steps.

    * warmup: linear from lr/warmup_steps to lr over ``warmup_steps``;
    * ``cosine``: cosine from lr to min_lr_ratio·lr, ending exactly at the run's last step, so the cycle length
      equals the run's own budget (Hoffmann et al. 2022, §3 and App. B: a longer cycle overestimates the loss);
    * ``constant``: flat after warmup;
    * ``wsd``: flat, then a decay to the floor over the last ``decay_fraction`` of steps (warmup-stable-decay,
      Hu et al. 2024 "MiniCPM", §4), linear or 1−sqrt (Hägele et al. 2024, arXiv 2405.18392, §3). Until the decay
      starts the rate does not depend on the run's length, so a shorter run of the same config follows a longer
      one step for step up to its own decay: what a cooldown branch resumes from (scaling.grid, ``branched``).
    """
    peak, floor = cfg.lr, cfg.lr * cfg.min_lr_ratio
    warmup = min(cfg.warmup_steps, num_steps - 1)
    if step < warmup:
        return peak * (step + 1) / warmup
    if cfg.schedule == "constant":
        return peak
    if cfg.schedule == "cosine":
        span = max(1, num_steps - 1 - warmup)
        progress = min(1.0, (step - warmup) / span)
        return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))
    start = cfg.decay_start(num_steps)
    if step < start:
        return peak
    progress = (step - start + 1) / (num_steps - start)
    if cfg.decay_shape == "1-sqrt":
        return floor + (peak - floor) * (1 - math.sqrt(progress))
    return peak + (floor - peak) * progress
