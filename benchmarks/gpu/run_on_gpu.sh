#!/usr/bin/env bash
# Runs benchmark_gpu.py on the GPU machine, from the repository root, with the wheels of
# fetch_wheels.sh in .whl/ (carried along): installs them beside the machine's own JAX and
# PyTorch, then writes the figures to $OUT (or benchmarks/results/) and prints the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices(), torch.__version__)"
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
python3 benchmarks/gpu/benchmark_gpu.py --output "$out/gpu.json" "$@"
