"""One training run: config in, self-describing run directory out.

Run directory (the contract the sweep and the fitter read):

* ``config.yaml``   the fully resolved config (re-run: ``python -m scaling.train --config-path DIR
                    --config-name config``)
* ``overrides.yaml`` the command-line overrides the run was started with (like Hydra's own ``overrides.yaml``)
* ``metrics.jsonl`` one JSON object per train-log or eval event
* ``summary.json``  written atomically and last: its presence means the run is finished
* ``hf/``           the model and tokenizer in transformers format
* ``train.log``, ``checkpoints/`` and, when tracking is on, ``wandb/``
* ``branch_points/`` the states kept for cooldown branches (``checkpoint.branch_steps``), kept after the run ends
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import math
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from filelock import FileLock, Timeout

from scaling import checkpoint, distributed, flops
from scaling.config import TrainConfig, run_id, to_dict
from scaling.data import BatchSampler, DataError, EvalSet, TokenData, eval_sequences, prepare
from scaling.errors import UserError
from scaling.hardware import (autocast, autocast_dtype, configure_tf32, keep_freed_memory, peak_flops_per_s,
                              resolve_device, resolve_threads)
from scaling.io import atomic_write_json, atomic_write_text
from scaling.model import GPT
from scaling.optim import build_optimizer, lr_at, schedule_cut_short
from scaling.summary import SUMMARY_FORMAT, read_summary
from scaling.sweepdir import branch_point, frozen_yaml
from scaling.tracking import MetricsLog, WandbMirror

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class RunBusy(Exception):
    """Another process is training this run right now (its lock is held)."""


class OutOfMemory(UserError, RuntimeError):
    pass


class Interrupted(Exception):
    """Raised after a stop signal, once the checkpoint is written; the run resumes when started again."""


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("scaling", "torch", "transformers", "datasets", "tokenizers", "numpy"):
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
def evaluate(model: GPT, eval_set: EvalSet, micro_batch_size: int, device: torch.device,
             dtype: torch.dtype | None) -> dict[str, Any]:
    """Mean held-out loss, its standard error over sequences, and the mean loss of each corpus source."""
    model.eval()
    sequences = torch.from_numpy(eval_set.sequences)
    per_sequence = []
    for i in range(0, len(sequences), micro_batch_size):
        chunk = sequences[i : i + micro_batch_size].to(device)
        with autocast(device, dtype):
            logits = model(chunk[:, :-1])
        token_loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), chunk[:, 1:], reduction="none")
        per_sequence.append(token_loss.mean(1).cpu())
    model.train()
    losses = torch.cat(per_sequence).double().numpy()
    se = float(losses.std(ddof=1) / math.sqrt(len(losses))) if len(losses) > 1 else None
    by_source = {str(name): float(losses[eval_set.sources == name].mean()) for name in np.unique(eval_set.sources)}
    return {"val_loss": float(losses.mean()), "val_loss_se": se, "val_loss_by_source": by_source}


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               micro_batches: list[torch.Tensor], device: torch.device, dtype: torch.dtype | None,
               grad_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over ``micro_batches`` (gradient accumulation); returns (mean loss, gradient norm) as
    tensors on the device: reading them waits for the device, so the loop reads them only when it logs."""
    step_loss = torch.zeros((), device=device)
    for i, batch in enumerate(micro_batches):
        with distributed.gradient_sync(model, sync=i == len(micro_batches) - 1), autocast(device, dtype):
            loss = model(batch[:, :-1], batch[:, 1:])
            # Each rank averages its own micro-batches; DDP and FSDP2 average over ranks: the global mean.
            scaler.scale(loss / len(micro_batches)).backward()
        step_loss += loss.detach().float() / len(micro_batches)
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return step_loss, grad_norm


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _finished(run_dir: Path) -> bool:
    """Whether the run has a valid summary (a file that is not one is an error naming it, never "finished")."""
    if not (run_dir / "summary.json").exists():
        return False
    read_summary(run_dir / "summary.json")
    return True


