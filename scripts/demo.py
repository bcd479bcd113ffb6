#!/usr/bin/env python
"""`make demo`: the whole pipeline on the bundled sample clips (which have sound) with a tiny model.

``--family ltx2`` (the default, ``make demo``): raw clips with sound -> scenes (each keeps its sound) -> captions
(a tiny Qwen2.5-VL) -> precompute (video latents and audio latents) -> an audio-video LoRA on ``tiny-ltx2`` with
validation clips that have a sound track -> the ComfyUI LoRA (LTXAV keys). ``--family ltxv`` (``make demo
FAMILY=ltxv``): the same on the LTX-Video ``tiny`` model, video only. Copies samples/clips/*.mp4 into
demo_work/<family>/demo_raw/. Everything is built offline; the tiny models have random weights, so the LoRA and
videos are noise — the demo shows the pipeline working, not a useful model. Re-running continues where the last
run stopped.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ltx_train_lib.cli.pipeline import main as pipeline_main  # noqa: E402

# family -> (model source, config template, what the run trains)
FAMILIES = {
    "ltx2": ("tiny-ltx2", "tiny_ltx2_demo.yaml", "an audio-video LoRA (LTX-2)"),
    "ltxv": ("tiny", "tiny_demo.yaml", "a video LoRA (LTX-Video)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole pipeline on the bundled sample clips.")
    parser.add_argument("--family", choices=sorted(FAMILIES), default="ltx2",
                        help="model family: ltx2 (tiny-ltx2, video + sound; default) or ltxv (tiny, video only)")
    family = parser.parse_args(argv).family
    model, template, what = FAMILIES[family]
    work = ROOT / "demo_work" / family
    raw = work / "demo_raw"
    raw.mkdir(parents=True, exist_ok=True)
    for clip in sorted((ROOT / "samples" / "clips").glob("*.mp4")):
        if not (raw / clip.name).exists():
            shutil.copy2(clip, raw / clip.name)
    t0 = time.time()
    rc = pipeline_main([
        "demo", "--work-dir", str(work), "--resolution-buckets", "64x64x9;96x64x17",
        "--config-template", str(ROOT / "configs" / template), "--rank", "8",
        "--captioner", "tiny", "--model", model, "--id-token", "DEMO", "--disable_progress_bars",
    ])
    out = work / "outputs" / "demo_lora_r8"
    print(f"\ndemo ({what} on {model}) finished in {time.time() - t0:.0f} s (exit {rc})")
    print(f"ComfyUI LoRA:       {out / 'lora_weights_comfy.safetensors'}")
    print(f"validation videos:  {out / 'validation_samples'}")
    print("(tiny random-weight model: the pipeline is real, the results are noise)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
