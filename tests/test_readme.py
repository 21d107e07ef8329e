"""Every command the README shows is exercised: the CPU ones run here (with overrides that make them seconds long),
the GPU and Slurm ones to the end of expansion and sbatch rendering; a README command no test knows fails."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

# Overrides that shrink a command to seconds on one CPU without changing what it exercises.
TINY_TRAIN = ["model.seq_len=64", "budget.tokens=20480", "budget.batch_tokens=2048", "eval.tokens=4096",
              "optim.warmup_steps=2", "run.progress=false", "run.export_hf=false", "run.cpu_peak_flops_per_s=1e11"]
TINY_SWEEP = ["launcher.workers=2", "sweep.fit_bootstrap=10", "model.seq_len=64", "eval.tokens=4096",
              "grid.min_steps=1", "sweep.probe=false"]

# README command -> how it is exercised: ("run", extra arguments), ("dry", extra arguments: expansion, freezing
# and sbatch rendering only), or ("elsewhere", the test that runs it or why it cannot run on a CPU machine).
COMMANDS: dict[str, tuple[str, object]] = {
    "make demo": ("run", ["python train.py", *TINY_TRAIN]),
    "make test": ("elsewhere", "CI runs it (.ci/run)"),
    "make sweep": ("elsewhere", "the same command as `python sweep.py`, run below"),
    "make test-slow": ("elsewhere", "tests marked slow: the default studies, end to end"),
    "make bench": ("elsewhere", "bench/__main__.py: measurements, not checks"),
    "python train.py": ("run", TINY_TRAIN),
    "python train.py model=gpt2_tiny optim.lr=1e-3 budget.tokens=2e6 precision=bf16 tracking=offline":
        ("run", [*TINY_TRAIN, "budget.tokens=4096"]),
    "python train.py --cfg job": ("run", []),
    "python train.py --config-path runs/<id> --config-name config":
        ("elsewhere", "tests/test_train.py::test_cli_runs_and_rerun_from_saved_config"),
    "python train.py -m optim.lr=1e-3,3e-3,1e-2":
        ("elsewhere", "tests/test_train.py::test_hydra_multirun_runs_every_job_and_records_overrides"),
    "scaling-sweep sweep.out_dir=$HOME/sweeps":
        ("elsewhere", "tests/test_install.py: a sweep from a fresh non-editable install, in an unrelated directory"),
    "python sweep.py": ("run", [*TINY_SWEEP, "grid.budgets_flops=[1e10,2e10]", "grid.sizes_per_budget=3"]),
    "python sweep.py sweep.dry_run=true": ("run", ["sweep.probe=false"]),
    "python sweep.py grid=cartesian": ("run", [*TINY_SWEEP, "grid.size_targets=[30000,60000,120000]",
                                               "grid.budgets_tokens=[16384]", "budget.batch_tokens=2048"]),
    "python sweep.py experiment=chinchilla_gpu launcher.partition=gpu": ("dry", ["sweep.probe=false"]),
    "python sweep.py experiment=chinchilla_gpu launcher=local": ("dry", ["sweep.probe=false"]),
    "python sweep.py experiment=testtime": ("elsewhere", "tests/test_testtime.py (slow): the default study"),
    "python sweep.py experiment=scaling_cpu_branched": ("dry", ["sweep.probe=false"]),
    "python sweep.py experiment=mup_transfer_cpu": ("dry", ["sweep.probe=false"]),
    "python sweep.py grid.tune.lr_factors=[0.5,1,2]":
        ("elsewhere", "tests/test_tuning.py::test_tuned_sweep_fits_each_cells_best_run"),
    "python -m torch.distributed.run --standalone --nproc_per_node=2 train.py run.parallel=ddp":
        ("elsewhere", "tests/test_distributed.py: two ranks on gloo against one"),
    "python sweep.py experiment=chinchilla_gpu launcher=slurm grid.ranks.large_params=3e8 "
    "grid.ranks.large_per_point=8 launcher.ranks_per_node=4": ("dry", ["sweep.probe=false"]),
    "python sweep.py 'grid.seeds=[0,1,2]'":
        ("elsewhere", "tests/test_sweep.py::test_local_sweep_runs_skips_and_reruns: a sweep grown by a budget"),
    "python -m scaling status sweeps/default":
        ("elsewhere", "tests/test_sweep.py::test_local_sweep_runs_skips_and_reruns"),
    "python -m scaling fit sweeps/default --out fit/": ("elsewhere", "tests/test_sweep.py (the CLI fit of a sweep)"),
    "python -m scaling fit table.csv --out fit/ --n-col params --d-col tokens --loss-col loss --bootstrap 1000":
        ("elsewhere", "tests/test_fit.py::test_cli_on_a_table_writes_fit_json_figures_and_report"),
    "python -m scaling fit sweeps/default --out fit-total/ --total":
        ("elsewhere", "tests/test_sweep.py::test_local_sweep_runs_skips_and_reruns (--total)"),
}
# The CUDA install one-liner: pip pulls a CUDA build of torch, so it can run on GPU boxes only.
INSTALL_LINE = "python -m venv .venv"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(("python", "make")) and not line.startswith(INSTALL_LINE):
                commands.append(re.sub(r"\s+", " ", line))
    return commands


def test_every_readme_command_is_exercised():
    unknown = [c for c in readme_commands() if c not in COMMANDS]
    assert not unknown, f"README commands no test exercises: {unknown}"


def _argv(command: str, extra: list[str]) -> tuple[str, list[str]]:
    if command.startswith("make "):
        command, extra = extra[0], extra[1:]
    words = shlex.split(command)
    return words[1], [*words[2:], *extra]


RUNNABLE = [(c, how) for c, how in COMMANDS.items() if how[0] in ("run", "dry")]


@pytest.mark.parametrize("command,how", RUNNABLE, ids=[c for c, _ in RUNNABLE])
def test_readme_command_runs(tmp_path, command, how):
    if command not in readme_commands():
        pytest.skip("not in the README")
    kind, extra = how
    script, args = _argv(command, list(extra))
    if script == "sweep.py":
        args += [f"sweep.out_dir={tmp_path}", "sweep.name=readme"]
        if kind == "dry":
            args.append("sweep.dry_run=true")
    else:
        args.append(f"run.out_dir={tmp_path / 'runs'}")
    if "--cfg" in args:
        args = [a for a in args if not a.startswith("run.out_dir")]
    result = run_cli(script, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    if kind == "dry":
        assert "dry run: nothing written" in result.stdout and not (tmp_path / "readme").exists()
        if "chinchilla_gpu" in command:  # the GPU study: one GPU per task unless it runs on the local box
            assert ("#SBATCH --gpus-per-task=1" in result.stdout) == ("launcher=local" not in command)
    elif script == "sweep.py" and "dry_run" not in command:
        assert json.loads((tmp_path / "readme" / "report" / "fit.json").read_text())["conventions"]
    elif script == "train.py" and "--cfg" not in command:
        assert list((tmp_path / "runs").glob("*/summary.json"))


def test_gpu_study_sets_everything_a_gpu_run_needs(tmp_path):
    """The one-line GPU command composes a complete config: bf16 with TF32, the GPU batch, one GPU per task."""
    out = subprocess.run([sys.executable, str(ROOT / "sweep.py"), "experiment=chinchilla_gpu", "--cfg", "job"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    import yaml

    cfg = yaml.safe_load(out.stdout)
    assert cfg["precision"] == {"dtype": "bf16", "tf32": True} and cfg["run"]["device"] == "cuda"
    assert cfg["budget"]["batch_tokens"] % (cfg["budget"]["micro_batch_size"] * cfg["model"]["seq_len"]) == 0
    assert cfg["launcher"]["kind"] == "slurm" and cfg["launcher"]["gpus_per_task"] in (None, 1)
