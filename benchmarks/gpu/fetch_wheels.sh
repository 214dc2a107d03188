#!/usr/bin/env bash
# Downloads, here (with network), the wheels that benchmark_gpu.py needs on a GPU machine that
# has JAX, PyTorch and Python 3.12 but neither Keras nor diffusers, and no network: Keras and
# what it needs beyond that machine's packages (namex, optree), diffusers and importlib_metadata.
# They go to .whl/ in the repository root (kept out of git), which run_on_gpu.sh installs.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
mkdir -p .whl
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
           manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl \
    keras==3.15.1 namex==0.1.0 optree==0.20.0 diffusers==0.42.1 importlib_metadata
ls -l .whl
