"""A real run on the real default corpus: the run directory contract, falling eval loss, determinism."""

from __future__ import annotations

import json
import logging
import math

import yaml

from scaling.cli import frozen_yaml
from scaling.config import run_id
from scaling.hardware import cpu_has_fast_bf16
from scaling.io import read_jsonl
from scaling.trainer import train
from tests.conftest import make_config, run_cli


def _train(tmp_path, overrides=()):
    cfg, raw = make_config(tmp_path, list(overrides))
    run_dir = train(cfg, frozen_yaml(raw, tmp_path))
    return cfg, run_dir


def test_tiny_run_writes_its_directory_and_learns(tmp_path):
    cfg, run_dir = _train(tmp_path)
    assert run_dir.name == run_id(cfg)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["steps"] == cfg.num_steps == 30
    assert summary["tokens"] == 30 * 2048
    assert set(summary["flops"]) == {"kaplan", "6n", "6n_attention", "chinchilla"}
    assert summary["params"]["total"] == summary["params"]["embedding"] + summary["params"]["non_embedding"]
    assert {"torch", "transformers", "datasets"} <= set(summary["versions"])

    events = read_jsonl(run_dir / "metrics.jsonl")
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [10, 20, 30]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.3
    assert summary["final_val_loss"] == evals[-1]["val_loss"]
    train_events = [e for e in events if e["event"] == "train"]
    assert all(e["tokens_per_s"] > 0 and 0 < e["mfu"] for e in train_events)
    assert all(e["flops_6n_attention"] > e["flops_kaplan"] for e in train_events)

    assert (run_dir / "hf" / "model.safetensors").exists()
    assert not (run_dir / "checkpoints").exists()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["d_model"] == cfg.model.d_model and saved["budget"]["tokens"] == cfg.budget.tokens


def test_bf16_autocast_on_cpu_learns_and_says_when_it_is_emulated(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="scaling.hardware"):
        _, run_dir = _train(tmp_path, ["precision=bf16", "budget.tokens=20480", "eval.interval_steps=5",
                                       "eval.tokens=4096"])
    evals = [e for e in read_jsonl(run_dir / "metrics.jsonl") if e["event"] == "eval"]
    assert all(math.isfinite(e["val_loss"]) for e in evals)
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.3
    assert ("bf16 is emulated" in caplog.text) == (not cpu_has_fast_bf16())
    assert "fix: precision=fp32" in caplog.text or cpu_has_fast_bf16()


def test_same_seed_same_losses_and_finished_run_is_a_no_op(tmp_path):
    _, a = _train(tmp_path / "a")
    _, b = _train(tmp_path / "b")
    losses = [[e.get("loss", e.get("val_loss")) for e in read_jsonl(d / "metrics.jsonl")] for d in (a, b)]
    assert losses[0] == losses[1]
    before = (a / "summary.json").read_text()
    _train(tmp_path / "a")
    assert (a / "summary.json").read_text() == before


def test_cli_runs_and_rerun_from_saved_config(tmp_path):
    out = tmp_path / "runs"
    from tests.conftest import TINY

    args = [f"run.out_dir={out}", *TINY, "budget.tokens=20480", "eval.interval_steps=0"]
    first = run_cli("train.py", *args)
    assert first.returncode == 0, first.stderr
    run_dir = next(out.iterdir())
    assert f"results: {run_dir}" in first.stdout
    # Re-run the saved config into a fresh directory: the same losses.
    again = run_cli("train.py", "--config-path", str(run_dir), "--config-name", "config",
                    f"run.out_dir={tmp_path / 'again'}")
    assert again.returncode == 0, again.stderr
    rerun_dir = tmp_path / "again" / run_dir.name
    assert json.loads((rerun_dir / "summary.json").read_text())["final_val_loss"] == json.loads(
        (run_dir / "summary.json").read_text())["final_val_loss"]


def test_wandb_offline_mirror(tmp_path):
    _, run_dir = _train(tmp_path, ["tracking=offline", "budget.tokens=20480"])
    assert list((run_dir / "wandb").glob("offline-run-*"))


def test_divergence_stops_the_run_and_marks_it(tmp_path):
    from scaling.io import read_json

    cfg, run_dir = _train(tmp_path, ["optim.lr=50", "optim.warmup_steps=0", "optim.grad_clip=0"])
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "diverged"
    assert summary["steps"] < cfg.num_steps and summary["last_good_step"] < summary["steps"]
    assert (run_dir / "metrics.jsonl").exists() and not (run_dir / "hf").exists()
