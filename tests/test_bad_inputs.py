"""The catalogue of bad inputs beyond config typos: each is one clear line and loses nothing already written.
(Config and data mistakes: tests/test_config.py, tests/test_data.py; fitter tables: tests/test_fit.py;
Slurm submission: tests/test_slurm.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from scaling import checkpoint
from scaling.checkpoint import CheckpointError
from scaling.hardware import gpu_peak_flops_per_s
from scaling.io import read_jsonl
from scaling.results import collect
from scaling.config import load_train_config, run_id
from scaling.sweepdir import SweepFormatError, read_frozen
from tests.conftest import ROOT, TINY, run_cli
from tests.test_sweep import SWEEP_TINY


def test_truncated_checkpoint_is_named_with_the_fix(tmp_path):
    path = checkpoint.save(tmp_path, 3, {"run_id": "abc", "x": torch.ones(1000)}, keep_last=2)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable.*delete it"):
        checkpoint.load(path, "abc")


def test_checkpoint_from_another_config_is_refused(tmp_path):
    path = checkpoint.save(tmp_path, 3, {"run_id": "abc", "x": torch.ones(3)}, keep_last=2)
    with pytest.raises(CheckpointError, match="belongs to run 'abc'"):
        checkpoint.load(path, "def")


def test_checkpoints_never_unpickle_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "checkpoints" / "step-00000001.pt"
    path.parent.mkdir()
    torch.save({"run_id": "abc", "evil": Evil()}, path)
    with pytest.raises(CheckpointError, match="unreadable"):
        checkpoint.load(path, "abc")


def test_truncated_last_metrics_line_is_skipped_but_corruption_elsewhere_is_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    path.write_text('{"step": 1}\n{"ste\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_jsonl(path)
    path.write_bytes(b'{"step": 1}\n\xff\xfe\n{"step": 3}\n')  # bytes that are not UTF-8: a UnicodeDecodeError
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_jsonl(path)


def test_unknown_gpu_logs_no_mfu():
    with pytest.warns(UserWarning, match="no peak FLOP/s known"):
        assert gpu_peak_flops_per_s("NVIDIA Imaginary 9000", "bf16") is None
    assert gpu_peak_flops_per_s("NVIDIA H100 80GB HBM3", "bf16") == 989e12


def test_output_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("train.py", f"run.out_dir={blocker / 'runs'}", *TINY)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot write" in result.stderr and "run.out_dir" in result.stderr


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps")
    result = run_cli("sweep.py", f"sweep.out_dir={out}", "sweep.name=s", *SWEEP_TINY, "grid.budgets_tokens=[16384]",
                     "sweep.fit=false")
    assert result.returncode == 0, result.stderr
    return out / "s"


def test_corrupt_summary_is_reported_and_nothing_is_overwritten(finished_sweep, tmp_path):
    import shutil

    sweep = tmp_path / "s"
    shutil.copytree(finished_sweep, sweep)
    run_dir = next((sweep / "runs").iterdir())
    (run_dir / "summary.json").write_text('{"status": "fini')
    runs, _ = collect(sweep)
    assert runs.set_index("run_id").loc[run_dir.name, "status"] == "corrupt"
    config_dir = sweep / "points" / run_dir.name
    result = run_cli("train.py", "--config-path", str(config_dir), "--config-name", "config",
                     f"run.out_dir={sweep / 'runs'}")
    assert result.returncode == 2 and "summary.json is corrupt" in result.stderr and "delete it" in result.stderr
    assert (run_dir / "summary.json").read_text() == '{"status": "fini'


@pytest.mark.parametrize("fmt", [0, 99])
def test_sweep_directory_of_another_format(finished_sweep, tmp_path, fmt):
    import shutil

    sweep = tmp_path / "s"
    shutil.copytree(finished_sweep, sweep)
    manifest = json.loads((sweep / "manifest.json").read_text())
    manifest["format"] = fmt
    (sweep / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SweepFormatError, match=f"sweep format {fmt}"):
        collect(sweep)
    out = subprocess.run([sys.executable, "-m", "scaling", "status", str(sweep)], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 2 and "format" in out.stderr and "Traceback" not in out.stderr


def test_a_directory_that_is_no_sweep_is_named_with_the_fix_of_the_command_given(tmp_path):
    # The status command was told to pass "a CSV/JSONL table", which only the fit command reads.
    from scaling.fit.table import FitInputError, load
    from scaling.launch import print_status

    with pytest.raises(SweepFormatError, match="not a sweep directory") as status_error:
        print_status(tmp_path)
    assert "CSV" not in str(status_error.value) and "python sweep.py" in str(status_error.value)
    assert "fix: pass the directory a sweep wrote" in str(status_error.value)
    # A path that does not exist was said to be "not a sweep directory (no manifest.json ...)".
    with pytest.raises(SweepFormatError, match=r"no_sweep does not exist \(fix: pass the directory a sweep wrote"):
        print_status(tmp_path / "no_sweep")
    with pytest.raises(FitInputError, match="pass a sweep directory or a CSV/JSONL table"):
        load(tmp_path)


@pytest.mark.parametrize("damage,why", [
    (b"{", "(Expecting property name enclosed in double quotes: line 1 column 2)"),
    (b'{"a\x01', "(Invalid control character at: line 1 column 4)"),  # the message read "at at line 1"
    (b"\xff\xfe{}", "(byte 0 is not UTF-8 text)"),  # a UnicodeDecodeError traceback
])
def test_a_damaged_manifest_is_one_line_with_the_fix(finished_sweep, tmp_path, damage, why):
    # It was a ValueError traceback from every command that reads the sweep.
    import shutil

    sweep = tmp_path / "s"
    shutil.copytree(finished_sweep, sweep)
    (sweep / "manifest.json").write_bytes(damage)
    out = subprocess.run([sys.executable, "-m", "scaling", "status", str(sweep)], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert f"manifest.json is not valid JSON {why}" in out.stderr
    assert "writes it again and keeps the runs" in out.stderr


@pytest.mark.parametrize("damage", ["missing", "not yaml", "edited"])
def test_a_lost_frozen_config_is_named_and_the_sweep_writes_it_again(finished_sweep, tmp_path, damage):
    # A deleted or damaged points/<id>/config.yaml was a FileNotFoundError or YAML traceback after the points ran;
    # an edited one labelled the run in the tables with settings it was not trained with, and was never written
    # again.
    import shutil

    sweep = tmp_path / "s"
    shutil.copytree(finished_sweep, sweep)
    frozen = next((sweep / "points").iterdir()) / "config.yaml"
    if damage == "missing":
        frozen.unlink()
    elif damage == "not yaml":
        frozen.write_text("x: [")
    else:
        text = frozen.read_text()
        assert text.count("\n  lr: 0.01\n") == 1
        frozen.write_text(text.replace("\n  lr: 0.01\n", "\n  lr: 0.5\n"))
    with pytest.raises(SweepFormatError, match="run `python sweep.py` with the sweep's grid again") as err:
        collect(sweep)
    if damage == "edited":
        assert "was edited after its run started: optim.lr differs from the run's own config.yaml" in str(err.value)
    again = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=s", *SWEEP_TINY,
                    "grid.budgets_tokens=[16384]", "sweep.fit=false")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "were missing, damaged or edited; written again from the grid" in again.stderr
    assert "already finished" in again.stderr
    assert run_id(load_train_config(read_frozen(frozen))) == frozen.parent.name  # the point's own computation


def test_runs_of_a_sweep_trained_by_two_versions_of_torch_are_noted_where_the_fit_is_read(finished_sweep, tmp_path):
    # A sweep grown or resumed across an upgrade keeps its finished runs (the run id hashes the config, not the code);
    # the fit mixed them without a word.
    import shutil

    from scaling.fit.table import from_sweep

    sweep = tmp_path / "s"
    shutil.copytree(finished_sweep, sweep)
    assert from_sweep(sweep).notes == []  # one torch, one code: nothing to say
    summary = next((sweep / "runs").iterdir()) / "summary.json"
    recorded = json.loads(summary.read_text())
    assert recorded["versions"]["scaling"] and recorded["versions"]["torch"]
    recorded["versions"]["torch"] = "2.0.0"
    summary.write_text(json.dumps(recorded))
    (note,) = from_sweep(sweep).notes
    assert note.startswith("the runs were trained by 2 versions of torch (") and "2.0.0: 1 run" in note
    assert "(fix: to fit the runs of one, move the other's run directories aside" in note
    fitted = subprocess.run([sys.executable, "-m", "scaling", "fit", str(sweep), "--out", str(tmp_path / "fit"),
                             "--bootstrap", "0", "--approach", "kaplan"], cwd=ROOT, capture_output=True, text=True)
    assert f"note: {note}" in fitted.stderr
    assert note in json.loads((tmp_path / "fit" / "fit.json").read_text())["notes"]


@pytest.mark.parametrize("damage", ["deleted", "emptied", "evals cut"])
def test_a_finished_run_without_its_evaluation_history_is_noted_where_the_fit_is_read(finished_sweep, tmp_path,
                                                                                      damage):
    # Approach 1 reads its envelope from metrics.jsonl: without the file, the run left the envelope without a word.
    import shutil

    from scaling.fit.table import from_sweep

    sweep = tmp_path / "s"
    shutil.copytree(finished_sweep, sweep)
    run = sorted((sweep / "runs").iterdir())[0]
    metrics = run / "metrics.jsonl"
    if damage == "deleted":
        metrics.unlink()
    elif damage == "emptied":
        metrics.write_text("")
    else:
        metrics.write_text("".join(line + "\n" for line in metrics.read_text().splitlines() if '"eval"' not in line))
    table = from_sweep(sweep)
    (note,) = table.notes
    assert note.startswith(f"1 of the {len(table.points)} fitted runs have no evaluation history ({run.name}: ")
    assert "approach 1's envelope lacks them" in note and "(fix: delete their run directories" in note
    assert run.name in set(table.points.run_id)  # its final loss is still fitted


def test_manifest_ids_cannot_escape_the_sweep(finished_sweep, tmp_path):
    import shutil

    sweep = tmp_path / "s"
    shutil.copytree(finished_sweep, sweep)
    manifest = json.loads((sweep / "manifest.json").read_text())
    manifest["points"][0]["id"] = "../../etc"
    (sweep / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SweepFormatError, match="not a valid point id"):
        collect(sweep)


def test_sbatch_missing_leaves_the_script_for_a_hand_submission(tmp_path):
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=nos", "grid=tiny", "launcher=slurm",
                     env={"PATH": os.path.dirname(sys.executable)})
    assert result.returncode == 2 and "sbatch not found" in result.stderr
    assert (tmp_path / "nos" / "slurm" / "sweep.sbatch").exists()


def test_a_different_grid_in_the_same_sweep_directory_is_refused(finished_sweep, tmp_path):
    result = run_cli("sweep.py", f"sweep.out_dir={finished_sweep.parent}", "sweep.name=s", *SWEEP_TINY,
                     "grid.budgets_tokens=[32768]")
    assert result.returncode == 2 and "already holds a different grid" in result.stderr


def test_another_convention_pair_for_a_frozen_sweep_is_refused(finished_sweep):
    result = run_cli("sweep.py", f"sweep.out_dir={finished_sweep.parent}", "sweep.name=s", *SWEEP_TINY,
                     "grid.budgets_tokens=[16384]", "sweep.fit_params=non_embedding")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "sweep.fit_params" in result.stderr and "fits under params=total" in result.stderr
    assert "--params" in result.stderr


def test_a_sweep_frozen_without_a_convention_pair_gains_it_when_run_again(finished_sweep, tmp_path):
    import shutil

    sweep = tmp_path / "s"
    shutil.copytree(finished_sweep, sweep)
    manifest = json.loads((sweep / "manifest.json").read_text())
    del manifest["conventions"]
    (sweep / "manifest.json").write_text(json.dumps(manifest))
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=s", *SWEEP_TINY,
                     "grid.budgets_tokens=[16384]", "sweep.fit=false")
    assert result.returncode == 0, result.stderr
    manifest["conventions"] = {"params": "total", "flops": "6n_attention"}
    assert json.loads((sweep / "manifest.json").read_text()) == manifest


def test_run_busy_in_another_process(tmp_path):
    from filelock import FileLock

    from tests.conftest import make_config
    from scaling.config import run_id

    cfg, _ = make_config(tmp_path)
    run_dir = tmp_path / "runs" / run_id(cfg)
    run_dir.mkdir(parents=True)
    with FileLock(str(run_dir / ".lock")):
        result = run_cli("train.py", f"run.out_dir={tmp_path / 'runs'}", *TINY)
    assert result.returncode == 4 and "being trained by another process" in result.stderr
