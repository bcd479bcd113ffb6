#!/usr/bin/env bash
# One short GPU check for a lent accelerator (run from anywhere; it works in the repo root). Prints s/step and peak
# GPU memory, with the memory plan's predicted peak beside each measured one (--predict), for:
#   1. LTX-Video 2B, LoRA rank 32, 768x448x89, bf16 (gradient checkpointing off and on)
#   2. LTX-Video 13B, LoRA rank 32, 512x512x49, bf16, gradient checkpointing on
#   3. peak memory of one validation (704x480x161, CFG, VAE decode) against the training step (2B, 768x448x89)
#   4. LTX-2 19B, audio-video LoRA rank 32, 768x512x121 with its 121 audio latents, bf16, gradient checkpointing on
#   5. (WITH_QUANT=1 only) 2B with the frozen base as configured, int8-torchao and fp8-torchao
# Weights are random (the real architectures, no download), which does not change speed or memory.
#
# The lent machine has its own Python (torch, transformers, accelerate, peft) but no diffusers or pydantic and no
# network: wheels fetched here by `bash bench/fetch_gpu_wheels.sh` into bench/wheels/ (carried along) are installed
# offline into a separate folder put first on PYTHONPATH. That machine's torch is never touched (--no-deps: nothing
# is resolved from an index, torch is not among the wheels).
#
#   bash bench/gpu_check.sh                # install the carried wheels (if any), check the imports, run cases 1-4
#   bash bench/gpu_check.sh --dry-run      # install and check the imports only (INSTALL_ONLY=1 does the same)
#   PY=python3.12 WITHOUT_TORCH=1 bash bench/gpu_check.sh --dry-run   # the same where that Python has no torch
#
# Time: cases 1-4 are planned to end within 8 minutes on an H200 (each has its own limit, CASE_LIMITS, below; one
# that runs out is reported and the next one runs). The summary prints each case's time and status.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
WHEELS=${WHEELS:-bench/wheels}
SITE=${SITE:-/tmp/ltx_bench_site}
INSTALL_ONLY=${INSTALL_ONLY:-0}
WITH_QUANT=${WITH_QUANT:-0}
[ "${1:-}" = "--dry-run" ] && INSTALL_ONLY=1
export PYTHONUNBUFFERED=1
T0=$(date +%s)

