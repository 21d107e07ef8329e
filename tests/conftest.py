"""Shared fixtures: Hydra composition of the real configs, a shared token cache, tiny run settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir

from scaling.cli import absolutize, resolve_data
from scaling.config import TrainConfig, load_train_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
# The token cache is shared with `make demo`: the default corpus is tokenized once per machine.
CACHE_DIR = Path(os.environ.get("SCALING_CACHE_DIR", ROOT / ".cache" / "scaling"))

# A run that takes a few seconds on one CPU thread; pinned to the CPU, so the suite is the same on a GPU box.
TINY = [
    "model.seq_len=64", "budget.tokens=61440", "budget.batch_tokens=2048", "budget.micro_batch_size=16",
    "optim.warmup_steps=5", "eval.interval_steps=10", "eval.tokens=8192", "run.progress=false",
    "run.log_interval_steps=5", "run.cpu_peak_flops_per_s=1e11", "run.device=cpu",
]

torch.set_num_threads(1)


def compose_raw(overrides: list[str], config_name: str = "train") -> dict[str, Any]:
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=[f"data.cache_dir={CACHE_DIR}", *overrides])
    raw = OmegaConf.to_container(cfg, resolve=True)
    raw.pop("hydra", None)
    return raw


def make_config(tmp_path: Path, overrides: list[str] = ()) -> tuple[TrainConfig, dict[str, Any]]:
    raw = compose_raw([f"run.out_dir={tmp_path / 'runs'}", *TINY, *overrides])
    absolutize(raw, "run.out_dir", "data.cache_dir")
    resolve_data(raw)
    return load_train_config(raw), raw


def run_cli(script: str, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SCALING_CACHE_DIR": str(CACHE_DIR), **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[TrainConfig, dict[str, Any]]:
    return make_config(tmp_path)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running single-node Slurm; skipped (with the reason) where it cannot be installed, or where
    SCALING_TEST_NO_SYSTEM=1 asks the tests not to install packages or start daemons on this machine."""
    from tests.slurm import LocalSlurm, SlurmUnavailable

    if os.environ.get("SCALING_TEST_NO_SYSTEM") == "1":
        pytest.skip("SCALING_TEST_NO_SYSTEM=1: no Slurm installed or started")

    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except (SlurmUnavailable, subprocess.CalledProcessError) as e:
        cluster.stop()
        pytest.skip(f"no local Slurm: {e}")
    yield cluster
    cluster.stop()
