#!/usr/bin/env bash
# One short GPU check for a lent accelerator (run from the repo root, with the project's .venv carried over or
# installed). Prints s/step and peak GPU memory for:
#   1. LTX-Video 2B, LoRA rank 32, 768x448x89, bf16 (gradient checkpointing off and on)
#   2. LTX-Video 13B, LoRA rank 32, 512x512x49, bf16, gradient checkpointing on
#   3. peak memory of one validation (704x480x161, CFG, VAE decode) against the training step (2B, 768x448x89)
#   4. LTX-2 19B, audio-video LoRA rank 32, 768x512x121 with its 121 audio latents, bf16, gradient checkpointing on
# Weights are random (the real architectures, no download), which does not change speed or memory. --predict prints
# the memory plan's predicted peak (ltx_train_lib.memory, from configs only) beside each measured one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
$PY bench/train_step.py --model 2B --bucket 768x448x89 --rank 32 --precision bf16 --steps 5 --warmup 2 --compare gc=off gc=on --predict
$PY bench/train_step.py --model 13B --bucket 512x512x49 --rank 32 --precision bf16 --steps 3 --warmup 1 --gradient-checkpointing --predict
$PY bench/validation_memory.py --model 2B --bucket 768x448x89 --rank 32 --validation-dims 704x480x161 --inference-steps 2 --predict
$PY bench/train_step.py --model 19B --bucket 768x512x121 --rank 32 --precision bf16 --steps 3 --warmup 1 --gradient-checkpointing --predict
