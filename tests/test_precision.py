"""precision=auto: bf16 only where this device runs the model faster in it; the choice is written into the config
(and so the run id and summary) before anything runs, and a sweep makes it once for all its points."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
import yaml

from scaling import precision
from scaling.config import PrecisionConfig
from scaling.hardware import PrecisionError, autocast_dtype
from scaling.sweepdir import read_frozen
from tests.conftest import TINY, make_config, run_cli
from tests.test_sweep import SWEEP_TINY

CPU = torch.device("cpu")


@pytest.fixture
def model(tmp_path):
    return make_config(tmp_path)[0].model


def test_a_cpu_without_bf16_units_gets_fp32_without_a_probe(tmp_path, model, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(precision, "bf16_speedup", lambda *a: pytest.fail("probed a CPU that emulates bf16"))
    assert precision.choose(model, CPU, 1, tmp_path)[0] == "fp32"


@pytest.mark.parametrize("speedup, expected", [(1.6, "bf16"), (1.02, "fp32")])
def test_the_measured_speedup_decides_once_per_machine_and_shape(tmp_path, model, monkeypatch, speedup, expected):
    calls = []
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(precision, "bf16_speedup", lambda *a: calls.append(a) or speedup)
    dtype, why = precision.choose(model, CPU, 1, tmp_path)
    assert dtype == expected and f"{speedup:.2f}x" in why
    assert precision.choose(model, CPU, 1, tmp_path)[0] == expected
    assert len(calls) == 1  # the second choice came from the cache
    wider = type(model)(**{**model.__dict__, "d_model": 2 * model.d_model})
    precision.choose(wider, CPU, 1, tmp_path)
    assert len(calls) == 2  # another shape is measured on its own


def test_the_probe_times_both_dtypes_on_the_real_model(model):
    speedup = precision.bf16_speedup(model, 1)
    assert math.isfinite(speedup) and speedup > 0
    assert torch.get_num_threads() == 1


def test_the_trainer_refuses_an_unresolved_auto():
    with pytest.raises(PrecisionError, match="precision.dtype=auto"):
        autocast_dtype(PrecisionConfig(dtype="auto", tf32=False), CPU)


def test_a_run_records_the_dtype_auto_chose(tmp_path):
    out = tmp_path / "runs"
    result = run_cli("train.py", f"run.out_dir={out}", *TINY, "budget.tokens=20480", "precision=auto")
    assert result.returncode == 0, result.stderr
    assert "precision=auto: " in result.stderr
    run_dir = next(out.iterdir())
    chosen = read_frozen(run_dir / "config.yaml")["precision"]["dtype"]
    assert chosen in ("fp32", "bf16")
    assert json.loads((run_dir / "summary.json").read_text())["dtype"] == chosen
    assert "precision=auto" in yaml.safe_load((run_dir / "overrides.yaml").read_text())
    # The same run as asking for that dtype by name: same config, same run id, so it is not trained again.
    again = run_cli("train.py", f"run.out_dir={out}", *TINY, "budget.tokens=20480", f"precision={chosen}")
    assert again.returncode == 0 and "already finished" in again.stderr


def test_a_sweep_chooses_one_dtype_for_every_point(tmp_path):
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=p", *SWEEP_TINY, "sweep.fit=false",
                     "precision=auto", "grid.budgets_tokens=[16384]")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(re.findall(r"precision=auto: (fp32|bf16) \(", result.stderr)) == 1  # one decision
    dtypes = {read_frozen(c)["precision"]["dtype"] for c in (tmp_path / "p" / "points").glob("*/config.yaml")}
    assert len(dtypes) == 1 and dtypes <= {"fp32", "bf16"}
