#!/usr/bin/env python
"""`make demo`: the whole pipeline on the bundled sample clips with the tiny model.

Copies samples/clips/*.mp4 (synthetic clips with sound, each scene its own tone: ltx_train_lib.synthetic's
make_sample_clips("samples/clips") rewrites them) into demo_work/demo_raw/ and runs run_pipeline (scene split, the
clips keeping their sound; captioning with a tiny Qwen2.5-VL, preprocessing with decoded videos, LoRA training with
validation videos, ComfyUI LoRA). Everything is
built offline; the tiny models have random weights, so the LoRA and videos are noise — the demo shows the
pipeline working, not a useful model. Re-running continues where the last run stopped.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ltx_train_lib.cli.pipeline import main as pipeline_main  # noqa: E402


def main() -> int:
    work = ROOT / "demo_work"
    raw = work / "demo_raw"
    raw.mkdir(parents=True, exist_ok=True)
    for clip in sorted((ROOT / "samples" / "clips").glob("*.mp4")):
        if not (raw / clip.name).exists():
            shutil.copy2(clip, raw / clip.name)
    t0 = time.time()
    rc = pipeline_main([
        "demo", "--work-dir", str(work), "--resolution-buckets", "64x64x9;96x64x17",
        "--config-template", str(ROOT / "configs" / "tiny_demo.yaml"), "--rank", "8",
        "--captioner", "tiny", "--model", "tiny", "--id-token", "DEMO", "--disable_progress_bars",
    ])
    out = work / "outputs" / "demo_lora_r8"
    print(f"\ndemo finished in {time.time() - t0:.0f} s (exit {rc})")
    print(f"ComfyUI LoRA:       {out / 'lora_weights_comfy.safetensors'}")
    print(f"validation videos:  {out / 'validation_samples'}")
    print("(tiny random-weight model: the pipeline is real, the results are noise)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
