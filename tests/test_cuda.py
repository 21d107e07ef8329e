"""The CUDA path: bf16 autocast, fp16 with a GradScaler, TF32, fused AdamW, flash/SDPA attention, MFU from the
peak table. Skipped without a GPU (run `pytest -m cuda` on a GPU box)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import make_config
from scaling.cli import frozen_yaml
from scaling.trainer import train

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("precision", ["bf16", "fp16", "tf32"])
def test_tiny_run_on_cuda(tmp_path, precision):
    cfg, raw = make_config(tmp_path, [f"precision={precision}", "run.device=cuda", "run.cpu_peak_flops_per_s=null"])
    run_dir = train(cfg, frozen_yaml(raw, tmp_path))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["device"].startswith("cuda")
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["event"] == "eval"]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    known_gpu = any(name in torch.cuda.get_device_name() for name in ("H100", "H200", "A100", "L40S", "A10G", "L4"))
    assert all((e["mfu"] is not None) == known_gpu for e in events if e["event"] == "train")


def test_cuda_out_of_memory_names_the_micro_batch(tmp_path):
    cfg, raw = make_config(tmp_path, ["run.device=cuda", "model.d_model=8192", "model.num_heads=64",
                                      "budget.micro_batch_size=16", "budget.batch_tokens=65536",
                                      "model.seq_len=4096", "budget.tokens=65536", "eval.tokens=65536"])
    from scaling.trainer import OutOfMemory

    with pytest.raises(OutOfMemory, match="budget.micro_batch_size=8"):
        train(cfg, frozen_yaml(raw, tmp_path))
