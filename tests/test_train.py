"""A real run on the real default corpus: the run directory contract, falling eval loss, determinism."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
import yaml

from scaling.config import run_id
from scaling.errors import EXIT_FAILED_JOBS
from scaling.io import read_json, read_jsonl
from scaling.trainer import train
from tests.conftest import TINY, make_config, run_cli


def _train(tmp_path, overrides=()):
    cfg, raw = make_config(tmp_path, list(overrides))
    run_dir = train(cfg, raw)
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
    # The eval loss carries its standard error over sequences and one loss per corpus source, which average back
    # to it with each source weighted by its share of the eval sequences.
    assert 0 < summary["final_val_loss_se"] < 0.1 * summary["final_val_loss"]
    by_source = summary["final_val_loss_by_source"]
    assert set(by_source) == {"shakespeare", "kjv", "austen"}
    assert min(by_source.values()) < summary["final_val_loss"] < max(by_source.values())
    train_events = [e for e in events if e["event"] == "train"]
    assert all(e["tokens_per_s"] > 0 and 0 < e["mfu"] for e in train_events)
    assert all(e["flops_6n_attention"] > e["flops_kaplan"] for e in train_events)

    assert (run_dir / "hf" / "model.safetensors").exists()
    assert not (run_dir / "checkpoints").exists()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["d_model"] == cfg.model.d_model and saved["budget"]["tokens"] == cfg.budget.tokens


def test_bf16_autocast_on_cpu_learns(tmp_path):
    _, run_dir = _train(tmp_path, ["precision=bf16", "budget.tokens=20480", "eval.interval_steps=5",
                                   "eval.tokens=4096"])
    evals = [e for e in read_jsonl(run_dir / "metrics.jsonl") if e["event"] == "eval"]
    assert all(math.isfinite(e["val_loss"]) for e in evals)
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.3


@pytest.mark.parametrize("flags,emulated", [("fpu sse avx2", True), ("fpu avx512f avx512_bf16", False),
                                            ("fpu amx_bf16 amx_tile", False)])
def test_bf16_on_a_cpu_without_bf16_units_says_so_with_the_fix(tmp_path, monkeypatch, caplog, flags, emulated):
    from pathlib import Path

    from scaling import hardware
    from scaling.config import PrecisionConfig

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor : 0\nflags : {flags}\n")
    real_path = Path
    monkeypatch.setattr(hardware, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    with caplog.at_level(logging.WARNING, logger="scaling.hardware"):
        hardware.autocast_dtype(PrecisionConfig(dtype="bf16", tf32=False), torch.device("cpu"))
    assert ("bf16 is emulated" in caplog.text and "fix: precision=fp32" in caplog.text) == emulated


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


def test_hydra_multirun_runs_every_job_and_records_overrides(tmp_path):
    """`python train.py -m a=1,2,3`: each job is its own run with its overrides; a failing job (the bad learning
    rate in the middle) is named at the end, does not stop the jobs after it, and makes the exit code non-zero."""
    from tests.conftest import TINY

    out = tmp_path / "runs"
    result = run_cli("train.py", "-m", f"run.out_dir={out}", *TINY, "budget.tokens=20480", "eval.interval_steps=0",
                     "optim.lr=1e-3,-1,3e-3")
    assert result.returncode == EXIT_FAILED_JOBS, result.stderr
    assert "optim.lr: learning rate must be positive" in result.stderr
    assert "1 job(s) of the multirun failed" in result.stderr and "job 1 (" in result.stderr
    runs = sorted(d for d in out.iterdir() if d.name != "multirun")
    recorded = {next(o for o in yaml.safe_load((d / "overrides.yaml").read_text()) if o.startswith("optim.lr="))
                for d in runs}
    assert recorded == {"optim.lr=0.001", "optim.lr=0.003"}
    assert all((d / "summary.json").exists() for d in runs)
    assert len(list((out / "multirun").glob("*/multirun.yaml"))) == 1  # hydra.sweep.dir is under run.out_dir


def wandb_records(path):
    """The records of an offline wandb run file (its header, then LevelDB-log framing of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, pending, records = path.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_offline_mirror_logs_what_metrics_jsonl_holds_and_nothing_of_the_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "marker-7b1e")  # wandb's metadata would carry the SLURM_* environment
    _, run_dir = _train(tmp_path, ["tracking=offline", "budget.tokens=20480"])
    (run_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    logged = {}
    for record in wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            logged.setdefault(items["_step"], {}).update(items)
    events = read_jsonl(run_dir / "metrics.jsonl")
    for e in events:
        key = "loss" if e["event"] == "train" else "val_loss"
        assert logged[e["step"]][key] == e[key]
    data = run_file.read_bytes()
    assert b"marker-7b1e" not in data and str(tmp_path).encode() not in data  # redacted: no environment, no paths
    assert b"tokens_per_param" in data and b"size=2x64" in data  # the grid position, as config and tags


def test_one_point_in_two_sweeps_is_two_wandb_runs(tmp_path):
    _, first = _train(tmp_path / "a", ["tracking=offline", "budget.tokens=8192", "tracking.group=sweep-a"])
    _, second = _train(tmp_path / "b", ["tracking=offline", "budget.tokens=8192", "tracking.group=sweep-b"])
    assert first.name == second.name  # the same run id
    files = [next(d.glob("wandb/offline-run-*")).name for d in (first, second)]
    assert files[0].endswith(f"sweep-a-{first.name}") and files[1].endswith(f"sweep-b-{second.name}"), files


def test_online_tracking_without_a_reachable_server_warns_at_once_and_trains(tmp_path):
    # wandb.init waited its 90 s init_timeout first: on a node without internet, every point of a sweep did.
    from types import SimpleNamespace

    from scaling.tracking import server_unreachable

    # Nothing listens on port 1: refused at once. A process of its own, as a run is: wandb reads its settings once.
    env = {"WANDB_BASE_URL": "http://127.0.0.1:1", "WANDB_API_KEY": "0" * 40,
           **{v: "" for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")}}
    result = run_cli("train.py", f"run.out_dir={tmp_path / 'runs'}", *TINY, "tracking=online", "budget.tokens=8192",
                     "run.export_hf=false", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert read_json(run_dir / "summary.json")["status"] == "finished" and not (run_dir / "wandb").exists()
    warning = ("wandb online tracking is off for this run: its server http://127.0.0.1:1 cannot be reached "
               "(Connection refused) (fix: tracking=offline")
    assert warning in result.stderr and warning in (run_dir / "train.log").read_text()
    # A base URL wandb refuses (its settings raise a ValidationError) costs the tracking, never the run.
    result = run_cli("train.py", f"run.out_dir={tmp_path / 'bad-url'}", *TINY, "tracking=online", "budget.tokens=8192",
                     "run.export_hf=false", env={**env, "WANDB_BASE_URL": "::not a url"})
    assert result.returncode == 0 and "wandb online tracking is off for this run: 1 validation error" in result.stderr
    # Behind a proxy the server is the proxy's to reach: wandb is left to try.
    behind = SimpleNamespace(base_url="http://127.0.0.1:1", https_proxy="http://proxy:3128", http_proxy=None)
    assert server_unreachable(behind) is None and "refused" in server_unreachable(
        SimpleNamespace(base_url="http://127.0.0.1:1", https_proxy=None, http_proxy=None))


def test_divergence_stops_the_run_and_marks_it(tmp_path):
    cfg, run_dir = _train(tmp_path, ["optim.lr=50", "optim.warmup_steps=0", "optim.grad_clip=0"])
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "diverged"
    assert summary["steps"] < cfg.num_steps and summary["last_good_step"] < summary["steps"]
    assert (run_dir / "metrics.jsonl").exists() and not (run_dir / "hf").exists()


def test_a_warmup_longer_than_the_run_is_a_warning_naming_the_field_in_the_console_and_train_log(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="scaling.trainer"):
        cfg, run_dir = _train(tmp_path, ["budget.tokens=8192", "optim.warmup_steps=50"])
    assert cfg.num_steps == 4
    for text in (caplog.text, (run_dir / "train.log").read_text()):
        assert "optim.warmup_steps=50 does not fit the run's 4 steps" in text
        assert "fix: lower optim.warmup_steps" in text


def test_the_training_loop_reads_device_values_only_when_it_logs(tmp_path, monkeypatch):
    """Reading a loss or a gradient norm waits for the device; the loop does it once per log interval, not per
    step (30 steps, logs every 5: at most 2 values per log, none per step)."""
    reads = []
    real_item, real_float = torch.Tensor.item, torch.Tensor.__float__

    def item(self):
        reads.append("item")
        return real_item(self)

    def as_float(self):
        reads.append("float")
        return real_float(self)

    monkeypatch.setattr(torch.Tensor, "item", item)
    monkeypatch.setattr(torch.Tensor, "__float__", as_float)
    cfg, _ = _train(tmp_path, ["eval.interval_steps=0", "run.export_hf=false"])
    assert cfg.num_steps == 30 and len(reads) <= 2 * (30 // 5)
