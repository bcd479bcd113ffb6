"""split_scenes: cut a video (or a folder of videos) into one clip per scene.

Same command line as the reference trainer's scripts/split_scenes.py; clips are cut frame-accurately by
PyAV (no ffmpeg binary) and a re-run skips videos already split with the same settings.
Exit status: 0 when every video was split, 1 when some were skipped (each listed with its reason), 2 when nothing
could be done (bad arguments, no video found, no video readable, an output folder that cannot be written).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ltx_train_lib.errors import LtxTrainError
from ltx_train_lib.scenes import DETECTORS, SplitSettings, SplitSummary, parse_scene_length, split_folder


def _length(text: str) -> str:
    parse_scene_length(text)  # fail at parse time with the library's message
    return text


def _length_arg(text: str) -> str:
    try:
        return _length(text)
    except LtxTrainError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="split_scenes.py",
        description="Split videos into scene clips named <video stem>-Scene-NNN.mp4 (frame-accurate, H.264).",
    )
    p.add_argument("video_path", type=Path, metavar="VIDEO_OR_FOLDER", help="A video file or a folder of videos.")
    p.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR", help="Folder for the clips (created if missing).")
    p.add_argument("--detector", choices=DETECTORS, default="content", help="Scene detector (default: content).")
    p.add_argument(
        "--threshold",
        type=float,
        help="Detector threshold (PySceneDetect defaults: content 27, adaptive 3, threshold 12, histogram 0.2).",
    )
    p.add_argument("--max-scenes", type=int, help="Keep at most this many scenes per video (the first ones).")
    p.add_argument(
        "--min-scene-length",
        type=_length_arg,
        help="Shortest scene the detector may produce: frames ('15'), seconds ('0.6s') or 'HH:MM:SS[.nnn]'.",
    )
    p.add_argument(
        "--filter-shorter-than",
        type=_length_arg,
        help="Detect but do not save scenes shorter than this: frames ('123'), seconds ('5s') or 'HH:MM:SS[.nnn]'.",
    )
    p.add_argument("--downscale", type=int, help="Downscale factor for detection (default: automatic).")
    p.add_argument("--frame-skip", type=int, default=0, help="Detect on 1 of every N+1 frames (default 0).")
    p.add_argument("--luma-only", action="store_true", help="content/adaptive: compare brightness only.")
    p.add_argument("--adaptive-window", type=int, help="adaptive: frames on each side of the rolling average.")
    p.add_argument("--fade-bias", type=float, help="threshold: where a fade cut goes, -1 (fade start) to +1 (end).")
    p.add_argument("--recursive", action="store_true", help="Also split videos in subfolders (kept in the output).")
    p.add_argument("--backend", choices=("opencv", "pyav"), default="opencv", help="Decoder used for detection.")
    p.add_argument("--crf", type=int, default=18, help="libx264 quality of the clips, 0-51 (default 18).")
    p.add_argument(
        "--no-audio",
        action="store_true",
        help="Write video-only clips (default: each clip keeps the source's sound over its span, as AAC).",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="Print only the summary.")
    return p


def print_summary(summary: SplitSummary) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is a dependency, but a plain summary is enough without it
        print(summary.text())
        return
    table = Table(title=f"Scene clips in {summary.output_dir}")
    table.add_column("video", overflow="fold")  # fold, not "…": the path is what the user needs to see
    table.add_column("status")
    table.add_column("scenes", justify="right")
    table.add_column("clips (frames) / reason", overflow="fold")
    for r in summary.results:
        detail = r.reason if r.status == "skipped" else ", ".join(f"{Path(c.file).name} ({c.frames})" for c in r.clips)
        scenes = "" if r.status == "skipped" else f"{len(r.clips)}/{r.scenes_detected}"
        style = {"split": "green", "unchanged": "cyan", "skipped": "red"}[r.status]
        table.add_row(str(r.source), f"[{style}]{r.status}[/{style}]", scenes, detail)
    console = Console()
    console.print(table)
    console.print(
        f"{len(summary.split)} split, {len(summary.unchanged)} already done, {len(summary.skipped)} skipped, "
        f"{len(summary.clips)} clips."
    )
    if summary.clips:
        console.print(summary.audio_text(), markup=False, highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO, format="%(message)s")
    import scenedetect  # noqa: F401  (imported first: it sets up its logger on import, then we quiet it)

    logging.getLogger("pyscenedetect").setLevel(logging.WARNING)  # its "Detecting scenes..." adds nothing here
    logging.getLogger("ltx_train_lib.scenes").setLevel(logging.ERROR)  # skips are listed once, after the table
    settings = SplitSettings(
        detector=args.detector,
        threshold=args.threshold,
        min_scene_length=args.min_scene_length,
        filter_shorter_than=args.filter_shorter_than,
        max_scenes=args.max_scenes,
        downscale=args.downscale,
        frame_skip=args.frame_skip,
        luma_only=args.luma_only,
        adaptive_window=args.adaptive_window,
        fade_bias=args.fade_bias,
        backend=args.backend,
        crf=args.crf,
        keep_audio=not args.no_audio,
    )

    def progress(done: int, total: int, video: Path) -> None:
        if not args.quiet and done < total:
            print(f"[{done + 1}/{total}] {video}", file=sys.stderr)

    try:
        summary = split_folder(args.video_path, args.output_dir, settings, recursive=args.recursive, progress=progress)
    except LtxTrainError as exc:  # bad settings, a missing input, an output folder that cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not summary.results:
        print(
            f"error: no videos found in {args.video_path}. Pass a video file or a folder holding videos "
            "(add --recursive for subfolders).",
            file=sys.stderr,
        )
        return 2
    if not (summary.split or summary.unchanged):  # nothing could be split: a failure, not a partial result
        for r in summary.skipped:
            print(f"error: {r.reason}", file=sys.stderr)
        return 2
    print_summary(summary)
    for r in summary.skipped:  # one unwrapped line per problem: easy to read, grep and copy
        print(f"skipped: {r.reason}", file=sys.stderr)
    return 1 if summary.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
