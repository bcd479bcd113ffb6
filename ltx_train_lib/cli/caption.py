"""caption_videos: caption a folder of videos/images (or one file) with Qwen2.5-VL into a caption file.

With a Qwen2.5-Omni model (``--model Qwen/Qwen2.5-Omni-7B``, ``tiny-omni``, or ``--captioner-type qwen_25_omni``)
the captioner also hears each video's sound and describes sound and speech.

Same command line as the reference trainer's scripts/caption_videos.py (Qwen2.5-VL only), plus --model,
--batch-size, --max-new-tokens and --dtype. A re-run captions only media without a caption (unless --override).
Exit status: 0 when every media file has a caption, 1 when some were skipped (listed in the summary),
2 when nothing could be done (bad arguments, model not loadable).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ltx_train_lib.errors import LtxTrainError, OutputError

REFERENCE_CAPTIONER = "qwen_25_vl"
# Captions that hear: Qwen2.5-Omni takes each video's sound with its frames (chosen by --model, or by this type).
OMNI_CAPTIONER = "qwen_25_omni"
CAPTIONER_TYPES = (REFERENCE_CAPTIONER, OMNI_CAPTIONER)


def build_parser() -> argparse.ArgumentParser:
    # Imported here for the defaults only; ltx_train_lib.captioning imports no torch at module level.
    from ltx_train_lib.captioning import (
        DEFAULT_EXTENSIONS,
        DEFAULT_FPS,
        DEFAULT_MAX_FRAMES,
        DEFAULT_MAX_NEW_TOKENS,
        DEFAULT_MODEL,
        OMNI_MODEL,
    )

    p = argparse.ArgumentParser(
        prog="caption_videos.py",
        description=(
            "Caption videos and images with Qwen2.5-VL. Writes a caption file whose format follows its extension "
            "(.json, .jsonl, .csv, .txt) with media paths relative to it. Re-running skips media already captioned."
        ),
    )
    p.add_argument("input_path", type=Path, metavar="INPUT", help="A folder of videos/images, or a single file.")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="Caption file to write (default: INPUT/captions.json for a folder, <file stem>.captions.json for a file).",
    )
    p.add_argument(
        "-m",
        "--model",
        default=DEFAULT_MODEL,
        help=f"Hugging Face repo id or local folder of a Qwen2.5-VL model, or 'tiny' (offline random weights, for "
        f"tests only). Default: {DEFAULT_MODEL}. A Qwen2.5-Omni model (e.g. {OMNI_MODEL}, or 'tiny-omni') also "
        "hears each video's sound and describes sound and speech.",
    )
    p.add_argument(
        "-c",
        "--captioner-type",
        default=REFERENCE_CAPTIONER,
        help=f"qwen_25_vl (default: pictures only) or qwen_25_omni (pictures and sound; default model {OMNI_MODEL}). "
        "A Qwen2.5-Omni --model selects qwen_25_omni by itself.",
    )
    p.add_argument("-d", "--device", help="Torch device, e.g. cuda, cuda:1, cpu (default: cuda when available).")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "bfloat16", "float16", "float32"),
        help="Model weights dtype (default auto: bfloat16 on GPU, float32 on CPU).",
    )
    p.add_argument(
        "--use-8bit", action="store_true", help="Load the model in 8 bits with bitsandbytes (CUDA only; ~half VRAM)."
    )
    p.add_argument(
        "-i",
        "--instruction",
        help="Question asked for every file (default: 'Shortly describe the content of this video in two "
        "sentences.', with 'image' for images).",
    )
    p.add_argument(
        "-e",
        "--extensions",
        default=",".join(DEFAULT_EXTENSIONS),
        help=f"Comma-separated file extensions to caption (default: {','.join(DEFAULT_EXTENSIONS)}).",
    )
    p.add_argument("-r", "--recursive", action="store_true", help="Also caption media in subfolders.")
    p.add_argument(
        "-f",
        "--fps",
        type=float,
        default=DEFAULT_FPS,
        help=f"Frames per second shown to the model (default {DEFAULT_FPS:g}).",
    )
    p.add_argument(
        "--max-frames",
        type=int,
        default=DEFAULT_MAX_FRAMES,
        help=f"Most frames per video; longer videos are sampled more sparsely (default {DEFAULT_MAX_FRAMES}).",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help=f"Longest caption in tokens (default {DEFAULT_MAX_NEW_TOKENS}).",
    )
    p.add_argument("--batch-size", type=int, default=1, help="Media captioned per model call (default 1).")
    p.add_argument(
        "--clean-caption",
        dest="clean_caption",
        action="store_true",
        default=True,
        help="Remove openers such as 'The video shows ' (default).",
    )
    p.add_argument("--no-clean-caption", dest="clean_caption", action="store_false", help="Keep captions as generated.")
    p.add_argument("--override", action="store_true", help="Caption again media that already have a caption.")
    p.add_argument("-q", "--quiet", action="store_true", help="Print only the summary.")
    return p


def _console(stderr: bool = True):
    from rich.console import Console

    # soft_wrap: long captions and error messages stay on one line in logs instead of being cut at 80 columns.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _welcome(args: argparse.Namespace, output: Path) -> None:
    from rich.panel import Panel

    lines = [
        f"[bold]input[/bold]   {args.input_path}",
        f"[bold]output[/bold]  {output}",
        f"[bold]model[/bold]   {args.model}" + (" (8-bit)" if args.use_8bit else ""),
        f"[bold]device[/bold]  {args.device or 'auto'}   [bold]fps[/bold] {args.fps:g}   "
        f"[bold]batch[/bold] {args.batch_size}   [bold]override[/bold] {'yes' if args.override else 'no'}",
    ]
    _console().print(Panel("\n".join(lines), title="caption_videos", expand=False))


def _print_summary(report) -> None:
    from rich.markup import escape

    console = _console(stderr=False)
    console.print(
        f"{len(report.captioned)} captioned, {len(report.already_captioned)} already captioned, "
        f"{len(report.failed)} skipped, of {report.total} media files -> {report.output_path}"
    )
    for problem in report.existing_problems:
        console.print(f"[yellow]warning:[/yellow] {escape(problem.message)}")
    for failure in report.failed:
        console.print(f"[red]skipped[/red] {escape(failure.reason)}")


def main(argv: Sequence[str] | None = None) -> int:
    from ltx_train_lib.captioning import (
        DEFAULT_MODEL,
        OMNI_MODEL,
        caption_media,
        captioner_hears,
        collect_media,
        default_output_path,
    )

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING, format="%(message)s")
    if args.captioner_type not in CAPTIONER_TYPES:
        print(
            f"error: --captioner-type {args.captioner_type} is not supported; use {' or '.join(CAPTIONER_TYPES)}. "
            "Pick the checkpoint with --model.",
            file=sys.stderr,
        )
        return 2
    if args.captioner_type == OMNI_CAPTIONER:
        if args.model == DEFAULT_MODEL:
            args.model = OMNI_MODEL
        elif not captioner_hears(args.model):
            print(
                f"error: --captioner-type {OMNI_CAPTIONER} needs a Qwen2.5-Omni model, but --model {args.model} is "
                f"not one. Use --model {OMNI_MODEL} (or 'tiny-omni'), or drop --captioner-type.",
                file=sys.stderr,
            )
            return 2
    if not args.input_path.exists():
        print(
            f"error: {args.input_path}: no such file or folder. Pass a folder of videos/images or one file.",
            file=sys.stderr,
        )
        return 2
    output = args.output or default_output_path(args.input_path)
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    else:
        _welcome(args, output)

    def progress(done: int, total: int, path: Path, caption: str | None) -> None:
        if args.quiet:
            return
        from rich.markup import escape

        shown = escape(caption) if caption is not None else "[red]skipped[/red]"
        _console().print(f"[dim][{done}/{total}][/dim] {escape(path.name)}: {shown}")

    try:
        if not collect_media(args.input_path, args.extensions, args.recursive):
            print(
                f"error: no media with extensions {args.extensions} in {args.input_path}"
                f"{'' if args.recursive else ' (add --recursive for subfolders)'}. Check the folder or --extensions.",
                file=sys.stderr,
            )
            return 2
        report = caption_media(
            args.input_path,
            output,
            model=args.model,
            override=args.override,
            extensions=args.extensions,
            recursive=args.recursive,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
            use_8bit=args.use_8bit,
            instruction=args.instruction,
            fps=args.fps,
            max_new_tokens=args.max_new_tokens,
            max_frames=args.max_frames,
            clean=args.clean_caption,
            progress=progress,
        )
    except OutputError as exc:  # the caption file's folder: read-only, no permission, disk full
        print(f"error: {exc} Or write the captions elsewhere with -o/--output.", file=sys.stderr)
        return 2
    except (LtxTrainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: captions made so far are saved in {output}; run again to continue.", file=sys.stderr)
        return 130
    _print_summary(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
