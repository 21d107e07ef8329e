"""Resumable checkpoints: atomic, complete-marked, loaded with ``weights_only=True`` (no arbitrary pickle).

Layout under a run directory: ``checkpoints/step-000120.pt``, and ``branch_points/step-000096.pt`` for the states
kept after the run ends because cooldown branches start from them (``checkpoint.branch_steps``). A file only
appears under its final name after it was fully written and fsynced (see :func:`scaling.io.atomic_write`), so the
newest name is always a complete checkpoint; a crash mid-write leaves only a temporary file, which is ignored.

An FSDP2 run on several ranks keeps its model and optimizer state sharded: every rank writes its part to
``checkpoints/step-000120.dcp/`` (``torch.distributed.checkpoint``), and only then does rank 0 write
``step-000120.pt`` with the rest of the state and the directory's name under ``shards``; the ``.pt`` file still
marks the checkpoint complete. Branch points stay whole files: other runs start from them.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scaling.errors import UserError
from scaling.io import atomic_write
from scaling.sweepdir import branch_point

log = logging.getLogger(__name__)


class CheckpointError(UserError, RuntimeError):
    pass


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def shard_dir(run_dir: Path, step: int) -> Path:
    """Where the ranks write the shards of the checkpoint at ``step`` (before :func:`save` writes its file)."""
    return checkpoint_dir(run_dir) / f"step-{step:08d}.dcp"


def save(run_dir: Path, step: int, state: dict[str, Any], keep_last: int) -> Path:
    path = _write(checkpoint_dir(run_dir) / f"step-{step:08d}.pt", state)
    kept = {p.stem for p in sorted(checkpoint_dir(run_dir).glob("step-*.pt"))[-keep_last:]}
    for old in checkpoint_dir(run_dir).glob("step-*"):
        if old.stem in kept:
            continue
        if old.is_dir():  # shards: of an older checkpoint, or of a save killed before its file was written
            shutil.rmtree(old)
        else:
            old.unlink(missing_ok=True)
    return path


def save_branch_point(run_dir: Path, step: int, state: dict[str, Any]) -> Path:
    return _write(branch_point(run_dir, step), state)


def _write(path: Path, state: dict[str, Any]) -> Path:
    try:
        atomic_write(path, lambda tmp: torch.save(state, tmp))
    except (OSError, RuntimeError) as e:
        # A full disk surfaces from torch's C++ writer as a RuntimeError ("iostream error", "unexpected pos"), from
        # the file system as OSError; either way the temporary file is gone and the previous checkpoint untouched.
        raise CheckpointError(f"cannot write {path} ({str(e).splitlines()[0][:120]}) (fix: free space or set "
                              "run.out_dir elsewhere; the last good checkpoint is kept)") from None
    return path


def remove_all(run_dir: Path) -> None:
    shutil.rmtree(checkpoint_dir(run_dir), ignore_errors=True)


def latest(run_dir: Path) -> Path | None:
    found = sorted(checkpoint_dir(run_dir).glob("step-*.pt"))
    return found[-1] if found else None


def shards_of(path: Path, state: dict[str, Any]) -> Path | None:
    """The directory of a sharded checkpoint's model and optimizer state (None: the file holds them)."""
    return path.parent / state["shards"] if "shards" in state else None


def load(path: Path, expected_run_id: str) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}); delete it to resume from the "
                              "previous one or to start over") from None
    if state.get("run_id") != expected_run_id:
        raise CheckpointError(f"checkpoint {path} belongs to run {state.get('run_id')!r}, not {expected_run_id!r}: "
                              "a different config; use a new run.out_dir or delete the run directory")
    return state


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every random state a resumed run needs to continue bit-identically (torch CPU and CUDA, Python, numpy), in
    a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state = {"rng_cpu": torch.get_rng_state(), "rng_python": random.getstate(),
             "rng_numpy": [torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    return state


def rng_states(per_rank: list[dict[str, Any]]) -> dict[str, Any]:
    """The random states of every rank (:func:`rng_state` of each, in rank order), as checkpoint entries."""
    return {"rng": per_rank}


def restore_rng(checkpoint_state: dict[str, Any], device: torch.device, rank: int) -> None:
    """This rank's random states; on more ranks than the checkpoint had, the new ranks take rank 0's."""
    states = checkpoint_state["rng"]
    state = states[rank] if rank < len(states) else states[0]
    torch.set_rng_state(state["rng_cpu"])
    random.setstate((state["rng_python"][0], tuple(state["rng_python"][1]), state["rng_python"][2]))
    np_position, np_has_gauss, np_gauss = state["rng_numpy"][1:]
    np.random.set_state(("MT19937", state["rng_numpy"][0].numpy().astype(np.uint32), int(np_position),
                         int(np_has_gauss), float(np_gauss)))
    if device.type == "cuda" and "rng_cuda" in state:
        torch.cuda.set_rng_state(state["rng_cuda"], device)
