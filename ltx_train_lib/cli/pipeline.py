"""`python scripts/run_pipeline.py BASENAME --resolution-buckets WxHxF --config-template T --rank R` — the whole
pipeline from ``BASENAME_raw/`` to a ComfyUI LoRA."""

from __future__ import annotations

import argparse
import logging
import sys

from ltx_train_lib.errors import LtxTrainError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_pipeline.py", description="Raw videos -> scenes -> captions -> latents -> LoRA -> ComfyUI LoRA.")
    p.add_argument("basename", help="dataset name: videos are read from BASENAME_raw/, clips go to BASENAME_scenes/")
    p.add_argument("--resolution-buckets", required=True, help='"WxHxF[;WxHxF...]", e.g. 768x448x89')
    p.add_argument("--config-template", required=True, help="YAML template with [BASENAME]/[RANK] placeholders (configs/*_template.yaml)")
    p.add_argument("--rank", type=int, required=True, help="LoRA rank (alpha = rank in the templates)")
    p.add_argument("--id-token", default=None, help="trigger word prepended to every caption (e.g. CAKEIFY)")
    p.add_argument("--model", default=None, help="override model.model_source (named version, path, repo id, or 'tiny')")
    p.add_argument("--captioner", default=None, help="captioning model: Hub id or local folder (default Qwen/Qwen2.5-VL-7B-Instruct; 'tiny' for tests)")
    p.add_argument("--steps", type=int, default=None, help="override optimization.steps")
    p.add_argument("--batch-size", type=int, default=1, help="preprocessing batch size")
    p.add_argument("--device", default=None, help="device for captioning and preprocessing (default: cuda if available)")
    p.add_argument("--load-text-encoder-in-8bit", action="store_true", help="T5 in 8-bit during preprocessing (CUDA)")
    p.add_argument("--vae-tiling", action="store_true", help="tile the VAE to save memory on large videos")
    p.add_argument("--remove-llm-prefixes", action="store_true", help='strip "The video shows ..." style caption openings')
    p.add_argument("--work-dir", default=".", help="folder holding BASENAME_raw/ (default: current folder)")
    p.add_argument("--disable_progress_bars", "--disable-progress-bars", action="store_true", help="plain log lines")
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
