"""One training run: config in, self-describing run directory out.

Run directory (the contract the sweep and the fitter read):

* ``config.yaml``   the fully resolved config (re-run: ``python train.py --config-path DIR --config-name config``)
* ``metrics.jsonl`` one JSON object per train-log or eval event
* ``summary.json``  written atomically and last: its presence means the run is finished
* ``hf/``           the model and tokenizer in transformers format
* ``train.log``, ``checkpoints/`` and, when tracking is on, ``wandb/``
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import platform
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from scaling import checkpoint, flops
from scaling.config import TrainConfig, run_id, to_dict
from scaling.data import BatchSampler, DataError, eval_sequences, prepare
from scaling.errors import UserError
from scaling.hardware import (autocast, autocast_dtype, configure_tf32, keep_freed_memory, peak_flops_per_s,
                              resolve_device, resolve_threads)
from scaling.io import atomic_write_json, atomic_write_text, read_json
from scaling.model import GPT
from scaling.optim import build_optimizer, lr_at
from scaling.tracking import MetricsLog, WandbMirror

log = logging.getLogger(__name__)

SUMMARY_FORMAT = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class RunBusy(Exception):
    """Another process is training this run right now (its lock is held)."""


class OutOfMemory(UserError, RuntimeError):
    pass


class SummaryCorrupt(UserError, RuntimeError):
    pass


class Interrupted(Exception):
    """Raised after a stop signal, once the checkpoint is written; the run resumes when started again."""


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("torch", "transformers", "datasets", "tokenizers", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, check=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


class _StopFlag:
    """Turns SIGTERM / SIGINT / SIGUSR1 (Slurm's warning before the time limit) into a flag checked per step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


@torch.no_grad()
def evaluate(model: GPT, sequences: torch.Tensor, micro_batch_size: int, device: torch.device,
             dtype: torch.dtype | None) -> float:
    model.eval()
    total = 0.0
    for i in range(0, len(sequences), micro_batch_size):
        chunk = sequences[i : i + micro_batch_size].to(device)
        with autocast(device, dtype):
            total += model(chunk[:, :-1], chunk[:, 1:]).item() * len(chunk)
    model.train()
    return total / len(sequences)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               micro_batches: list[torch.Tensor], device: torch.device, dtype: torch.dtype | None,
               grad_clip: float) -> tuple[float, float]:
    """One optimizer step over ``micro_batches`` (gradient accumulation); returns (mean loss, gradient norm)."""
    step_loss = 0.0
    for batch in micro_batches:
        with autocast(device, dtype):
            loss = model(batch[:, :-1], batch[:, 1:])
        scaler.scale(loss / len(micro_batches)).backward()
        step_loss += loss.item() / len(micro_batches)
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return step_loss, grad_norm.item()


