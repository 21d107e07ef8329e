"""Where points run: GPU slots on a multi-GPU box, Slurm resources from the points, validated launcher fields,
and the GPU peak table MFU is measured against. No GPU needed."""

from __future__ import annotations

import pytest

from scaling.config import ConfigError, parse
from scaling.hardware import gpu_peak_flops_per_s
from scaling.launch import LocalLauncherConfig, SlurmLauncherConfig, gpu_slots, task_memory, workers_and_slots
from tests.conftest import compose_raw, run_cli


def local(**overrides) -> LocalLauncherConfig:
    raw = compose_raw(["sweep.name=t"], config_name="sweep")["launcher"]
    return parse(LocalLauncherConfig, {**raw, **overrides}, "launcher.")


def test_gpu_slots_spread_workers_over_every_gpu_first():
    assert gpu_slots(["0", "1", "2", "3"], 2) == ["0", "1", "2", "3", "0", "1", "2", "3"]
    # Two workers on four GPUs take two different GPUs; eight workers take each GPU twice.
    workers, slots = workers_and_slots(local(workers=2, points_per_gpu=2), ["0", "1", "2", "3"], cpu_count=16)
    assert workers == 2 and slots[:workers] == ["0", "1"]
    workers, slots = workers_and_slots(local(workers=None, points_per_gpu=2), ["0", "1", "2", "3"], cpu_count=16)
    assert workers == 8 and sorted(slots) == ["0", "0", "1", "1", "2", "2", "3", "3"]


def test_more_workers_than_gpu_slots_are_capped():
    workers, slots = workers_and_slots(local(workers=6, points_per_gpu=1), ["0", "1"], cpu_count=16)
    assert workers == 2 and slots == ["0", "1"]


def test_cpu_box_has_one_worker_per_core_group():
    assert workers_and_slots(local(workers=None, threads_per_worker=2), [], cpu_count=8) == (4, [])


@pytest.mark.parametrize("field,value", [("workers", 0), ("workers", -1), ("threads_per_worker", 0),
                                         ("points_per_gpu", 0)])
def test_launcher_fields_are_validated(field, value):
    with pytest.raises(ConfigError, match=f"launcher.{field}"):
        local(**{field: value})


def test_slurm_fields_are_validated():
    raw = compose_raw(["sweep.name=t", "launcher=slurm"], config_name="sweep")["launcher"]
    with pytest.raises(ConfigError, match="launcher.time"):
        parse(SlurmLauncherConfig, {**raw, "time": "4 hours"}, "launcher.")
    with pytest.raises(ConfigError, match="launcher.gpus_per_task"):
        parse(SlurmLauncherConfig, {**raw, "gpus_per_task": -1}, "launcher.")
    with pytest.raises(ConfigError, match="launcher.mem: 'lots' is not a Slurm memory size"):
        parse(SlurmLauncherConfig, {**raw, "mem": "lots"}, "launcher.")
    for mem in ("8G", "16000", "512m", None):
        parse(SlurmLauncherConfig, {**raw, "mem": mem}, "launcher.")


def test_task_memory_grows_with_the_model():
    assert task_memory(10_000) == "5G"
    assert task_memory(300_000_000) == f"{4 + 8}G"  # 28 bytes per parameter: 7.8 GiB, rounded up


def test_slurm_refuses_a_cpu_request_for_points_that_train_on_a_gpu(tmp_path):
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=g", "grid=tiny", "launcher=slurm",
                     "run.device=cuda", "launcher.gpus_per_task=0", "sweep.dry_run=true", "sweep.probe=false")
    assert result.returncode == 2 and "launcher.gpus_per_task" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "g").exists()


@pytest.mark.parametrize("name,dtype,peak", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989e12), ("NVIDIA H100 PCIe", "bf16", 756e12),
    ("NVIDIA H100 NVL", "bf16", 835e12), ("NVIDIA H200", "bf16", 989e12), ("NVIDIA H200 NVL", "bf16", 835e12),
    ("NVIDIA L40", "bf16", 181e12), ("NVIDIA L40S", "bf16", 362e12), ("NVIDIA L4", "bf16", 121e12),
    ("NVIDIA B200", "bf16", 2250e12), ("NVIDIA A100-SXM4-80GB", "tf32", 156e12),
])
def test_gpu_peaks_name_the_card(name, dtype, peak):
    assert gpu_peak_flops_per_s(name, dtype) == peak


