"""One point on every visible GPU: a ~100M and a ~1B model in bf16 under DDP and FSDP2, each a short run started
by torchrun, against one rank with the same global batch. Reports tokens/s and MFU (against the GPUs' summed bf16
peak) from the runs' own metrics, and the gap between the multi-rank and the one-rank loss.

``python -m bench.gpu_ranks OUT.json`` (bench/gpu.sh runs it). ``--smoke`` runs the same code on this CPU with two
gloo ranks and the tiny model, to check the script itself where no GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"llama_124m": ["model=llama_124m"], "llama_1b": ["model=llama_1b"]}
GPU = ["precision=bf16", "run.device=cuda", "budget.tokens=1966080", "budget.micro_batch_size=8",
       "run.log_interval_steps=5", "eval.interval_steps=0", "eval.tokens=65536", "run.export_hf=false",
       "run.progress=false", "tracking=off"]
SMOKE = ["run.device=cpu", "budget.tokens=40960", "budget.micro_batch_size=4", "model.seq_len=64",
         "run.log_interval_steps=2", "eval.interval_steps=0", "eval.tokens=4096", "run.export_hf=false",
         "run.progress=false", "tracking=off", "run.cpu_peak_flops_per_s=1e11"]


def _run(out: Path, ranks: int, args: list[str]) -> list[dict]:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"] if ranks > 1 else []
    result = subprocess.run([sys.executable, *launcher, str(ROOT / "train.py"), f"run.out_dir={out}", *args],
                            cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} on {ranks} rank(s) failed:\n{result.stderr[-3000:]}")
    (run_dir,) = [d for d in out.iterdir() if d.is_dir()]
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def measure(ranks: int, smoke: bool) -> list[dict]:
    rows = []
    models = {"llama_tiny": []} if smoke else MODELS
    for name, model in models.items():
        # The global batch: 2 micro-batches per rank of the multi-rank run, all of them on the one rank.
        micro, seq = (4, 64) if smoke else (8, 1024)
        args = [*(SMOKE if smoke else GPU), *model, f"budget.batch_tokens={2 * ranks * micro * seq}"]
        with tempfile.TemporaryDirectory() as tmp:
            one = _run(Path(tmp) / "one", 1, args)
            for parallel in ("ddp", "fsdp"):
                many = _run(Path(tmp) / parallel, ranks, [*args, f"run.parallel={parallel}"])
                train = [e for e in many if e["event"] == "train"][1:]  # the first window holds start-up
                loss_one, loss_many = ([e["loss"] for e in m if e["event"] == "train"][-1] for m in (one, many))
                rows.append({"model": name, "parallel": parallel, "ranks": ranks,
                             "tokens_per_s": statistics.median(e["tokens_per_s"] for e in train),
                             "mfu": statistics.median(e["mfu"] for e in train),
                             "final_loss": loss_many, "one_rank_final_loss": loss_one,
                             "loss_gap": loss_many / loss_one - 1})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_ranks")
    parser.add_argument("out", type=Path)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        ranks = 2
    else:
        import torch

        ranks = torch.cuda.device_count()
        if ranks < 2:
            print("fewer than 2 GPUs visible: no multi-rank measurement")
            return
    rows = measure(ranks, args.smoke)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, "ranks": rows}, indent=1))
    for r in rows:
        print(f"{r['model']} {r['parallel']} x{r['ranks']}: {r['tokens_per_s']:,.0f} tokens/s, MFU "
              f"{100 * r['mfu']:.1f}%, loss {r['final_loss']:.4f} vs one rank {r['one_rank_final_loss']:.4f} "
              f"({100 * r['loss_gap']:+.3f}%)")


if __name__ == "__main__":
    main()
