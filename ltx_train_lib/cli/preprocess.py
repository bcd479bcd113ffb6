"""``preprocess_dataset.py``: caption embeddings and video latents into ``.precomputed/``.

Flags follow the reference trainer's script (reference/ltx-video-trainer.md §1.2), plus several resolution buckets,
``--reshape-mode``, ``--frame-selection`` and ``--seed``. Exit status: 0 when every sample is ready, 1 when some
were skipped (each is listed with its reason), 2 for bad arguments or a dataset/model that cannot be used at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

EXIT_OK, EXIT_SKIPPED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("ltx_train_lib.cli.preprocess")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="preprocess_dataset.py",
        description="Compute T5 caption embeddings and VAE latents for LoRA training, into <dataset dir>/.precomputed "
        "(the reference trainer's layout). Re-running recomputes only what changed.",
    )
    p.add_argument("dataset", help="caption file (.json/.jsonl/.csv/.txt), or a folder holding captions.json")
    p.add_argument(
        "--resolution-buckets",
        required=True,
        help='one or more WIDTHxHEIGHTxFRAMES separated by ";", e.g. "768x448x89;512x512x49;768x768x1". W and H are '
        "multiples of 32, FRAMES is 8k+1 (1 for images). Each clip goes to the bucket with the most frames it can "
        "fill, then the closest aspect ratio",
    )
    p.add_argument("--caption-column", default="caption", help="caption column/key (default: caption)")
    p.add_argument(
        "--video-column",
        "--media-column",
        dest="video_column",
        default="media_path",
        help="media path column/key (default: media_path)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="samples per text-encoder / VAE call (default: 1)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument(
        "--load-text-encoder-in-8bit",
        action="store_true",
        help="load T5 in 8 bits with bitsandbytes (CUDA only): about half the memory",
    )
    p.add_argument("--vae-tiling", action="store_true", help="encode in tiles: less memory for large resolutions")
    p.add_argument("--output-dir", default=None, help="cache folder (default: <dataset dir>/.precomputed)")
    p.add_argument(
        "--model-source",
        default="LTXV_13B_097_DEV",
        help="named version (e.g. LTXV_2B_0.9.6_DEV), local folder, .safetensors file, Hub repo id, or 'tiny' "
        "(random weights, for tests) (default: LTXV_13B_097_DEV)",
    )
    p.add_argument("--id-token", default=None, help='trigger word prepended to every caption as "<token> caption"')
    p.add_argument(
        "--decode-videos",
        action="store_true",
        help="also decode the latents to decoded_videos/ (.mp4, or .png for 1-frame samples) to check them by eye",
    )
    p.add_argument(
        "--remove-llm-prefixes",
        action="store_true",
        help='strip one leading phrase such as "The video shows" or "In this video," from each caption',
    )
    p.add_argument("--reshape-mode", choices=("center", "random"), default="center", help="crop position")
    p.add_argument(
        "--frame-selection",
        choices=("first", "center", "random"),
        default="first",
        help="which frames of a longer clip to keep (default: first, as the reference)",
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the latent sampling and random crops (default: 42)")
    p.add_argument(
        "--reference-column",
        default=None,
        help="IC-LoRA: column/key holding each clip's reference video (e.g. reference_path, as compute_condition.py "
        "writes). Each reference is encoded at its clip's bucket, frames and crop into reference_latents/; clips "
        "without a usable reference are skipped (default: none)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the summary")
    return p


class _ProgressPrinter:
    """A rich progress bar on a terminal; otherwise one log line every few seconds (logs, ComfyUI consoles)."""

    def __init__(self) -> None:
        self._bar = None
        self._task = None
        self._last = 0.0
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold blue]preprocessing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                transient=True,
            )

    def __enter__(self) -> _ProgressPrinter:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, done: int, total: int, message: str) -> None:
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task("", total=total)
            self._bar.update(self._task, completed=done, total=total, description=message)
            return
        now = time.monotonic()
        if done >= total or now - self._last >= 5.0:
            self._last = now
            log.info("%d/%d %s", done, total, message)


def _quiet_libraries() -> None:
    """transformers/diffusers print a progress bar per weight file: noise between our own lines."""
    try:
        import diffusers.utils.logging as dlog
        import transformers.utils.logging as tlog

        tlog.disable_progress_bar()
        dlog.disable_progress_bar()
        tlog.set_verbosity_error()
    except ImportError:  # pragma: no cover - both are dependencies
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments and 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr)

    if args.batch_size < 1:
        print(f"error: --batch-size {args.batch_size}: must be at least 1", file=sys.stderr)
        return EXIT_USAGE

    from ltx_train_lib.buckets import parse_buckets
    from ltx_train_lib.errors import LtxTrainError
    from ltx_train_lib.precompute import preprocess_dataset, resolve_dataset_file

    # Cheap checks first: a typo is reported at once, before torch and the models load.
    try:
        buckets = parse_buckets(args.resolution_buckets)
        resolve_dataset_file(args.dataset)
    except LtxTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.id_token:
        log.info('trigger word "%s" is prepended to every caption', args.id_token)
    _quiet_libraries()
    try:
        with _ProgressPrinter() as progress:
            result = preprocess_dataset(
                args.dataset,
                buckets,
                output_dir=args.output_dir,
                model_source=args.model_source,
                id_token=args.id_token,
                remove_llm_prefixes=args.remove_llm_prefixes,
                decode_videos=args.decode_videos,
                vae_tiling=args.vae_tiling,
                reshape_mode=args.reshape_mode,
                frame_selection=args.frame_selection,
                caption_column=args.caption_column,
                media_column=args.video_column,
                reference_column=args.reference_column,
                batch_size=args.batch_size,
                device=args.device,
                load_text_encoder_in_8bit=args.load_text_encoder_in_8bit,
                seed=args.seed,
                progress=progress,
            )
    except LtxTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished samples are kept; run the same command again to continue", file=sys.stderr)
        return 130
    print(result.summary())
    if result.samples == 0:
        print("nothing was preprocessed: fix the skipped entries above and run again", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_SKIPPED


if __name__ == "__main__":
    sys.exit(main())
