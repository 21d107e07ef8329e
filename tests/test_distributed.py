"""One point on two ranks (torchrun, gloo on this CPU): the same losses as one rank with the same global batch,
checkpoints that resume bit-identically and on another number of ranks, one writer of the run directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import CACHE_DIR, ROOT, TINY
from tests.test_reliability import comparable, train_events

# Two micro-batches of 16 sequences per step: one per rank on two ranks, both on one.
RUN = [*TINY, "run.log_interval_steps=1", "checkpoint.interval_steps=3"]


def torchrun(out: Path, *args: str, ranks: int = 2, wait: bool = True) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               str(ROOT / "train.py")] if ranks > 1 else [sys.executable, str(ROOT / "train.py")]
    proc = subprocess.Popen([*command, f"run.out_dir={out}", *RUN, *args], cwd=ROOT, start_new_session=True,
                            env={**os.environ, "SCALING_CACHE_DIR": str(CACHE_DIR)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if wait:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-6000:]
    return proc


def only_run(out: Path) -> Path:
    (run_dir,) = [d for d in out.iterdir() if d.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one")
    torchrun(out, ranks=1)
    return only_run(out)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("two")
    torchrun(out)
    return only_run(out)


def close(a: list[tuple], b: list[tuple], rel: float) -> bool:
    return len(a) == len(b) and all(x[:3] == y[:3] and (x[3] is None) == (y[3] is None) and
                                    (x[3] is None or abs(x[3] - y[3]) <= rel * abs(y[3])) for x, y in zip(a, b))


def losses(run_dir: Path) -> list[tuple]:
    return [(e["event"], e["step"], e["tokens"], e.get("loss", e.get("val_loss"))) for e in train_events(run_dir)]


def _trains_what_one_rank_trains(run_dir: Path, one_rank: Path) -> None:
    assert run_dir.name == one_rank.name  # the rank count is not part of what a run computes
    assert close(losses(run_dir), losses(one_rank), rel=1e-5)
    summary, reference = (json.loads((d / "summary.json").read_text()) for d in (run_dir, one_rank))
    assert summary["tokens"] == reference["tokens"] and summary["flops"] == reference["flops"]
    assert summary["final_val_loss"] == pytest.approx(reference["final_val_loss"], rel=1e-6)
    ours, theirs = (load_file(d / "hf" / "model.safetensors") for d in (run_dir, one_rank))
    assert all((ours[k] - theirs[k]).abs().max() < 1e-4 for k in theirs)


def test_two_ranks_train_what_one_rank_trains(one_rank, two_ranks):
    """DDP; FSDP2 is checked the same way by the killed-and-resumed FSDP2 run below."""
    run_dir = two_ranks
    _trains_what_one_rank_trains(run_dir, one_rank)
    # Rank 0 alone writes: one line per event, one tracker of the run's lock.
    steps = [e["step"] for e in train_events(run_dir) if e["event"] == "train"]
    assert steps == list(range(1, 31))


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "zombie"


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _kill_at(out: Path, step: int, proc: subprocess.Popen, how: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        dirs = [d for d in out.glob("*") if d.is_dir()] if out.exists() else []
        if dirs and any(e["step"] >= step for e in train_events(dirs[0])):
            # torchrun starts each rank in a session of its own: the signal goes to every process of the tree, as
            # a scheduler's kill of a job does.
            tree = _descendants(proc.pid) | {proc.pid}
            for pid in tree:
                os.kill(pid, how)
            proc.wait(timeout=60)
            while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in tree):
                time.sleep(0.05)  # until the ranks, which hold the run's lock, are gone
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise TimeoutError(f"step {step} not reached")


# SIGTERM (checkpoint and exit 3 on every rank) runs with the slow tests: make test keeps the harder kill.
@pytest.mark.parametrize("how", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_a_killed_ddp_run_resumes_bit_identically(tmp_path, two_ranks, how):
    out = tmp_path / "runs"
    _kill_at(out, 11, torchrun(out, wait=False), how)
    run_dir = only_run(out)
    assert not (run_dir / "summary.json").exists() and list((run_dir / "checkpoints").glob("step-*.pt"))
    torchrun(out)
    assert "resuming run" in (run_dir / "train.log").read_text()
    assert comparable(run_dir) == comparable(two_ranks)
    ours, theirs = (load_file(d / "hf" / "model.safetensors") for d in (run_dir, two_ranks))
    assert all((ours[k] == theirs[k]).all() for k in theirs)


def _sharded_checkpoint(run_dir: Path) -> None:
    """The newest checkpoint keeps the model and optimizer as each rank's shards, beside a file without them."""
    import torch

    latest = sorted((run_dir / "checkpoints").glob("step-*.pt"))[-1]
    state = torch.load(latest, weights_only=True)
    assert "model" not in state and "optimizer" not in state
    shards = latest.parent / state["shards"]
    assert {p.name for p in shards.iterdir()} >= {".metadata", "__0_0.distcp", "__1_0.distcp"}


@pytest.mark.parametrize("ranks", [2, pytest.param(1, marks=pytest.mark.slow)])
def test_a_killed_fsdp_run_resumes_from_its_shards_on_any_number_of_ranks(tmp_path, one_rank, ranks):
    out = tmp_path / "runs"
    _kill_at(out, 11, torchrun(out, "run.parallel=fsdp", wait=False), signal.SIGKILL)
    _sharded_checkpoint(only_run(out))
    torchrun(out, "run.parallel=fsdp", ranks=ranks)
    assert "resuming run" in (only_run(out) / "train.log").read_text()
    _trains_what_one_rank_trains(only_run(out), one_rank)  # losses, counts and the exported weights


def test_a_batch_that_does_not_split_over_the_ranks_is_refused_by_name(tmp_path):
    proc = torchrun(tmp_path, "budget.micro_batch_size=32", wait=False)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "budget.batch_tokens: 1 micro-batches per step do not split over 2 ranks" in stderr
    assert "Traceback" not in stderr.split("budget.batch_tokens")[0]