def _check_data(cfg: TrainConfig, data: TokenData) -> None:
    """The data mistakes that can be known before training: found before the run directory is made."""
    if data.vocab_size > cfg.model.vocab_size:
        raise DataError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the tokenizer's "
                        f"{data.vocab_size} tokens (fix: set model.vocab_size >= {data.vocab_size})")
    sampler = BatchSampler(data.train, cfg.model.seq_len, cfg.seed)
    needed = cfg.num_steps * cfg.grad_accum_steps * cfg.budget.micro_batch_size
    if needed > sampler.num_sequences:
        message = (f"budget.tokens={cfg.budget.tokens} needs {needed * cfg.model.seq_len} training tokens but the "
                   f"training split has {sampler.num_sequences * cfg.model.seq_len}: "
                   f"{sampler.repeated_tokens(needed)} tokens will be repeated")
        if cfg.data.on_repeat == "error":
            raise DataError(f"{message} (fix: lower budget.tokens, use more data, or data.on_repeat=warn)")
        log.warning("!!! %s !!!", message)


def train(cfg: TrainConfig, resolved: dict[str, Any], overrides: list[str] = ()) -> Path:
    """Train (or resume, or skip if finished) the run described by ``cfg``, whose resolved mapping ``resolved`` is
    frozen into the run directory with the command-line ``overrides`` that produced it; return that directory."""
    rid = run_id(cfg)
    run_dir = Path(cfg.run.out_dir) / rid
    resolved_yaml = frozen_yaml(resolved, run_dir)
    ranks = distributed.from_environment()
    if _finished(run_dir):
        log.info("run %s is already finished: %s", rid, run_dir)
        return run_dir
    distributed.check(cfg, ranks)
    data = prepare(cfg.data)
    _check_data(cfg, data)
    if not ranks.main:  # rank 0 owns the run directory, its lock and its logs; the others only train
        return _train(cfg, rid, run_dir, resolved_yaml, data, ranks)
    run_dir.mkdir(parents=True, exist_ok=True)
    # One process per run: the lock is the kernel's (flock), so it is released when its holder dies, however it dies.
    lock = FileLock(str(run_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunBusy(f"run {rid} is being trained by another process ({run_dir})") from None
    try:
        if _finished(run_dir):  # another process finished it between the first look and the lock
            log.info("run %s was finished by another process: %s", rid, run_dir)
            return run_dir
        atomic_write_text(run_dir / "overrides.yaml", yaml.safe_dump(list(overrides)))
        file_handler = logging.FileHandler(run_dir / "train.log")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(file_handler)
        try:
            return _train(cfg, rid, run_dir, resolved_yaml, data, ranks)
        finally:
            logging.getLogger().removeHandler(file_handler)
            file_handler.close()
    finally:
        lock.release()


def _train(cfg: TrainConfig, rid: str, run_dir: Path, resolved_yaml: str, data: TokenData,
           ranks: distributed.Ranks) -> Path:
    device = distributed.device_of(ranks, resolve_device(cfg.run))
    distributed.start(ranks, device)
    run_directory = _train_ranks(cfg, rid, run_dir, resolved_yaml, data, ranks, device)
    distributed.stop(ranks)  # a failing or stopped rank leaves without waiting for the others: its exit ends them
    return run_directory


def _train_ranks(cfg: TrainConfig, rid: str, run_dir: Path, resolved_yaml: str, data: TokenData,
                 ranks: distributed.Ranks, device: torch.device) -> Path:
    start_time = time.time()
    torch.set_num_threads(resolve_threads(cfg.run))
    keep_freed_memory()
    dtype = autocast_dtype(cfg.precision, device)
    configure_tf32(cfg.precision, device)
    if ranks.main:
        atomic_write_text(run_dir / "config.yaml", resolved_yaml)

    torch.manual_seed(cfg.seed)  # every rank draws the same initial model
    model = GPT(cfg.model).to(device)
    parallel = distributed.wrap(model, cfg.run.parallel, ranks, device, dtype)
    optimizer = build_optimizer(model, cfg.optim, device, fused=not distributed.shards_model(cfg.run.parallel, ranks))
    cast = distributed.autocast_dtype(cfg.run.parallel, ranks, dtype)  # None where FSDP2's policy casts instead
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    step_model = torch.compile(parallel) if cfg.run.compile else parallel

    sampler = BatchSampler(data.train, cfg.model.seq_len, cfg.seed)
    eval_set = eval_sequences(data.val, cfg.model.seq_len, cfg.eval.tokens, data.val_sources)
    num_steps, accum, mb = cfg.num_steps, cfg.grad_accum_steps, cfg.budget.micro_batch_size
    mine = distributed.my_micro_batches(ranks, accum)

    fpt = flops.all_flops_per_token(cfg.model)
    params = flops.count_params(cfg.model)
    peak = peak_flops_per_s(device, dtype, cfg.precision.tf32, cfg.run.cpu_peak_flops_per_s)
    peak = peak * ranks.world if peak else peak  # tokens/s counts every rank's tokens: MFU is against all devices
    tokens_per_step = accum * mb * cfg.model.seq_len

    step, elapsed_before = 0, 0.0
    val_losses: list[float] = []
    last_eval: dict[str, Any] = {}
    best_loss, last_good_step = math.inf, 0
    ckpt = checkpoint.latest(run_dir)
    state = checkpoint.load(ckpt, rid) if ckpt is not None else None  # every rank reads the full state
    if state is None and cfg.branch.trunk is not None:
        ckpt = _trunk_checkpoint(cfg)
        state = checkpoint.load(ckpt, cfg.branch.trunk)
        state["wallclock_s"] = 0.0  # the branch's own time; the trunk's part is in the trunk's summary
        log.info("branch of run %s: starting from its step %d", cfg.branch.trunk, cfg.branch.step)
    if state is not None:
        shards = checkpoint.shards_of(ckpt, state)
        if shards is None:
            distributed.load_full_state(parallel, optimizer, state["model"], state["optimizer"])
        else:
            distributed.load_shards(parallel, optimizer, shards)
        scaler.load_state_dict(state["scaler"])
        checkpoint.restore_rng(state, device, ranks.rank)
        elapsed_before = float(state["wallclock_s"])
        # What the summary and the divergence guard know of the steps before the checkpoint.
        val_losses = [float(v) for v in state["val_losses"]]
        last_eval = {"val_loss": state["last_val_loss"], "val_loss_se": state["last_val_loss_se"],
                     "val_loss_by_source": dict(zip(state["last_val_sources"], state["last_val_source_losses"]))}
        best_loss, last_good_step = float(state["best_loss"]), int(state["last_good_step"])
        step = int(state["step"])
        log.info("resuming run %s from %s (step %d of %d)", rid, ckpt, step, num_steps)
    resumed_at = step if state is not None else None
    del state  # the model and optimizer hold their own copies
    metrics = MetricsLog(run_dir / "metrics.jsonl", resume_after_step=resumed_at) if ranks.main else None
    position = {"size": f"{cfg.model.num_layers}x{cfg.model.d_model}", "params_total": params.total,
                "tokens": cfg.budget.tokens, "tokens_per_param": round(cfg.budget.tokens / params.total, 2)}
    tracker = WandbMirror(cfg.tracking if ranks.main else dataclasses.replace(cfg.tracking, mode="off"), run_dir,
                          rid, to_dict(cfg), position)

    def record(event: dict[str, Any]) -> None:
        if metrics is not None:
            metrics.write(event)
        tracker.log(event)

    def counters(at_step: int) -> dict[str, Any]:
        tokens = at_step * tokens_per_step
        return {"step": at_step, "tokens": tokens, **{f"flops_{c}": tokens * f for c, f in fpt.items()}}

    def checkpoint_state(whole: bool) -> dict[str, Any] | None:
        """The resumable state, on rank 0 (None on the others), with the model and optimizer gathered when
        ``whole``; collective: every rank calls it."""
        weights = dict(zip(("model", "optimizer"), distributed.full_state(parallel, optimizer))) if whole else {}
        rng = distributed.gather_objects(checkpoint.rng_state(device), ranks)
        if not ranks.main:
            return None
        return {"run_id": rid, "step": step, **weights, "scaler": scaler.state_dict(), **checkpoint.rng_states(rng),
                 "wallclock_s": elapsed_before + time.time() - start_time,
                 "tokens": step * tokens_per_step, "flops": {c: f * step * tokens_per_step for c, f in fpt.items()},
                 "val_losses": list(val_losses), "best_loss": best_loss, "last_good_step": last_good_step,
                 "last_val_loss": last_eval.get("val_loss"), "last_val_loss_se": last_eval.get("val_loss_se"),
                 "last_val_sources": list((last_eval.get("val_loss_by_source") or {}).keys()),
                 "last_val_source_losses": list((last_eval.get("val_loss_by_source") or {}).values())}

    def save_checkpoint() -> None:
        sharded = distributed.shards_model(cfg.run.parallel, ranks)
        if sharded:  # every rank writes its shards first; the file that marks the checkpoint complete comes last
            distributed.save_shards(parallel, optimizer, checkpoint.shard_dir(run_dir, step))
        state = checkpoint_state(whole=not sharded)
        if state is not None:
            shards = {"shards": checkpoint.shard_dir(run_dir, step).name} if sharded else {}
            checkpoint.save(run_dir, step, {**state, **shards}, cfg.checkpoint.keep_last)

    log.info("run %s: %d steps of %d tokens (%d x %d x %d), %s params non-embedding, device %s, %s",
             rid, num_steps, tokens_per_step, accum, mb, cfg.model.seq_len, f"{params.non_embedding:,}", device,
             cfg.precision.dtype)
    if (cut_short := schedule_cut_short(cfg.optim, num_steps)) is not None:
        log.warning("!!! %s (fix: lower optim.warmup_steps or raise budget.tokens) !!!", cut_short)
    if ranks.world > 1:
        log.info("%d ranks (%s), %d micro-batches each per step", ranks.world, cfg.run.parallel, len(mine))
    progress = _progress_bar(cfg.run.progress and ranks.main, num_steps, step)
    stop = _StopFlag()
    status = "finished"
    last_good_step = max(last_good_step, step)
    last_checkpoint_time = time.time()
    # The throughput window counts training steps only: evals, checkpoint writes and the first (compiling) step of
    # a compiled model are timed and left out, so tokens/s and MFU describe training.
    window_start, window_tokens, window_excluded_s = time.perf_counter(), 0, 0.0
    first_step_of_process = True
    try:
        while step < num_steps:
            lr = lr_at(step, num_steps, cfg.optim)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            first = step * accum * mb
            micro_batches = [torch.from_numpy(sampler.batch(first + i * mb, mb)).to(device, non_blocking=True)
                             for i in mine]
            try:
                loss_t, grad_norm_t = train_step(step_model, optimizer, scaler, micro_batches, device, cast,
                                                 cfg.optim.grad_clip)
            except torch.OutOfMemoryError:
                raise OutOfMemory(f"out of {device.type} memory at budget.micro_batch_size={mb} (fix: "
                                  f"budget.micro_batch_size={max(1, mb // 2)}; gradient accumulation keeps "
                                  f"budget.batch_tokens={cfg.budget.batch_tokens})") from None
            step += 1
            window_tokens += tokens_per_step
            if first_step_of_process and cfg.run.compile:
                _synchronize(device)
                window_start, window_tokens = time.perf_counter(), 0
            first_step_of_process = False

            if step % cfg.run.log_interval_steps == 0 or step == num_steps:
                # The only per-interval host sync; the loss is the mean over every rank's micro-batches.
                step_loss, grad_norm = float(distributed.mean(loss_t, ranks)), float(_local(grad_norm_t))
                # The divergence guard acts on the logged losses: NaN/inf, or a spike over the best logged so far.
                spike = cfg.run.divergence_factor is not None and step_loss > cfg.run.divergence_factor * best_loss
                if not math.isfinite(step_loss) or spike:
                    status = "diverged"
                    log.error("loss %s at step %d%s: run marked diverged (last good step %d)", step_loss, step,
                              f" is over {cfg.run.divergence_factor}x the best {best_loss:.4f}" if spike else "",
                              last_good_step)
                    break
                last_good_step, best_loss = step, min(best_loss, step_loss)
                elapsed = time.perf_counter() - window_start - window_excluded_s
                tokens_per_s = window_tokens / elapsed if window_tokens and elapsed > 0 else None
                event = {"event": "train", **counters(step), "loss": step_loss, "lr": lr, "grad_norm": grad_norm,
                         "tokens_per_s": tokens_per_s,
                         "mfu": tokens_per_s * fpt["6n_attention"] / peak if peak and tokens_per_s else None}
                record(event)
                if progress is not None:
                    progress.set_postfix(loss=f"{step_loss:.3f}", val=f"{val_losses[-1]:.3f}" if val_losses else "-")
                window_start, window_tokens, window_excluded_s = time.perf_counter(), 0, 0.0
            if (cfg.eval.interval_steps and step % cfg.eval.interval_steps == 0) or step == num_steps:
                _synchronize(device)
                eval_start = time.perf_counter()
                evaluation = evaluate(model, eval_set, mb, device, cast)
                window_excluded_s += time.perf_counter() - eval_start
                val_losses.append(evaluation["val_loss"])
                last_eval = evaluation
                event = {"event": "eval", **counters(step), **evaluation}
                record(event)
            if progress is not None:
                progress.update(1)
            if step in cfg.checkpoint.branch_steps:  # before a stop can end the run at this very step
                _synchronize(device)
                checkpoint_start = time.perf_counter()
                state = checkpoint_state(whole=True)
                if state is not None:
                    checkpoint.save_branch_point(run_dir, step, state)
                del state
                window_excluded_s += time.perf_counter() - checkpoint_start
            if distributed.any_rank(stop.signum is not None, ranks, device):
                save_checkpoint()
                raise Interrupted(f"stopped by signal {stop.signum} at step {step}; run again to resume")
            due_by_steps = cfg.checkpoint.interval_steps and step % cfg.checkpoint.interval_steps == 0
            due_by_time = (cfg.checkpoint.interval_minutes
                           and time.time() - last_checkpoint_time >= 60 * cfg.checkpoint.interval_minutes)
            if (due_by_steps or due_by_time) and step < num_steps:
                _synchronize(device)
                checkpoint_start = time.perf_counter()
                save_checkpoint()
                window_excluded_s += time.perf_counter() - checkpoint_start
                last_checkpoint_time = time.time()
    finally:
        if sys.exc_info()[1] is not None:  # failing or interrupted: nothing more to protect
            stop.restore()
        if metrics is not None:
            metrics.close()
        if progress is not None:
            progress.close()

    # The stop handlers stay until the summary is written: a signal during the export is noted, not fatal, and the
    # final step is checkpointed first, so even a kill there resumes at the end rather than at an earlier checkpoint.
    if cfg.run.export_hf and status == "finished":
        from scaling.export import save_transformers  # transformers takes seconds to import: only when exporting

        if resumed_at is None or step > resumed_at:
            save_checkpoint()
        exported = _whole_model(cfg, parallel, model, ranks)
        if ranks.main:
            save_transformers(exported, data.tokenizer_file, data.eos_token, run_dir / "hf")
    if not ranks.main:
        stop.restore()
        return run_dir
    summary = _summary(cfg, rid, status, step, last_good_step, val_losses, last_eval, len(eval_set.sequences),
                       sampler.repeated_tokens(step * accum * mb), elapsed_before + time.time() - start_time, device)
    atomic_write_json(run_dir / "summary.json", summary)
    stop.restore()
    if status == "finished":
        checkpoint.remove_all(run_dir)  # the finished model lives in hf/; a finished run never resumes
    tracker.finish(summary)
    log.info("run %s %s: val loss %s -> %s", rid, status, summary["final_val_loss"], run_dir)
    return run_dir


def _local(value: torch.Tensor) -> torch.Tensor:
    """A value FSDP2 returns as a DTensor (the gradient norm), as a plain tensor."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value


def _whole_model(cfg: TrainConfig, parallel: torch.nn.Module, model: GPT, ranks: distributed.Ranks) -> GPT:
    """The trained model with every weight on rank 0 (for the export): itself unless FSDP2 sharded it."""
    if not distributed.shards_model(cfg.run.parallel, ranks):
        return model
    state = distributed.full_model_state(parallel)
    whole = GPT(cfg.model)
    if ranks.main:
        whole.load_state_dict(state)
    return whole


BRANCH_POLL_S = 2.0


def _trunk_checkpoint(cfg: TrainConfig) -> Path:
    """The trunk's kept state a branch starts from; while the trunk is still training towards it, wait for it."""
    trunk_dir = Path(cfg.run.out_dir) / cfg.branch.trunk
    path = branch_point(trunk_dir, cfg.branch.step)
    waiting = False
    while not path.exists():
        if not _training(trunk_dir):
            raise checkpoint.CheckpointError(
                f"branch.trunk: run {cfg.branch.trunk} has no kept state at step {cfg.branch.step} ({path}) and is "
                "not training (fix: run the trunk first, with that step in its checkpoint.branch_steps; a sweep "
                "does both)")
        if not waiting:
            log.info("waiting for trunk %s to reach step %d", cfg.branch.trunk, cfg.branch.step)
            waiting = True
        time.sleep(BRANCH_POLL_S)
    return path


def _training(run_dir: Path) -> bool:
    """Whether a process holds ``run_dir``'s training lock right now."""
    if not (run_dir / ".lock").exists():
        return False
    lock = FileLock(str(run_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def _summary(cfg: TrainConfig, rid: str, status: str, step: int, last_good_step: int, val_losses: list[float],
             last_eval: dict[str, Any], eval_sequences: int, tokens_repeated: int, wallclock_s: float,
             device: torch.device) -> dict[str, Any]:
    """The run's summary.json (format: scaling.summary): losses, counts under every convention, where it ran."""
    tokens = step * cfg.grad_accum_steps * cfg.budget.micro_batch_size * cfg.model.seq_len
    fpt = flops.all_flops_per_token(cfg.model)
    return {
        "format": SUMMARY_FORMAT, "run_id": rid, "status": status,
        "final_val_loss": val_losses[-1] if val_losses else None,
        "min_val_loss": min(val_losses) if val_losses else None, "num_evals": len(val_losses),
        "final_val_loss_se": last_eval.get("val_loss_se"),
        "final_val_loss_by_source": last_eval.get("val_loss_by_source"),
        "eval_sequences": eval_sequences,
        "steps": step, "last_good_step": last_good_step, "num_steps_planned": cfg.num_steps,
        "tokens": tokens, "budget_tokens": cfg.budget.tokens, "tokens_repeated": tokens_repeated,
        "params": flops.count_params(cfg.model).as_dict(),
        "flops_per_token": fpt, "flops": {c: f * tokens for c, f in fpt.items()},
        "wallclock_s": wallclock_s,
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "dtype": cfg.precision.dtype, "num_threads": torch.get_num_threads(),
        "versions": package_versions(), "git_sha": git_sha(),
        "model": {"arch": cfg.model.arch, "num_layers": cfg.model.num_layers, "d_model": cfg.model.d_model,
                  "num_heads": cfg.model.num_heads, "seq_len": cfg.model.seq_len},
        "seed": cfg.seed,
        "branch": {"trunk": cfg.branch.trunk, "step": cfg.branch.step,
                   "tokens": cfg.branch.step * cfg.budget.batch_tokens} if cfg.branch.trunk is not None else None,
    }


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    # Redraw at most every 0.5 s on a terminal, every 10 s into a log file.
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 10.0)
