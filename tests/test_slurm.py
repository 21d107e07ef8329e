"""The Slurm launcher against a real single-node Slurm: one array job, one task per point, every point done."""

from __future__ import annotations

import sys

import pytest

from scaling.io import read_json
from tests.conftest import ROOT, run_cli
from tests.test_sweep import SWEEP_TINY

pytestmark = pytest.mark.slurm
# The tiny grid without the local launcher's settings.
SLURM_TINY = [a for a in SWEEP_TINY if not a.startswith("launcher.")]


def test_sweep_as_a_slurm_array(tmp_path, slurm):
    args = [f"sweep.out_dir={tmp_path}", "sweep.name=arr", *SLURM_TINY, "launcher=slurm", "launcher.wait=true",
            "launcher.poll_interval_s=2", "launcher.time=00:10:00", "launcher.mem=2G", "launcher.max_parallel=2",
            "launcher.extra_sbatch=['--comment=scaling-test']"]
    result = run_cli("sweep.py", *args, env=slurm.env(), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "arr"
    script = (sweep / "slurm" / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-5%2" in script and "#SBATCH --comment=scaling-test" in script
    assert "SLURM_ARRAY_TASK_ID" in script
    job = read_json(sweep / "slurm" / "job.json")
    assert len(job["points"]) == 6
    for p in read_json(sweep / "manifest.json")["points"]:
        summary = read_json(sweep / "runs" / p["id"] / "summary.json")
        assert summary["status"] == "finished"
        assert summary["num_threads"] == 1  # from SLURM_CPUS_PER_TASK
    assert list((sweep / "slurm").glob("*_*.out"))
    assert (sweep / "report" / "fit.json").exists()


def test_slurm_submission_failures_are_clear(tmp_path, slurm):
    # A partition that does not exist: sbatch rejects it, the script stays for a hand submission.
    args = [f"sweep.out_dir={tmp_path}", "sweep.name=bad", *SLURM_TINY, "launcher=slurm", "launcher.partition=nope"]
    result = run_cli("sweep.py", *args, env=slurm.env())
    assert result.returncode == 2
    assert "sbatch rejected the array" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "bad" / "slurm" / "sweep.sbatch").exists()


def test_sbatch_values_cannot_inject_shell(tmp_path):
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=inj", "grid=tiny", "launcher=slurm",
                     "launcher.extra_sbatch=['--comment=x; rm -rf /']")
    assert result.returncode == 2 and "launcher.extra_sbatch" in result.stderr
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=inj2", "grid=tiny", "launcher=slurm",
                     "launcher.partition='debug$(touch /tmp/x)'")
    assert result.returncode == 2 and "launcher.partition" in result.stderr


@pytest.mark.slow  # nearly three minutes of Slurm's own kill and requeue delays
@pytest.mark.parametrize("ranks", [1, 2])
def test_preempted_task_checkpoints_requeues_and_resumes(tmp_path, slurm, ranks):
    """Slurm's warning signal before a time limit (SIGUSR1 to the batch script, as `--signal=B:USR1@N` sends it):
    the run checkpoints and exits 3, the task requeues itself and resumes where it stopped; a point of two ranks
    (srun + torchrun) the same way, every rank stopped and resumed."""
    import json
    import subprocess
    import time

    args = [f"sweep.out_dir={tmp_path}", "sweep.name=pre", *SLURM_TINY, "grid.sizes=[{name: null, num_layers: 2, "
            "d_model: 64, num_heads: 2}]", "grid.budgets_tokens=[409600]", "checkpoint.interval_steps=0",
            "run.log_interval_steps=1", "launcher=slurm", "launcher.wait=true", "launcher.poll_interval_s=1",
            *(["grid.ranks.large_params=1", f"grid.ranks.large_per_point={ranks}"] if ranks > 1 else [])]
    proc = subprocess.Popen([sys.executable, str(ROOT / "sweep.py"), *args], cwd=ROOT, env=slurm.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sweep = tmp_path / "pre"
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until the task is training
        metrics = list(sweep.glob("runs/*/metrics.jsonl"))
        if metrics and len(metrics[0].read_text().splitlines()) >= 20:
            break
        time.sleep(0.2)
    job = read_json(sweep / "slurm" / "job.json")["job_id"]
    subprocess.run(["scancel", "--batch", "--signal=USR1", f"{job}_0"], check=True, env=slurm.env())
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    run_dir = next((sweep / "runs").iterdir())
    assert "resuming run" in (run_dir / "train.log").read_text()
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "train"]
    assert steps == list(range(1, 201))
    assert read_json(run_dir / "summary.json")["status"] == "finished"
    if ranks > 1:
        assert f"{ranks} ranks (ddp)" in (run_dir / "train.log").read_text()