def train(cfg: TrainConfig, resolved_yaml: str) -> Path:
    """Train (or resume, or skip if finished) the run described by ``cfg``; return its directory."""
    rid = run_id(cfg)
    run_dir = Path(cfg.run.out_dir) / rid
    if (run_dir / "summary.json").exists():
        try:
            read_json(run_dir / "summary.json")
        except ValueError:
            raise SummaryCorrupt(f"{run_dir / 'summary.json'} is corrupt; delete it to re-run the point") from None
        log.info("run %s is already finished: %s", rid, run_dir)
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    # One process per run: the lock is the kernel's (flock), so it is released when its holder dies, however it dies.
    lock = FileLock(str(run_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunBusy(f"run {rid} is being trained by another process ({run_dir})") from None
    file_handler = logging.FileHandler(run_dir / "train.log")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(file_handler)
    try:
        return _train(cfg, rid, run_dir, resolved_yaml)
    finally:
        logging.getLogger().removeHandler(file_handler)
        file_handler.close()
        lock.release()


def _train(cfg: TrainConfig, rid: str, run_dir: Path, resolved_yaml: str) -> Path:
    start_time = time.time()
    torch.set_num_threads(resolve_threads(cfg.run))
    keep_freed_memory()
    device = resolve_device(cfg.run)
    dtype = autocast_dtype(cfg.precision, device)
    configure_tf32(cfg.precision, device)

    data = prepare(cfg.data)
    if data.vocab_size > cfg.model.vocab_size:
        raise DataError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the tokenizer's "
                        f"{data.vocab_size} tokens (fix: set model.vocab_size >= {data.vocab_size})")
    atomic_write_text(run_dir / "config.yaml", resolved_yaml)

    torch.manual_seed(cfg.seed)
    model = GPT(cfg.model).to(device)
    optimizer = build_optimizer(model, cfg.optim, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    step_model = torch.compile(model) if cfg.run.compile else model

    sampler = BatchSampler(data.train, cfg.model.seq_len, cfg.seed)
    eval_seqs = torch.from_numpy(eval_sequences(data.val, cfg.model.seq_len, cfg.eval.tokens))
    num_steps, accum, mb = cfg.num_steps, cfg.grad_accum_steps, cfg.budget.micro_batch_size
    needed = num_steps * accum * mb
    if needed > sampler.num_sequences:
        message = (f"budget.tokens={cfg.budget.tokens} needs {needed * cfg.model.seq_len} training tokens but the "
                   f"training split has {sampler.num_sequences * cfg.model.seq_len}: "
                   f"{sampler.repeated_tokens(needed)} tokens will be repeated")
        if cfg.data.on_repeat == "error":
            raise DataError(f"{message} (fix: lower budget.tokens, use more data, or data.on_repeat=warn)")
        log.warning("!!! %s !!!", message)

    fpt = flops.all_flops_per_token(cfg.model)
    params = flops.count_params(cfg.model)
    peak = peak_flops_per_s(device, dtype, cfg.precision.tf32, cfg.run.cpu_peak_flops_per_s)
    tokens_per_step = accum * mb * cfg.model.seq_len

    step, elapsed_before = 0, 0.0
    ckpt = checkpoint.latest(run_dir)
    if ckpt is not None:
        state = checkpoint.load(ckpt, rid)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        random.setstate((state["rng_python"][0], tuple(state["rng_python"][1]), state["rng_python"][2]))
        np_position, np_has_gauss, np_gauss = state["rng_numpy"][1:]
        np.random.set_state(("MT19937", state["rng_numpy"][0].numpy().astype(np.uint32), int(np_position),
                             int(np_has_gauss), float(np_gauss)))
        elapsed_before = float(state["wallclock_s"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        step = int(state["step"])
        log.info("resuming run %s from %s (step %d of %d)", rid, ckpt.name, step, num_steps)
    metrics = MetricsLog(run_dir / "metrics.jsonl", resume_after_step=step if ckpt is not None else None)
    tracker = WandbMirror(cfg.tracking, run_dir, rid, to_dict(cfg))

    def counters(at_step: int) -> dict[str, Any]:
        tokens = at_step * tokens_per_step
        return {"step": at_step, "tokens": tokens, **{f"flops_{c}": tokens * f for c, f in fpt.items()}}

    def save_checkpoint() -> None:
        np_state = np.random.get_state()
        state = {"run_id": rid, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scaler": scaler.state_dict(), "rng_cpu": torch.get_rng_state(), "rng_python": random.getstate(),
                 "rng_numpy": [torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
                 "wallclock_s": elapsed_before + time.time() - start_time,
                 "tokens": step * tokens_per_step, "flops": {c: f * step * tokens_per_step for c, f in fpt.items()}}
        if device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(device)
        checkpoint.save(run_dir, step, state, cfg.checkpoint.keep_last)

    log.info("run %s: %d steps of %d tokens (%d x %d x %d), %s params non-embedding, device %s, %s",
             rid, num_steps, tokens_per_step, accum, mb, cfg.model.seq_len, f"{params.non_embedding:,}", device,
             cfg.precision.dtype)
    progress = _progress_bar(cfg.run.progress, num_steps, step)
    stop = _StopFlag()
    status, val_losses, last_good_step, best_loss = "finished", [], step, math.inf
    last_checkpoint_time = time.time()
    window_start, window_tokens = time.perf_counter(), 0
    try:
        while step < num_steps:
            lr = lr_at(step, num_steps, cfg.optim)
            for group in optimizer.param_groups:
                group["lr"] = lr
            first = step * accum * mb
            micro_batches = [torch.from_numpy(sampler.batch(first + i * mb, mb)).to(device, non_blocking=True)
                             for i in range(accum)]
            try:
                step_loss, grad_norm = train_step(step_model, optimizer, scaler, micro_batches, device, dtype,
                                                  cfg.optim.grad_clip)
            except torch.OutOfMemoryError:
                raise OutOfMemory(f"out of {device.type} memory at budget.micro_batch_size={mb} (fix: "
                                  f"budget.micro_batch_size={max(1, mb // 2)}; gradient accumulation keeps "
                                  f"budget.batch_tokens={cfg.budget.batch_tokens})") from None
            step += 1
            window_tokens += tokens_per_step

            spike = cfg.run.divergence_factor is not None and step_loss > cfg.run.divergence_factor * best_loss
            if not math.isfinite(step_loss) or spike:
                status = "diverged"
                log.error("loss %s at step %d%s: run marked diverged (last good step %d)", step_loss, step,
                          f" is over {cfg.run.divergence_factor}x the best {best_loss:.4f}" if spike else "",
                          last_good_step)
                break
            last_good_step, best_loss = step, min(best_loss, step_loss)
            if step % cfg.run.log_interval_steps == 0 or step == num_steps:
                elapsed = time.perf_counter() - window_start
                tokens_per_s = window_tokens / elapsed
                event = {"event": "train", **counters(step), "loss": step_loss, "lr": lr, "grad_norm": grad_norm,
                         "tokens_per_s": tokens_per_s,
                         "mfu": tokens_per_s * fpt["6n_attention"] / peak if peak else None}
                metrics.write(event)
                tracker.log(event)
                window_start, window_tokens = time.perf_counter(), 0
            if (cfg.eval.interval_steps and step % cfg.eval.interval_steps == 0) or step == num_steps:
                val_loss = evaluate(model, eval_seqs, mb, device, dtype)
                val_losses.append(val_loss)
                event = {"event": "eval", **counters(step), "val_loss": val_loss}
                metrics.write(event)
                tracker.log(event)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{step_loss:.3f}", val=f"{val_losses[-1]:.3f}" if val_losses else "-")
            if stop.signum is not None:
                save_checkpoint()
                raise Interrupted(f"stopped by signal {stop.signum} at step {step}; run again to resume")
            due_by_steps = cfg.checkpoint.interval_steps and step % cfg.checkpoint.interval_steps == 0
            due_by_time = (cfg.checkpoint.interval_minutes
                           and time.time() - last_checkpoint_time >= 60 * cfg.checkpoint.interval_minutes)
            if (due_by_steps or due_by_time) and step < num_steps:
                save_checkpoint()
                last_checkpoint_time = time.time()
    finally:
        stop.restore()
        metrics.close()
        if progress is not None:
            progress.close()

    if cfg.run.export_hf and status == "finished":
        from scaling.export import save_transformers  # transformers takes seconds to import: only when exporting

        save_transformers(model, data.tokenizer_file, data.eos_token, run_dir / "hf")
    summary = {
        "format": SUMMARY_FORMAT, "run_id": rid, "status": status,
        "final_val_loss": val_losses[-1] if val_losses else None,
        "min_val_loss": min(val_losses) if val_losses else None,
        "steps": step, "last_good_step": last_good_step, "num_steps_planned": num_steps,
        "tokens": step * tokens_per_step, "budget_tokens": cfg.budget.tokens,
        "tokens_repeated": sampler.repeated_tokens(step * accum * mb),
        "params": params.as_dict(),
        "flops_per_token": fpt, "flops": {c: f * step * tokens_per_step for c, f in fpt.items()},
        "wallclock_s": elapsed_before + time.time() - start_time,
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "dtype": cfg.precision.dtype, "num_threads": torch.get_num_threads(),
        "versions": package_versions(), "git_sha": git_sha(),
        "model": {"arch": cfg.model.arch, "num_layers": cfg.model.num_layers, "d_model": cfg.model.d_model,
                  "num_heads": cfg.model.num_heads, "seq_len": cfg.model.seq_len},
        "seed": cfg.seed,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    if status == "finished":
        checkpoint.remove_all(run_dir)  # the finished model lives in hf/; a finished run never resumes
    tracker.finish(summary)
    log.info("run %s %s: val loss %s -> %s", rid, status, summary["final_val_loss"], run_dir)
    return run_dir


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    # Redraw at most every 0.5 s on a terminal, every 10 s into a log file.
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 10.0)
