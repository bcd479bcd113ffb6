"""``push_to_hub.py OUTPUT_DIR REPO_ID [--private] [--trigger-word WORD]``: upload a finished training output folder
to the Hugging Face Hub. The token comes from HF_TOKEN / HUGGING_FACE_HUB_TOKEN or `hf auth login`, never from the
command line (it would land in the shell history and the process list)."""

from __future__ import annotations

import argparse
import logging
import sys

from ltx_train_lib.errors import LtxTrainError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="push_to_hub.py",
        description="Upload the weights, training config, a model card and sample GIFs of a finished training run "
        "to a Hugging Face model repository (created if missing), in one commit. "
        "Authentication: HF_TOKEN / HUGGING_FACE_HUB_TOKEN or `hf auth login`.",
    )
    parser.add_argument(
        "output_dir", metavar="OUTPUT_DIR", help="The training output folder (holds lora_weights.safetensors)."
    )
    parser.add_argument("repo_id", metavar="REPO_ID", help="Target repository, e.g. 'alice/ltxv-my-lora'.")
    parser.add_argument(
        "--private",
        action="store_true",
        help="Create the repository as private (an existing repo keeps its visibility).",
    )
    parser.add_argument(
        "--trigger-word",
        "--trigger_word",
        dest="trigger_word",
        default=None,
        help="Trigger word to show in the model card.",
    )
    parser.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or https://huggingface.co).")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the upload; returns the exit status (0 ok, 1 upload error, 2 usage error or a LoRA that fails its health
    scan)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (or --help) already
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    from ltx_train_lib.hub import push_to_hub
    from ltx_train_lib.lora_health import LoraHealthError

    try:
        url = push_to_hub(
            args.output_dir, args.repo_id, private=args.private, endpoint=args.endpoint, trigger_word=args.trigger_word
        )
    except LoraHealthError as exc:  # bad input, not a failed upload: nothing was sent
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LtxTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Uploaded to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
