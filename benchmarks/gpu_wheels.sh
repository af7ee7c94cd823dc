#!/usr/bin/env bash
# Wheels the GPU check needs that the GPU machines lack (Python 3.12, no network there), downloaded into .whl/.
# sam2, iopath and antlr4 have no wheels on PyPI: they are built here into pure-Python wheels (sam2 without its
# CUDA extension). About 44 MiB in all, holoscan-cu12 being 41 MiB of it; the travel limit is 64 MiB with the tree.
# On the GPU machine, before the check:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site python3 benchmarks/gpu_check.py
# Not brought: TensorRT (its libraries cannot be downloaded), PyAV and cupy-cuda12x (too large; cupy-cuda13x is there).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-.venv/bin/pip}"
mkdir -p .whl

PLATFORMS=()
for tag in manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    PLATFORMS+=(--platform "${tag}_x86_64")
done
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" -d .whl \
    holoscan-cu12==4.6.0 nvidia-cuda-runtime-cu12==12.9.79 wheel-axle-runtime==0.0.13 \
    hydra-core==1.3.8 omegaconf==2.3.1 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
    typing-inspection==0.4.5
SAM2_BUILD_CUDA=0 "$PIP" wheel -q --no-deps --no-build-isolation -w .whl \
    sam2==1.1.0 iopath==0.1.10 antlr4-python3-runtime==4.9.3
du -sh .whl
ls -1 .whl
