"""`python scripts/run_pipeline.py BASENAME --resolution-buckets WxHxF --config-template T --rank R` — the whole
pipeline from ``BASENAME_raw/`` to a ComfyUI LoRA."""

from __future__ import annotations

import argparse
import logging
import sys

from ltx_train_lib.cli.preprocess import add_config_arguments
from ltx_train_lib.errors import LtxTrainError

# The preprocessing options the pipeline passes on (the others keep their defaults; decoding is always on).
PIPELINE_PRECOMPUTE_FIELDS = (
    "resolution_buckets",
    "id_token",
    "batch_size",
    "device",
    "load_text_encoder_in_8bit",
    "vae_tiling",
    "remove_llm_prefixes",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_pipeline.py", description="Raw videos -> scenes -> captions -> latents -> LoRA -> ComfyUI LoRA.")
    p.add_argument("basename", help="dataset name: videos are read from BASENAME_raw/, clips go to BASENAME_scenes/")
    p.add_argument("--config-template", required=True, help="YAML template with [BASENAME]/[RANK] placeholders (configs/*_template.yaml)")
    p.add_argument("--rank", type=int, required=True, help="LoRA rank (alpha = rank in the templates)")
    p.add_argument("--model", default=None, help="override model.model_source (named version, path, repo id, or 'tiny')")
    p.add_argument("--captioner", default=None, help="captioning model: Hub id or local folder (default Qwen/Qwen2.5-VL-7B-Instruct; 'tiny' for tests)")
    p.add_argument("--steps", type=int, default=None, help="override optimization.steps")
    p.add_argument("--work-dir", default=".", help="folder holding BASENAME_raw/ (default: current folder)")
    p.add_argument("--disable_progress_bars", "--disable-progress-bars", action="store_true", help="plain log lines")
    # Preprocessing flags: PrecomputeConfig fields, spelled, defaulted and described as in preprocess_dataset.py.
    add_config_arguments(
        p.add_argument_group("preprocessing (as preprocess_dataset.py)"),
        PIPELINE_PRECOMPUTE_FIELDS,
        help_extra={
            "id_token": "The validation prompts start with it too.",
            "device": "Captioning runs there too.",
        },
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ltx_train_lib.cli.train import ProgressPrinter
    from ltx_train_lib.pipeline import run_pipeline

    try:
        result = run_pipeline(
            args.basename, args.resolution_buckets, args.config_template, args.rank, work_dir=args.work_dir,
            id_token=args.id_token, model=args.model, captioner_model=args.captioner, steps=args.steps,
            batch_size=args.batch_size, device=args.device, load_text_encoder_in_8bit=args.load_text_encoder_in_8bit,
            vae_tiling=args.vae_tiling, remove_llm_prefixes=args.remove_llm_prefixes,
            train_listeners=[ProgressPrinter(bars=not args.disable_progress_bars)],
        )
    except LtxTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\nstages:")
    for name, what in result.stages.items():
        print(f"  {name:<10} {what}")
    if result.skipped_media:
        print("skipped inputs:")
        for path, reason in result.skipped_media:
            print(f"  {path}: {reason}")
    print("outputs:")
    for name, path in result.outputs.items():
        print(f"  {name:<18} {path}")
    return 1 if result.skipped_media else 0


if __name__ == "__main__":
    sys.exit(main())
