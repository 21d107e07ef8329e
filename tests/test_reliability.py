"""Preemption-safe runs and crash-safe sweeps: kill things, start them again, nothing lost or counted twice."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import load_file

from scaling.io import read_json
from tests.conftest import CACHE_DIR, ROOT, TINY
from tests.test_sweep import SWEEP_TINY

RUN = [*TINY, "run.log_interval_steps=1", "checkpoint.interval_steps=3"]


def start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / script), *args], cwd=ROOT, start_new_session=True,
                            env={**os.environ, "SCALING_CACHE_DIR": str(CACHE_DIR)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def train_events(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return rows


def comparable(run_dir: Path) -> list[tuple]:
    """Every logged number that does not depend on wall time."""
    return [(e["event"], e["step"], e["tokens"], e.get("loss"), e.get("lr"), e.get("grad_norm"), e.get("val_loss"),
             e["flops_6n_attention"]) for e in train_events(run_dir)]


def wait_for_step(run_dir_parent: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        dirs = [d for d in run_dir_parent.glob("*") if d.is_dir()] if run_dir_parent.exists() else []
        if dirs and any(e["step"] >= step for e in train_events(dirs[0])):
            return dirs[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise TimeoutError(f"step {step} not reached")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    proc = start("train.py", f"run.out_dir={out}", *RUN)
    assert proc.wait() == 0, proc.communicate()
    return next(out.iterdir())


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_bit_identically(tmp_path, reference, how):
    out = tmp_path / "runs"
    proc = start("train.py", f"run.out_dir={out}", *RUN)
    kill_at = random.Random(how).randint(5, 25)
    run_dir = wait_for_step(out, kill_at, proc)
    os.killpg(proc.pid, how)
    code = proc.wait()
    if how == signal.SIGTERM:
        assert code == 3  # checkpointed and stopped: run it again to resume
        assert list((run_dir / "checkpoints").glob("step-*.pt"))
    assert not (run_dir / "summary.json").exists()

    resumed = start("train.py", f"run.out_dir={out}", *RUN)
    _, stderr = resumed.communicate()
    assert resumed.returncode == 0, stderr
    assert "resuming run" in stderr or how == signal.SIGKILL and kill_at < 3
    assert comparable(run_dir) == comparable(reference)
    steps = [e["step"] for e in train_events(run_dir) if e["event"] == "train"]
    assert steps == list(range(1, 31))  # no duplicated or missing steps
    ours, theirs = load_file(run_dir / "hf" / "model.safetensors"), load_file(reference / "hf" / "model.safetensors")
    assert ours.keys() == theirs.keys() and all((ours[k] == theirs[k]).all() for k in ours)
    # The summary of the interrupted run is the uninterrupted one's, field for field (wall time aside): the eval
    # history and the divergence guard's state travel in the checkpoint, so min_val_loss covers every eval.
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (run_dir, reference))
    for volatile in ("wallclock_s", "run_id"):
        summary.pop(volatile), expected.pop(volatile)
    assert summary == expected
    assert summary["num_evals"] == 3
    assert summary["min_val_loss"] == min(e["val_loss"] for e in train_events(run_dir) if e["event"] == "eval")


def test_killed_sweep_restarts_to_the_same_tables(tmp_path):
    args = [*SWEEP_TINY, "checkpoint.interval_steps=2", "sweep.fit=false", "launcher.status_interval_s=1"]
    clean = start("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=clean", *args)
    assert clean.wait() == 0, clean.communicate()

    crash = start("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=crash", *args)
    runs = tmp_path / "crash" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill controller and workers once some points are done and others mid-way
        done = list(runs.glob("*/summary.json")) if runs.exists() else []
        started = [d for d in runs.glob("*") if (d / "metrics.jsonl").exists() and not (d / "summary.json").exists()]
        if len(done) >= 2 and started:
            break
        time.sleep(0.05)
    os.killpg(crash.pid, signal.SIGKILL)
    crash.wait()
    finished_before = {d.parent.name: d.stat().st_mtime_ns for d in runs.glob("*/summary.json")}
    assert 2 <= len(finished_before) < 6

    again = start("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=crash", *args)
    _, stderr = again.communicate()
    assert again.returncode == 0, stderr
    assert f"{len(finished_before)} of 6 points already finished" in stderr
    for pid, mtime in finished_before.items():  # finished points were not run again
        assert (runs / pid / "summary.json").stat().st_mtime_ns == mtime
    key = ["run_id", "final_val_loss", "min_val_loss", "tokens", "steps", "status"]
    a = pd.read_csv(tmp_path / "clean" / "results" / "runs.csv")[key].sort_values("run_id").reset_index(drop=True)
    b = pd.read_csv(tmp_path / "crash" / "results" / "runs.csv")[key].sort_values("run_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    for pid in b.run_id:  # every run's metrics are complete and unduplicated
        steps = [e["step"] for e in train_events(runs / pid) if e["event"] == "train"]
        assert steps == sorted(set(steps))


def test_two_controllers_never_train_the_same_point_at_once(tmp_path):
    args = [f"sweep.out_dir={tmp_path}", "sweep.name=two", *SWEEP_TINY, "sweep.fit=false", "launcher.workers=1"]
    first, second = start("sweep.py", *args), start("sweep.py", *args)
    assert first.wait() == 0, first.communicate()
    assert second.wait() == 0, second.communicate()
    for run_dir in (tmp_path / "two" / "runs").iterdir():
        log = (run_dir / "train.log").read_text()
        assert log.count("steps of") == 1, run_dir  # trained exactly once
        steps = [e["step"] for e in train_events(run_dir) if e["event"] == "train"]
        assert steps == sorted(set(steps))


def test_a_stop_signal_during_the_final_export_loses_nothing(tmp_path, reference):
    """SIGTERM while the finished model is exported (after the last eval): the run ends cleanly, finished or
    checkpointed (exit 0 or 3, never killed by the signal), and its summary is the uninterrupted one's."""
    out = tmp_path / "runs"
    proc = start("train.py", f"run.out_dir={out}", *RUN)
    deadline = time.time() + 120
    while time.time() < deadline:
        dirs = list(out.glob("*")) if out.exists() else []
        if dirs and any(e["event"] == "eval" and e["step"] == 30 for e in train_events(dirs[0])):
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGTERM)
    code = proc.wait()
    assert code in (0, 3), proc.communicate()
    again = start("train.py", f"run.out_dir={out}", *RUN)
    assert again.wait() == 0, again.communicate()
    run_dir = next(out.iterdir())
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (run_dir, reference))
    summary.pop("wallclock_s"), expected.pop("wallclock_s")
    assert summary == expected


