#!/usr/bin/env bash
# The GPU benchmarks as one prepared script (about 6 minutes on an H100/H200, plus a few with several GPUs): a
# ~100M-parameter Llama in bf16 (eager and torch.compile) for tokens/s and MFU, then 8 small points with 4 workers,
# one point per GPU at a time vs four sharing each GPU; with two GPUs or more, a ~100M and a ~1B model on all of
# them under DDP and FSDP2 (torchrun), each against one rank with the same global batch (bench/gpu_ranks.py).
# Writes bench/results/<date>-gpu.json.
# Needs the package installed with a CUDA build of torch (README). On a GPU box without internet, bring wheels of
# every dependency in pyproject.toml that the box lacks (at least hydra-core, omegaconf, antlr4-python3-runtime,
# datasets, tokenizers, transformers, safetensors, filelock, pandas, scipy, matplotlib, tqdm, wandb) and the token
# cache of data=classics (copy .cache/scaling to $SCALING_CACHE_DIR there).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export TORCHINDUCTOR_CACHE_DIR="$PWD/.cache/inductor"
mkdir -p bench/results
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
# Results are written as each measurement finishes, so a failure keeps the figures taken before it.
"$PYTHON" -m bench.gpu "bench/results/$(date -u +%Y-%m-%d)-gpu.json"
"$PYTHON" -m bench.gpu_ranks "bench/results/$(date -u +%Y-%m-%d)-gpu.json"
