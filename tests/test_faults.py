"""Faults that used to leave a silently wrong result or lose work, each injected the way it really happens."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from scaling import checkpoint
from scaling.checkpoint import CheckpointError
from scaling.config import run_id
from scaling.io import atomic_write_text
from scaling.sweepdir import point_status
from scaling.tracking import MetricsLog
from scaling.trainer import train
from tests.conftest import TINY, make_config, run_cli
from tests.test_sweep import SWEEP_TINY


def test_disk_full_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    good = checkpoint.save(tmp_path, 3, {"run_id": "abc", "x": torch.ones(10)}, keep_last=2)
    real_save = torch.save

    def onto_a_full_disk(obj, f):  # the real failure: torch's own writer on a device with no space left
        real_save(obj, "/dev/full")

    monkeypatch.setattr(torch, "save", onto_a_full_disk)
    with pytest.raises(CheckpointError, match="cannot write .*step-00000006.pt.*free space or set run.out_dir"):
        checkpoint.save(tmp_path, 6, {"run_id": "abc", "x": torch.ones(1000)}, keep_last=2)
    assert checkpoint.latest(tmp_path) == good
    assert torch.equal(checkpoint.load(good, "abc")["x"], torch.ones(10))
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [good.name]


def test_shards_go_with_their_checkpoint_and_a_killed_saves_shards_are_cleared(tmp_path):
    for step in (1, 2):  # sharded checkpoints: the ranks' directory, then the file naming it
        checkpoint.shard_dir(tmp_path, step).mkdir(parents=True)
        checkpoint.save(tmp_path, step, {"run_id": "abc", "shards": checkpoint.shard_dir(tmp_path, step).name}, 2)
    checkpoint.shard_dir(tmp_path, 3).mkdir()  # a save killed after the shards, before its file
    newest = checkpoint.save(tmp_path, 4, {"run_id": "abc", "x": torch.ones(1)}, keep_last=2)
    assert checkpoint.latest(tmp_path) == newest
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-00000002.dcp", "step-00000002.pt", "step-00000004.pt"]
    kept = tmp_path / "checkpoints" / "step-00000002.pt"
    assert checkpoint.shards_of(kept, checkpoint.load(kept, "abc")) == checkpoint.shard_dir(tmp_path, 2)
    assert checkpoint.shards_of(newest, checkpoint.load(newest, "abc")) is None


@pytest.mark.parametrize("content", ["null", "{}", '{"status": "finished"}', "[1, 2]"])
def test_a_summary_that_is_not_a_summary_never_counts_as_finished(tmp_path, content):
    cfg, raw = make_config(tmp_path)
    run_dir = tmp_path / "runs" / run_id(cfg)
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(content)
    assert point_status(run_dir)[0] == "corrupt"
    result = run_cli("train.py", f"run.out_dir={tmp_path / 'runs'}", *TINY)
    assert result.returncode == 2 and "summary.json" in result.stderr and "delete it" in result.stderr
    assert (run_dir / "summary.json").read_text() == content


def test_a_run_finished_while_waiting_for_its_lock_is_not_trained_again(tmp_path, monkeypatch):
    cfg, raw = make_config(tmp_path)
    first = train(cfg, raw)
    summary = (first / "summary.json").read_text()
    metrics = (first / "metrics.jsonl").read_text()
    # Another process finishes the run between our check of summary.json and our taking the lock.
    (first / "summary.json").rename(first / "summary.moved")
    from filelock import FileLock

    real_acquire = FileLock.acquire

    def finish_then_acquire(self, *args, **kwargs):
        if (first / "summary.moved").exists():
            (first / "summary.moved").rename(first / "summary.json")
        return real_acquire(self, *args, **kwargs)

    monkeypatch.setattr(FileLock, "acquire", finish_then_acquire)
    train(cfg, raw)
    assert (first / "summary.json").read_text() == summary and (first / "metrics.jsonl").read_text() == metrics


def test_metrics_are_rewritten_atomically_on_resume(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    original = "".join(json.dumps({"event": "train", "step": s}) + "\n" for s in range(1, 11))
    path.write_text(original)
    calls = []
    real_dumps = json.dumps

    def failing_dumps(obj, *args, **kwargs):
        calls.append(obj)
        if len(calls) > 3:
            raise OSError(28, "No space left on device")
        return real_dumps(obj, *args, **kwargs)

    monkeypatch.setattr(json, "dumps", failing_dumps)
    with pytest.raises(OSError):
        MetricsLog(path, resume_after_step=5)
    assert path.read_text() == original  # a failed rewrite leaves the old file whole


def test_a_corrupt_metrics_line_on_resume_is_one_line(tmp_path):
    import signal

    from tests.test_reliability import RUN, start, wait_for_step

    out = tmp_path / "runs"
    proc = start("train.py", f"run.out_dir={out}", *RUN)
    run_dir = wait_for_step(out, 7, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait() == 3
    lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[1] = lines[1][:10] + "\n"  # a line damaged in the middle of the file, not a truncated last line
    (run_dir / "metrics.jsonl").write_text("".join(lines))
    result = run_cli("train.py", f"run.out_dir={out}", *RUN)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "metrics.jsonl: line 2" in result.stderr


def test_files_are_written_with_the_umask_so_a_team_can_read_them(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o644


def test_replacing_a_corpus_file_rebuilds_the_tokens_and_is_a_new_run(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"the first text, line {i}, about cats and dogs.\n" for i in range(3000)))
    common = ["data=files", f"data.paths=[{corpus}]", "data.tokenizer.kind=bytes", "data.tokenizer.vocab_size=256",
              f"data.cache_dir={tmp_path / 'cache'}", "data.val_fraction=0.2", "budget.tokens=20480",
              "eval.tokens=2048"]
    cfg_a, raw_a = make_config(tmp_path, common)
    run_a = train(cfg_a, raw_a)
    corpus.write_text("".join(f"a second text, line {i}, about ships and storms at sea.\n" for i in range(3000)))
    cfg_b, raw_b = make_config(tmp_path, common)
    assert run_id(cfg_b) != run_id(cfg_a)
    run_b = train(cfg_b, raw_b)
    assert run_b != run_a
    loss = [json.loads((d / "summary.json").read_text())["final_val_loss"] for d in (run_a, run_b)]
    assert loss[0] != loss[1]


def test_a_binary_corpus_file_is_named_and_leaves_no_run_directory(tmp_path):
    corpus = tmp_path / "data.txt"
    corpus.write_bytes(bytes(range(256)) * 200)
    result = run_cli("train.py", f"run.out_dir={tmp_path / 'runs'}", *TINY, "data=files",
                     f"data.paths=[{corpus}]", f"data.cache_dir={tmp_path / 'cache'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(corpus) in result.stderr and "UTF-8" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("override,field", [
    ("sweep.fit_params=nonembedding", "sweep.fit_params"),
    ("launcher.workers=0", "launcher.workers"),
    ("launcher.threads_per_worker=0", "launcher.threads_per_worker"),
    ("run.device=cudax", "run.device"),
])
def test_sweep_mistakes_are_refused_before_any_point_runs(tmp_path, override, field):
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=m", *SWEEP_TINY, override, timeout=60)
    assert result.returncode == 2 and field in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


def test_relative_corpus_paths_are_resolved_where_the_user_ran_the_sweep(tmp_path):
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "corpus.txt").write_text("".join(f"plain words, line {i}, for a tiny corpus.\n"
                                                           for i in range(4000)))
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path / 'sweeps'}", "sweep.name=rel", *SWEEP_TINY,
                     "data=files", "data.paths=[corpus.txt]", "data.tokenizer.kind=bytes",
                     "data.tokenizer.vocab_size=256", "data.val_fraction=0.2", "grid.budgets_tokens=[16384]",
                     "sweep.fit=false", "eval.tokens=2048",
                     cwd=tmp_path / "here")
    assert result.returncode == 0, result.stderr[-2000:]
    import yaml

    for config in (tmp_path / "sweeps" / "rel" / "points").glob("*/config.yaml"):
        assert yaml.safe_load(config.read_text())["data"]["paths"] == [str(tmp_path / "here" / "corpus.txt")]


def test_sbatch_values_with_a_trailing_newline_are_refused():
    from scaling.config import ConfigError
    from scaling.launch import _safe

    with pytest.raises(ConfigError, match="launcher.partition"):
        _safe("partition", "gpu\n")


def test_the_test_time_study_reads_the_sweep_through_the_validating_reader(tmp_path):
    from scaling.config import TaskConfig, parse
    from scaling.sweepdir import SweepFormatError
    from scaling.testtime.study import TestTimeConfig, run_study
    from tests.conftest import compose_raw

    raw = compose_raw(["experiment=testtime", "sweep.name=t"], config_name="sweep")
    cfg = parse(TestTimeConfig, raw["testtime"], "testtime.")
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "name": "t", "kind": "cartesian",
                                                        "points": [{"id": "../../etc", "grid": {}}]}))
    with pytest.raises(SweepFormatError, match="not a valid point id"):
        run_study(tmp_path, cfg, parse(TaskConfig, raw["data"]["task"], "data.task."), 1)


def test_a_test_time_study_whose_points_all_failed_says_so_instead_of_failing_in_its_figures(tmp_path, caplog):
    """Every point failed (the sweep then names them and exits 1 after its steps): the study has no model and says
    so in one line, where it used to end in a traceback from matplotlib drawing panels for no model."""
    from scaling.config import TaskConfig, parse
    from scaling.testtime.study import TestTimeConfig, run_study
    from tests.conftest import compose_raw

    raw = compose_raw(["experiment=testtime", "sweep.name=t"], config_name="sweep")
    cfg = parse(TestTimeConfig, raw["testtime"], "testtime.")
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "name": "t", "kind": "cartesian",
                                                        "points": [{"id": "a1b2c3d4e5f6", "grid": {}}]}))
    assert run_study(tmp_path, cfg, parse(TaskConfig, raw["data"]["task"], "data.task."), 2) == {}
    assert "no point of" in caplog.text and "nothing to study" in caplog.text