def test_unknown_gpu_has_no_peak():
    with pytest.warns(UserWarning, match="MFU will not be logged"):
        assert gpu_peak_flops_per_s("Tesla V100-SXM2-16GB", "bf16") is None


def test_bf16_is_refused_on_a_gpu_that_only_emulates_it(monkeypatch):
    import torch

    from scaling.config import PrecisionConfig
    from scaling.hardware import PrecisionError, autocast_dtype

    # A V100 (compute capability 7.0): torch.cuda.is_bf16_supported() says yes, its tensor cores say no.
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2-16GB")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    with pytest.raises(PrecisionError, match="compute capability 7.0.*precision=fp16"):
        autocast_dtype(PrecisionConfig(dtype="bf16", tf32=False), torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert autocast_dtype(PrecisionConfig(dtype="bf16", tf32=False), torch.device("cuda")) == torch.bfloat16


def test_gpu_benchmark_keeps_each_figure_and_records_a_failure(tmp_path, monkeypatch):
    import json

    import torch

    from bench import gpu

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(gpu, "big_model", lambda compile_model: {"compile": compile_model, "mfu": 0.5})

    def packing(points_per_gpu):
        if points_per_gpu == 4:
            raise RuntimeError("CUDA error: out of memory")
        return {"points_per_gpu": 1, "points_per_hour": 100.0}

    monkeypatch.setattr(gpu, "packing", packing)
    out = tmp_path / "gpu.json"
    gpu.main(out)
    results = json.loads(out.read_text())
    assert results["eager"]["mfu"] == 0.5 and results["packing_1"]["points_per_hour"] == 100.0
    assert "out of memory" in results["packing_4"]["error"] and "packing_ratio" not in results


def test_no_system_skips_the_tests_that_would_install_or_start_daemons():
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          "tests/test_slurm.py::test_sweep_as_a_slurm_array"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "SCALING_TEST_NO_SYSTEM": "1"}, timeout=120)
    assert "1 skipped" in out.stdout and "SCALING_TEST_NO_SYSTEM=1: no Slurm installed or started" in out.stdout


def test_a_point_of_several_ranks_takes_whole_gpus_and_small_points_keep_packing(tmp_path):
    from scaling.launch import _Pool

    slots = gpu_slots(["0", "1", "2"], 2)
    pool = _Pool(tmp_path, [], workers=len(slots), threads=1, gpus=slots, preload=False, branches={},
                 ranks={"big": 2, "small": 1, "small2": 1})
    assert sorted(pool._devices("big")) == ["0", "0", "1", "1"]
    pool.free_gpus.remove("0")  # one small point runs on GPU 0: the big one needs two idle GPUs, 1 and 2
    assert sorted(pool._devices("big")) == ["1", "1", "2", "2"]
    pool.free_gpus.remove("1")
    assert pool._devices("big") is None and pool._devices("small2") is not None
    cpu = _Pool(tmp_path, [], workers=2, threads=1, gpus=[], preload=False, branches={}, ranks={"big": 2})
    assert cpu._devices("big") == [] and cpu._devices("small") == []


@pytest.mark.slow
def test_a_sweep_runs_its_largest_points_on_two_ranks(tmp_path):
    from scaling.io import read_json
    from tests.test_sweep import SWEEP_TINY

    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=r", *SWEEP_TINY, "sweep.fit=false",
                     "grid.ranks.large_params=100000", "grid.ranks.large_per_point=2")
    assert result.returncode == 0, result.stderr[-3000:]
    points = read_json(tmp_path / "r" / "manifest.json")["points"]
    assert sorted(p["grid"]["ranks"] for p in points) == [1, 1, 1, 1, 2, 2]
    for p in points:
        run = tmp_path / "r" / "runs" / p["id"]
        assert read_json(run / "summary.json")["status"] == "finished"
        assert ("2 ranks (ddp)" in (run / "train.log").read_text()) == (p["grid"]["ranks"] == 2)