def test_a_kill_during_a_checkpoint_write_resumes_from_the_previous_checkpoint(tmp_path):
    """SIGKILL while a checkpoint is being written (its temporary file exists): the half-written file is ignored,
    the run resumes from the previous checkpoint and ends exactly as an uninterrupted run does."""
    # A model whose checkpoint (weights and AdamW state, ~50 MB) takes long enough to write to be caught mid-way.
    args = [*RUN, "model.num_layers=4", "model.d_model=256", "model.num_heads=4", "budget.tokens=16384",
            "checkpoint.interval_steps=2", "eval.interval_steps=4", "run.export_hf=false"]
    whole = start("train.py", f"run.out_dir={tmp_path / 'whole'}", *args)
    assert whole.wait() == 0, whole.communicate()
    out = tmp_path / "parts"
    proc = start("train.py", f"run.out_dir={out}", *args)
    deadline, caught = time.time() + 300, False
    while time.time() < deadline and proc.poll() is None:
        checkpoints = list(out.glob("*/checkpoints")) if out.exists() else []
        if checkpoints and list(checkpoints[0].glob("step-*.pt")) and list(checkpoints[0].glob(".step-*.tmp")):
            os.killpg(proc.pid, signal.SIGKILL)
            caught = True
            break
        time.sleep(0.001)
    proc.wait()
    assert caught, "no checkpoint write was caught in progress"
    again = start("train.py", f"run.out_dir={out}", *args)
    _, stderr = again.communicate()
    assert again.returncode == 0, stderr
    assert "resuming run" in stderr
    run_dir = next(out.iterdir())
    assert comparable(run_dir) == comparable(next((tmp_path / "whole").iterdir()))


def _processes_in(directory: Path) -> list[int]:
    """Processes whose working directory is ``directory`` (a point runs in its sweep's directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")) == directory:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("preload", ["true", "false"])
def test_a_point_killed_by_the_system_fails_alone_and_the_next_points_run(tmp_path, preload):
    """SIGKILL (as the OOM killer sends) to a running point, forked from the preloaded process or started fresh:
    that point is recorded as failed with the signal, and every later point still runs and finishes."""
    args = [f"sweep.out_dir={tmp_path}", "sweep.name=k", *SWEEP_TINY, "launcher.workers=1", "sweep.fit=false",
            "launcher.status_interval_s=1", f"launcher.preload={preload}", "grid.budgets_tokens=[262144]"]
    sweep = start("sweep.py", *args)
    sweep_dir, runs = tmp_path / "k", tmp_path / "k" / "runs"
    deadline, victim = time.time() + 300, None
    while time.time() < deadline and victim is None:  # the first point, once it trains
        training = [d for d in runs.glob("*") if train_events(d)] if runs.exists() else []
        pids = _processes_in(sweep_dir) if training else []
        victim = (training[0].name, pids[0]) if len(pids) == 1 else None
        time.sleep(0.02)
    assert victim is not None, "no point started training"
    os.kill(victim[1], signal.SIGKILL)
    _, stderr = sweep.communicate(timeout=600)
    assert sweep.returncode == 1, stderr[-3000:]
    assert read_json(runs / victim[0] / "failed.json")["returncode"] == -signal.SIGKILL
    statuses = {d.name: (d / "summary.json").exists() for d in runs.iterdir()}
    assert len(statuses) == 3 and sum(statuses.values()) == 2 and not statuses[victim[0]]
