#!/usr/bin/env bash
# Download, here (where PyPI is reachable), the wheels the lent GPU machine lacks, for bench/gpu_check.sh to install
# there offline. That machine (see /work/.library/device/KINDS.md) runs Python 3.12 with torch 2.11, transformers,
# accelerate, safetensors, huggingface_hub, numpy, pyyaml, pillow, regex and requests, but no diffusers, pydantic or
# PyAV, and has no network. The bench needs no PyAV (bench/validation_memory.py discards its video without it; the
# wheel alone is 36 MB of the 64 MiB a call may carry).
#
#   bash bench/fetch_gpu_wheels.sh            # -> bench/wheels/ (ignored by git; carry it: carry=["bench/wheels"])
#
# Pure-Python wheels fit any platform; pydantic-core is compiled: cp312, manylinux 2014 (glibc 2.17) x86-64.
# Versions are those this project is tested with (the .venv here). --no-deps: every package the machine lacks is
# named below, one version each (two versions of one package stop the offline install). torchao is only for the
# optional quantized-base case (WITH_QUANT=1 bench/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-bench/wheels}
PY=${PY:-.venv/bin/python}
PACKAGES=(
  diffusers==0.42.1
  importlib_metadata==10.2.0   # diffusers imports it; the machine has zipp but not it
  lazy-importer==0.1.0         # importlib_metadata 10 needs it
  pydantic==2.14.4
  pydantic_core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing_extensions==4.16.0    # pydantic 2.14 needs >= 4.16; the machine's may be older
  peft==0.21.2                 # the machine's peft may be older than the one the trainer is tested with
  torchao==0.18.0              # WITH_QUANT=1 only: int8-/fp8-torchao base
)
mkdir -p "$DEST"
rm -f "$DEST"/*.whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 \
  --abi none --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_28_x86_64 --platform any -d "$DEST" "${PACKAGES[@]}"
ls -l "$DEST"
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
echo "bench/fetch_gpu_wheels.sh: $(ls "$DEST"/*.whl | wc -l) wheels, $((total / 1024 / 1024)) MiB in $DEST (a call carries 64 MiB with the working tree)"
if [ "$total" -gt $((32 * 1024 * 1024)) ]; then
  echo "bench/fetch_gpu_wheels.sh: over 32 MiB; with the working tree this may not fit the 64 MiB a call carries" >&2
  exit 1
fi