install_wheels() {
  # Nothing carried: the environment is used as it is (the project's .venv, say).
  compgen -G "$WHEELS/*.whl" >/dev/null || { echo "gpu_check: no wheels in $WHEELS; using $PY as it is"; return 0; }
  local wheels=()
  for w in "$WHEELS"/*.whl; do
    # torchao only for case 5: an installed torchao that does not suit this torch would break every peft LoRA
    # (peft imports it when it is there).
    case "$(basename "$w")" in torchao-*) [ "$WITH_QUANT" = 1 ] || continue ;; esac
    wheels+=("$w")
  done
  echo "gpu_check: installing ${#wheels[@]} wheels offline into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" \
    || { echo "gpu_check: the offline install failed" >&2; exit 1; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
}

check_imports() {
  # Every package the bench imports, with its version; and every carried wheel's requirements met by what is
  # installed (a missing or too old one is named, so a run does not fail half-way on an import).
  "$PY" - "$WHEELS" <<'EOF'
import glob, importlib, importlib.metadata as md, os, sys, zipfile
import ltx_train_lib  # first: it filters the import-time warnings of torchao and diffusers (library_noise)
from packaging.requirements import Requirement
bad = []
# WITHOUT_TORCH=1: the dry run on a workstation whose Python 3.12 has no torch; what needs torch is left out.
no_torch = os.environ.get("WITHOUT_TORCH") == "1"
names = ["torch", "diffusers", "transformers", "peft", "accelerate", "safetensors", "huggingface_hub", "pydantic", "yaml",
         "numpy", "ltx_train_lib.config", "ltx_train_lib.memory.plan", "ltx_train_lib.training.strategy"]
if no_torch:
    names = [n for n in names if n not in ("torch", "peft", "accelerate", "ltx_train_lib.memory.plan",
                                           "ltx_train_lib.training.strategy")]
for name in names:
    try:
        mod = importlib.import_module(name)
        print(f"  {name:<32} {getattr(mod, '__version__', '')}  {os.path.dirname(mod.__file__ or '')}")
    except Exception as exc:  # noqa: BLE001
        bad.append(f"import {name}: {type(exc).__name__}: {exc}")
for name in ("av", "torchao", "bitsandbytes"):
    try:
        print(f"  {name:<32} {md.version(name)} (optional)")
    except md.PackageNotFoundError:
        print(f"  {name:<32} not installed (optional)")
env = {"python_version": f"{sys.version_info.major}.{sys.version_info.minor}", "extra": ""}
for wheel in sorted(glob.glob(os.path.join(sys.argv[1], "*.whl"))):
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if (req.marker and not req.marker.evaluate(env)) or (no_torch and req.name == "torch"):
            continue
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            if not os.path.basename(wheel).startswith("torchao-"):
                bad.append(f"{os.path.basename(wheel)} needs {req}: not installed")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            bad.append(f"{os.path.basename(wheel)} needs {req}: {have} is installed")
if bad:
    print("gpu_check: the environment cannot run the bench:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
print("gpu_check: imports and requirements OK")
EOF
}

SUMMARY=()
run_case() {  # run_case NAME LIMIT_S COMMAND...: the case's output as it runs, then its time and status
  local name=$1 limit=$2 start rc status
  shift 2
  echo
  echo "=== $name (limit ${limit}s)"
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  case $rc in 0) status=ok ;; 124|137) status="ran out of its ${limit}s" ;; *) status="failed (exit $rc)" ;; esac
  SUMMARY+=("$(printf '%-44s %4ss  %s' "$name" "$(( $(date +%s) - start ))" "$status")")
}

install_wheels
check_imports || exit 1
echo "gpu_check: install and import check took $(( $(date +%s) - T0 ))s"
[ "$INSTALL_ONLY" = 1 ] && exit 0

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch sees no CUDA GPU here; the cases are sized for one (an H200), nothing measured"
  exit 0
fi
# Limits in seconds, 460 in all: with the install the whole check stays under 8 minutes.
run_case "1. 2B 768x448x89 gc off/on" 90 \
  "$PY" bench/train_step.py --model 2B --bucket 768x448x89 --rank 32 --precision bf16 --steps 5 --warmup 2 --compare gc=off gc=on --predict
run_case "2. 13B 512x512x49 gc" 120 \
  "$PY" bench/train_step.py --model 13B --bucket 512x512x49 --rank 32 --precision bf16 --steps 3 --warmup 1 --gradient-checkpointing --predict
run_case "3. 2B validation 704x480x161 vs training" 100 \
  "$PY" bench/validation_memory.py --model 2B --bucket 768x448x89 --rank 32 --validation-dims 704x480x161 --inference-steps 2 --predict
run_case "4. LTX-2 19B 768x512x121 audio-video gc" 150 \
  "$PY" bench/train_step.py --model 19B --bucket 768x512x121 --rank 32 --precision bf16 --steps 3 --warmup 1 --gradient-checkpointing --predict
if [ "$WITH_QUANT" = 1 ]; then
  run_case "5. 2B base as is / int8-torchao / fp8-torchao" 120 \
    "$PY" bench/train_step.py --model 2B --bucket 768x448x89 --rank 32 --precision bf16 --steps 3 --warmup 1 --gradient-checkpointing --predict \
    --compare quant=none quant=int8-torchao quant=fp8-torchao
fi

echo
echo "=== summary ($(( $(date +%s) - T0 ))s in all)"
printf '%s\n' "${SUMMARY[@]}"
