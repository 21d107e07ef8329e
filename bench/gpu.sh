#!/usr/bin/env bash
# The GPU benchmarks as one prepared script (about 5 minutes on an H100/H200): a ~100M-parameter Llama in bf16
# (eager and torch.compile) for tokens/s and MFU, then a tiny grid run one point per GPU vs four per GPU.
# Needs the package installed with a CUDA build of torch (README); writes bench/results/<date>-gpu.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export TORCHINDUCTOR_CACHE_DIR="$PWD/.cache/inductor"
mkdir -p bench/results
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$PYTHON" -m bench.gpu | tee "bench/results/$(date -u +%Y-%m-%d)-gpu.json"
