"""``convert_checkpoint.py INPUT [--to-comfy | --to-diffusers] [--output-path PATH]``: convert LoRA/model files
between the diffusers and ComfyUI layouts (the reference trainer's command line, plus auto-detection)."""

from __future__ import annotations

import argparse
import logging
import sys

from ltx_train_lib.errors import LtxTrainError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convert_checkpoint.py",
        description="Convert an LTX-Video LoRA or transformer .safetensors file between the diffusers layout "
        "(transformer.* / lora_weights.safetensors) and the ComfyUI layout (diffusion_model.* / *_comfy.safetensors). "
        "The input layout is detected; without --to-* the file is converted to the other layout.",
    )
    parser.add_argument("input", metavar="INPUT", help="The .safetensors file to convert.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--to-comfy",
        "--to_comfy",
        dest="to",
        action="store_const",
        const="comfy",
        help="Convert to the ComfyUI layout.",
    )
    target.add_argument(
        "--to-diffusers",
        "--to_diffusers",
        dest="to",
        action="store_const",
        const="diffusers",
        help="Convert to the diffusers layout.",
    )
    parser.add_argument(
        "--output-path",
        "--output_path",
        dest="output_path",
        default=None,
        help="Where to write the result. Default: next to the input, "
        "named <stem>_comfy.safetensors or <stem>_diffusers.safetensors.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the converter; returns the exit status (0 ok, 1 conversion error, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (or --help) already
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    from ltx_train_lib.export import convert_file

    try:
        out = convert_file(args.input, to=args.to, output_path=args.output_path)
    except LtxTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the output folder is not writable or the disk is full
        print(
            f"error: cannot write the converted file ({exc}); choose another --output-path or free disk space",
            file=sys.stderr,
        )
        return 1
    print(f"Saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