def test_gpu_array_script_is_accepted_by_slurm(tmp_path, slurm):
    """The README's GPU study, rendered by the dry run, is a valid job for Slurm itself (sbatch --test-only)."""
    import subprocess

    result = run_cli("sweep.py", "experiment=chinchilla_gpu", "launcher.partition=debug", f"sweep.out_dir={tmp_path}",
                     "sweep.dry_run=true", "sweep.probe=false", env=slurm.env())
    assert result.returncode == 0, result.stderr[-3000:]
    script = result.stdout.split("#!/bin/bash", 1)[1].split("dry run:", 1)[0]
    assert "#SBATCH --ntasks=1" in script and "#SBATCH --gpus-per-task=1" in script
    path = tmp_path / "gpu.sbatch"
    path.write_text("#!/bin/bash" + script)
    check = subprocess.run(["sbatch", "--test-only", str(path)], capture_output=True, text=True, env=slurm.env())
    assert check.returncode == 0 and "to start at" in check.stderr, check.stderr
    # Asking for more GPUs than any node has is refused by Slurm, so the check above is not vacuous.
    path.write_text(path.read_text().replace("--gpus-per-task=1", "--gpus-per-task=3"))
    check = subprocess.run(["sbatch", "--test-only", str(path)], capture_output=True, text=True, env=slurm.env())
    assert check.returncode != 0


def test_a_failing_squeue_is_an_error_not_a_finished_array(tmp_path, monkeypatch):
    """squeue that cannot reach the controller (exit 1) must not be read as "the array is over"."""
    from scaling.launch import SlurmError, wait_slurm

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "squeue").write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\n"
                                 "exit 1\n")
    (fake / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{__import__('os').environ['PATH']}")
    with pytest.raises(SlurmError, match="squeue failed"):
        wait_slurm("123", poll_interval_s=0.01)
    # A job Slurm has already forgotten is over.
    (fake / "squeue").write_text("#!/bin/sh\necho 'slurm_load_jobs error: Invalid job id specified' >&2\nexit 1\n")
    wait_slurm("123", poll_interval_s=0.01)


def test_a_second_submission_waits_for_the_live_array(tmp_path, slurm):
    import subprocess

    args = [f"sweep.out_dir={tmp_path}", "sweep.name=twice", *SLURM_TINY, "launcher=slurm",
            "grid.budgets_tokens=[409600]", "launcher.poll_interval_s=0.5"]
    first = run_cli("sweep.py", *args, env=slurm.env())
    assert first.returncode == 0, first.stderr[-2000:]
    job = read_json(tmp_path / "twice" / "slurm" / "job.json")
    try:
        second = run_cli("sweep.py", *args, env=slurm.env())
        assert second.returncode == 2 and f"array job {job['job_id']}" in second.stderr
        assert read_json(tmp_path / "twice" / "slurm" / "job.json") == job  # the live array's files are untouched
        assert all((tmp_path / "twice" / "slurm" / f).exists() for f in job["points_files"])
    finally:
        subprocess.run(["scancel", job["job_id"]], env=slurm.env())


@pytest.mark.slow
def test_cooldown_branches_run_as_a_second_array_after_their_trunks(tmp_path, slurm):
    args = [f"sweep.out_dir={tmp_path}", "sweep.name=br", *SLURM_TINY, "optim=adamw_wsd", "grid.branched=true",
            "launcher=slurm", "launcher.wait=true", "launcher.poll_interval_s=2", "launcher.time=00:10:00",
            "launcher.mem=2G", "sweep.fit=false"]
    result = run_cli("sweep.py", *args, env=slurm.env(), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "br"
    first, second = read_json(sweep / "slurm" / "job.json")["job_id"].split(",")
    assert f"#SBATCH --dependency=afterany:{first}" in (sweep / "slurm" / "branches.sbatch").read_text()
    assert "--dependency" not in (sweep / "slurm" / "sweep.sbatch").read_text()
    for p in read_json(sweep / "manifest.json")["points"]:
        summary = read_json(sweep / "runs" / p["id"] / "summary.json")
        assert summary["status"] == "finished" and (summary["branch"] or {}).get("trunk") == p["grid"]["branch_of"]


@pytest.mark.slow
def test_a_point_of_two_ranks_runs_as_srun_and_torchrun_and_matches_one_rank(tmp_path, slurm):
    args = [f"sweep.out_dir={tmp_path}", "sweep.name=mr", *SLURM_TINY, "grid.ranks.large_params=100000",
            "grid.ranks.large_per_point=2", "launcher=slurm", "launcher.wait=true", "launcher.poll_interval_s=2",
            "launcher.time=00:10:00", "sweep.fit=false"]
    result = run_cli("sweep.py", *args, env=slurm.env(), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "mr"
    script = (sweep / "slurm" / "sweep-2ranks.sbatch").read_text()
    assert "srun --kill-on-bad-exit=1" in script and "--nproc_per_node=2 --rdzv_backend=c10d" in script
    assert "#SBATCH --nodes=1" in script and "#SBATCH --cpus-per-task=2" in script
    two = [p for p in read_json(sweep / "manifest.json")["points"] if p["grid"]["ranks"] == 2]
    assert len(two) == 2
    point = two[0]["id"]
    assert "2 ranks (ddp)" in (sweep / "runs" / point / "train.log").read_text()
    one = run_cli("train.py", "--config-path", str(sweep / "points" / point), "--config-name", "config",
                  f"run.out_dir={tmp_path / 'one'}")
    assert one.returncode == 0, one.stderr[-3000:]
    ours, reference = (read_json(d / point / "summary.json") for d in (sweep / "runs", tmp_path / "one"))
    assert ours["final_val_loss"] == pytest.approx(reference["final_val_loss"], rel=1e-5)
