"""Sweeps on this machine: freeze, two parallel workers, skip finished, failures recorded, status, re-run."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from scaling.io import read_json
from tests.conftest import ROOT, run_cli

# A seconds-long cartesian grid on the real default corpus.
SWEEP_TINY = ["grid=tiny", "launcher.workers=2", "launcher.status_interval_s=5", "sweep.fit_bootstrap=20",
              "model.seq_len=64", "budget.batch_tokens=2048", "budget.micro_batch_size=16", "eval.tokens=8192",
              "optim.warmup_steps=2", "grid.warmup_fraction=null", "run.device=cpu"]


def test_local_sweep_runs_skips_and_reruns(tmp_path):
    args = [f"sweep.out_dir={tmp_path}", "sweep.name=s", *SWEEP_TINY]
    sweep = tmp_path / "s"
    # A sweep grows: its first budget alone, then both; what has finished is not run again.
    first_budget = run_cli("sweep.py", *args, "grid.budgets_tokens=[16384]", "sweep.fit=false")
    assert first_budget.returncode == 0, first_budget.stderr[-3000:]
    early = {p["id"]: (sweep / "runs" / p["id"] / "summary.json").stat().st_mtime_ns
             for p in read_json(sweep / "manifest.json")["points"]}
    first = run_cli("sweep.py", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "6 points frozen" in first.stderr and "(3 added to the 3 already there)" in first.stderr
    assert early == {pid: (sweep / "runs" / pid / "summary.json").stat().st_mtime_ns for pid in early}
    manifest = read_json(sweep / "manifest.json")
    assert len(manifest["points"]) == 6
    for p in manifest["points"]:
        assert (sweep / "points" / p["id"] / "config.yaml").exists()
        assert read_json(sweep / "runs" / p["id"] / "summary.json")["status"] == "finished"
        # Forked from the preloaded process (the default), a point runs the train module without executing it twice.
        assert "RuntimeWarning" not in (sweep / "runs" / p["id"] / "process.log").read_text()
    runs = pd.read_csv(sweep / "results" / "runs.csv")
    evals = pd.read_csv(sweep / "results" / "evals.csv")
    assert len(runs) == 6 and set(runs.status) == {"finished"}
    assert {"params_non_embedding", "flops_kaplan", "flops_chinchilla", "final_val_loss", "tokens",
            "grid.size", "wallclock_s", "device"} <= set(runs.columns)
    assert set(evals.run_id) == set(runs.run_id)
    assert (sweep / "report" / "fit.json").exists() and (sweep / "report" / "report.md").exists()

    # One law per sweep: the sweep's own fit and `python -m scaling fit SWEEP_DIR` use the manifest's convention pair.
    assert manifest["conventions"] == {"params": "total", "flops": "6n_attention"}
    cli_fit = subprocess.run([sys.executable, "-m", "scaling", "fit", str(sweep), "--out", str(tmp_path / "cli"),
                              "--bootstrap", "20"], cwd=ROOT, capture_output=True, text=True)
    assert cli_fit.returncode == 0, cli_fit.stderr
    assert "fit: checks " in first.stderr and "checks " in cli_fit.stdout  # the goals met or not, where the user looks
    own, cli = (json.loads((d / "fit.json").read_text()) for d in (sweep / "report", tmp_path / "cli"))
    assert own["conventions"] == cli["conventions"] and own["conventions"]["params"] == "total"
    assert own["kaplan"]["L(N, D)"] == cli["kaplan"]["L(N, D)"]
    assert "N = total parameters; C = FLOPs under 6n_attention" in (sweep / "report" / "report.md").read_text()
    total = subprocess.run([sys.executable, "-m", "scaling", "fit", str(sweep), "--out", str(tmp_path / "total"),
                            "--bootstrap", "0", "--total"], cwd=ROOT, capture_output=True, text=True)
    assert total.returncode == 0, total.stderr
    assert json.loads((tmp_path / "total" / "fit.json").read_text())["conventions"]["flops"] == "6n"

    # Everything finished: a second invocation skips every point and changes no run.
    before = {p["id"]: (sweep / "runs" / p["id"] / "summary.json").stat().st_mtime_ns for p in manifest["points"]}
    again = run_cli("sweep.py", *args)
    assert again.returncode == 0
    assert "6 of 6 points already finished" in again.stderr
    assert before == {p["id"]: (sweep / "runs" / p["id"] / "summary.json").stat().st_mtime_ns
                      for p in manifest["points"]}

    # The status command reads the directory alone.
    out = subprocess.run([sys.executable, "-m", "scaling", "status", str(sweep)], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0 and "finished 6" in out.stdout

    # The documented one-liner re-runs a point from its saved config and reproduces its losses.
    pid = manifest["points"][0]["id"]
    rerun = run_cli("train.py", "--config-path", str(sweep / "points" / pid), "--config-name", "config",
                    f"run.out_dir={tmp_path / 'rerun'}", "run.progress=false")
    assert rerun.returncode == 0, rerun.stderr
    original = [json.loads(line) for line in (sweep / "runs" / pid / "metrics.jsonl").read_text().splitlines()]
    repeated = [json.loads(line) for line in (tmp_path / "rerun" / pid / "metrics.jsonl").read_text().splitlines()]
    assert [e.get("loss", e.get("val_loss")) for e in original] == [e.get("loss", e.get("val_loss")) for e in repeated]


def test_a_failing_point_is_recorded_and_the_others_finish(tmp_path):
    # The 10M-token point needs more text than the corpus has, and on_repeat=error makes that fatal at run time.
    args = [f"sweep.out_dir={tmp_path}", "sweep.name=f", *SWEEP_TINY, "grid.budgets_tokens=[16384,20000000]",
            "data.on_repeat=error", "sweep.fit=false"]
    result = run_cli("sweep.py", *args)
    assert result.returncode == 1
    runs = pd.read_csv(tmp_path / "f" / "results" / "runs.csv")
    assert sorted(runs.status.value_counts().items()) == [("failed", 3), ("finished", 3)]
    failed = runs[runs.status == "failed"].run_id.iloc[0]
    error = read_json(tmp_path / "f" / "runs" / failed / "failed.json")["error"]
    assert "budget.tokens" in error and "repeated" in error


def test_dry_run_prints_the_table_and_writes_nothing(tmp_path):
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=d", "sweep.dry_run=true", "grid=tiny")
    assert result.returncode == 0, result.stderr
    assert "N non-emb" in result.stdout and "est. s" in result.stdout and "6 points" in result.stdout
    assert not (tmp_path / "d").exists()
