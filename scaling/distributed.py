"""One point on several processes: torchrun's environment, the process group, DDP or FSDP2, and global values.

A run started by ``torchrun --nproc_per_node=K`` (or ``python -m torch.distributed.run``) sees RANK, WORLD_SIZE
and LOCAL_RANK in its environment; without them it is one process and nothing here changes anything. Everything
is PyTorch's own: ``torch.distributed`` process groups (gloo on CPU, NCCL on GPUs), ``DistributedDataParallel``
for models that fit on one device, FSDP2's ``fully_shard`` (one unit per block, then the root) for those that do
not, and ``torch.distributed.checkpoint``: each rank of an FSDP2 run writes and reads its own shards of a
checkpoint (resharded on load to any number of ranks); other runs gather full states through its ``state_dict``
helpers.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from scaling.config import ConfigError, TrainConfig


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the run directory, logs and tracks."""
        return self.rank == 0


def from_environment() -> Ranks:
    """This process's place among the ranks torchrun started (one rank of one without torchrun)."""
    return Ranks(rank=int(os.environ.get("RANK", 0)), world=int(os.environ.get("WORLD_SIZE", 1)),
                 local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def check(cfg: TrainConfig, ranks: Ranks) -> None:
    """What a run on several ranks needs of its config: the global batch splits into whole micro-batches per rank
    (each rank accumulates the same number), and no fp16 under FSDP2 (its loss scaling needs a sharded scaler)."""
    if shards_model(cfg.run.parallel, ranks) and cfg.precision.dtype == "fp16":
        raise ConfigError("precision.dtype", "fp16 under FSDP2 is not supported", "precision=bf16, or run.parallel=ddp")
    accum = cfg.grad_accum_steps
    if accum % ranks.world:
        raise ConfigError("budget.batch_tokens", f"{accum} micro-batches per step do not split over {ranks.world} "
                          "ranks", f"make budget.batch_tokens a multiple of {ranks.world} x micro_batch_size x "
                          f"seq_len (e.g. budget.micro_batch_size={max(1, cfg.budget.micro_batch_size // ranks.world)}"
                          ")")


def my_micro_batches(ranks: Ranks, accum: int) -> range:
    """Which of a step's ``accum`` micro-batches this rank trains on: every world-th, so the ranks' batches are
    disjoint, together the one-rank batch, and fixed by (seed, step, rank count) alone."""
    return range(ranks.rank, accum, ranks.world)


def start(ranks: Ranks, device: torch.device) -> None:
    if ranks.world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)


def stop(ranks: Ranks) -> None:
    """After a run every rank finished: all leave together (a rank tearing down its connections while another
    still uses them can abort the other)."""
    if ranks.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def device_of(ranks: Ranks, device: torch.device) -> torch.device:
    """A rank's own GPU (its LOCAL_RANK) when the run trains on CUDA."""
    if device.type == "cuda" and ranks.world > 1:
        torch.cuda.set_device(ranks.local_rank)
        return torch.device("cuda", ranks.local_rank)
    return device


def wrap(model: nn.Module, parallel: str, ranks: Ranks, device: torch.device,
         dtype: torch.dtype | None) -> nn.Module:
    """DDP or FSDP2 around ``model`` on several ranks; ``model`` itself on one. FSDP2 shards in place (``model``
    becomes the root unit) and casts for compute by its own mixed-precision policy: the caller then trains without
    autocast (:func:`autocast_dtype`)."""
    if ranks.world == 1:
        return model
    if parallel == "ddp":
        # The model's only buffers are its rotary tables, computed alike on every rank: nothing to broadcast per step.
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                   broadcast_buffers=False)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (ranks.world,))
    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    for block in model.blocks:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def autocast_dtype(parallel: str, ranks: Ranks, dtype: torch.dtype | None) -> torch.dtype | None:
    """The dtype to autocast to: none under FSDP2, whose policy already computes in ``dtype``."""
    return None if shards_model(parallel, ranks) else dtype


@contextlib.contextmanager
def gradient_sync(model: nn.Module, sync: bool) -> Iterator[None]:
    """Reduce gradients across ranks only on the last micro-batch of a step (DDP's no_sync, FSDP2's switch)."""
    if isinstance(model, nn.parallel.DistributedDataParallel) and not sync:
        with model.no_sync():
            yield
        return
    if hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(sync)
    yield


def mean(value: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The mean of ``value`` over ranks (itself on one rank)."""
    if ranks.world == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / ranks.world


def any_rank(flag: bool, ranks: Ranks, device: torch.device) -> bool:
    """Whether ``flag`` holds on any rank: a stop signal seen by one rank stops all at the same step."""
    if ranks.world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_objects(obj: Any, ranks: Ranks) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if ranks.world == 1:
        return [obj]
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


def shards_model(parallel: str, ranks: Ranks) -> bool:
    """FSDP2 on several ranks: no rank holds the whole model."""
    return ranks.world > 1 and parallel == "fsdp"


def save_shards(model: nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Each rank writes its shards of the model and optimizer state under ``path`` (a directory), and rank 0 the
    metadata, last; collective: when it returns, every rank's part is on disk."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=path)


def load_shards(model: nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
    """The inverse of :func:`save_shards` on any number of ranks, FSDP2 or not: each rank reads what it holds."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=path)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Model and optimizer state as full (unsharded) CPU tensors keyed by parameter name: the same on any number
    of ranks, so a checkpoint resumes on another rank count. Collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_model_state(model: nn.Module) -> dict[str, Any]:
    """The model's full state on rank 0 (collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict[str, Any],
                    optimizer_state: dict[str, Any]) -> None:
    """The inverse of :func:`full_state`: each rank keeps its shard (or its replica)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                   options=StateDictOptions(full_state_dict=True))
