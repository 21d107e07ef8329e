"""Cooldown branches (WSD): a branch resumes its trunk's kept state and computes exactly its run from scratch."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from scaling.checkpoint import CheckpointError
from scaling.config import ConfigError, run_id
from scaling.io import read_json, read_jsonl
from scaling.trainer import train
from tests.conftest import TINY, make_config, run_cli
from tests.test_sweep import SWEEP_TINY

# 30 steps for the trunk; the 20-step branch decays over its last 4 steps, so it leaves the trunk at step 16.
WSD = ["optim=adamw_wsd", "eval.interval_steps=8", "optim.warmup_steps=5"]
BRANCH = ["budget.tokens=40960"]


def test_a_branch_is_its_run_from_scratch_at_the_cost_of_its_cooldown(tmp_path):
    trunk_cfg, trunk_raw = make_config(tmp_path / "a", [*WSD, "checkpoint.branch_steps=[16]"])
    trunk_dir = train(trunk_cfg, trunk_raw)
    assert (trunk_dir / "branch_points" / "step-00000016.pt").exists()  # kept after the trunk finished
    assert not (trunk_dir / "checkpoints").exists()

    branch_cfg, branch_raw = make_config(tmp_path / "a", [*WSD, *BRANCH, f"branch.trunk={run_id(trunk_cfg)}",
                                                          "branch.step=16"])
    branch_dir = train(branch_cfg, branch_raw)
    scratch_cfg, scratch_raw = make_config(tmp_path / "b", [*WSD, *BRANCH])
    scratch_dir = train(scratch_cfg, scratch_raw)
    assert run_id(branch_cfg) == run_id(scratch_cfg)  # the same computation, hence the same id

    def after_16(run_dir):
        return [{k: v for k, v in e.items() if k not in ("tokens_per_s", "mfu")} for e in
                read_jsonl(run_dir / "metrics.jsonl") if e["step"] > 16]

    assert after_16(branch_dir) == after_16(scratch_dir) and after_16(branch_dir)[-1]["step"] == 20
    ours, theirs = (load_file(d / "hf" / "model.safetensors") for d in (branch_dir, scratch_dir))
    assert all((ours[k] == theirs[k]).all() for k in theirs)
    branch, scratch = (read_json(d / "summary.json") for d in (branch_dir, scratch_dir))
    assert branch["final_val_loss"] == scratch["final_val_loss"] and branch["min_val_loss"] == scratch["min_val_loss"]
    assert branch["branch"] == {"trunk": run_id(trunk_cfg), "step": 16, "tokens": 16 * 2048}
    assert scratch["branch"] is None and branch["tokens"] == scratch["tokens"] == 20 * 2048


def test_a_branch_without_its_trunk_says_so(tmp_path):
    cfg, raw = make_config(tmp_path, [*WSD, *BRANCH, "branch.trunk=0123456789ab", "branch.step=16"])
    with pytest.raises(CheckpointError, match="branch.trunk: run 0123456789ab has no kept state at step 16"):
        train(cfg, raw)


def test_a_trunk_that_is_not_a_run_id_is_refused_before_any_path_is_read(tmp_path):
    """A trunk of '../../x' used to be read as the run directory two levels above run.out_dir."""
    with pytest.raises(ConfigError, match=r"branch.trunk: '../../x' is not a run id \(12 hex digits\)"):
        make_config(tmp_path, [*WSD, *BRANCH, "branch.trunk=../../x", "branch.step=16"])


@pytest.mark.parametrize("override, field", [("branch.step=15", "branch.step=16"),
                                             ("optim=adamw_cosine", "optim=adamw_wsd")])
def test_a_branch_that_would_not_be_its_run_is_refused(tmp_path, override, field):
    result = run_cli("train.py", f"run.out_dir={tmp_path}", *TINY, *WSD, *BRANCH, "branch.trunk=0123456789ab",
                     "branch.step=16", override)
    assert result.returncode != 0 and field in result.stderr and "Traceback" not in result.stderr


def test_branched_sweep_trains_trunks_and_branches(tmp_path):
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=b", *SWEEP_TINY, "optim=adamw_wsd",
                     "grid.branched=true", "grid.budgets_tokens=[16384,24576,32768]")
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "b"
    points = read_json(sweep / "manifest.json")["points"]
    assert len(points) == 9 and sum(p["grid"]["branch_of"] is None for p in points) == 3
    for p in points:
        summary = read_json(sweep / "runs" / p["id"] / "summary.json")
        assert summary["status"] == "finished"
        assert (summary["branch"] or {}).get("trunk") == p["grid"]["branch_of"]
    fit = json.loads((sweep / "report" / "fit.json").read_text())
    cost = fit["study_cost"]
    assert cost["ratio"] == pytest.approx(cost["flops_trained"] / cost["flops_independent"])
    assert 0.4 < cost["ratio"] < 0.8
    assert "cooldown branches" in (sweep / "report" / "report.md").read_text()
