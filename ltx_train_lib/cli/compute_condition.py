"""``compute_condition.py``: IC-LoRA reference videos (Canny edges) for every clip of a caption file.

The reference trainer's script (reference/ltx-video-trainer.md §5.6): for each ``media_path`` it reads all frames,
converts them to grayscale, runs ``cv2.Canny(100, 200)``, writes the edges as a 3-channel video
``<stem>_reference<ext>`` next to the media (H.264, the source's fps) and records that file in a
``reference_path`` column of the caption file, which ``preprocess_dataset.py --reference-column reference_path``
then encodes. Replace ``canny_edges`` (any ``uint8 [F,H,W,3] -> uint8 [F,H,W,3]`` function) for depth, pose, etc.

Exit status: 0 when every entry has its reference, 1 when some media could not be processed (each is listed),
2 for bad arguments or a caption file that cannot be used.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ltx_train_lib.errors import DatasetError

if TYPE_CHECKING:
    import numpy as np

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
REFERENCE_SUFFIX = "_reference"
DEFAULT_REFERENCE_COLUMN = "reference_path"
CANNY_THRESHOLDS = (100, 200)  # the reference's cv2.Canny(threshold1, threshold2)

log = logging.getLogger("ltx_train_lib.cli.compute_condition")

ConditionFn = Callable[["np.ndarray"], "np.ndarray"]


def canny_edges(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB [F,H,W,3] -> uint8 [F,H,W,3] Canny edge maps (255 on edges), the same map in all 3 channels."""
    import cv2
    import numpy as np

    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        out[i] = cv2.Canny(gray, *CANNY_THRESHOLDS)[..., None]
    return out


def reference_path_for(media: Path) -> Path:
    """``clips/a.mp4`` -> ``clips/a_reference.mp4`` (the reference's naming)."""
    return media.with_name(f"{media.stem}{REFERENCE_SUFFIX}{media.suffix}")


@dataclass
class ConditionResult:
    captions: Path
    written: list[Path] = field(default_factory=list)  # references computed by this run
    existing: list[Path] = field(default_factory=list)  # references already there (kept without --override)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (media, reason)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        text = (
            f"{len(self.written)} reference video(s) written, {len(self.existing)} kept, {len(self.failed)} failed; "
            f"reference paths recorded in {self.captions}."
        )
        if self.failed:
            text += "\nFailed:\n" + "\n".join(f"  - {media}: {reason}" for media, reason in self.failed)
        return text


def write_reference(media: Path, target: Path, compute: ConditionFn = canny_edges, batch_size: int = 100) -> Path:
    """Compute ``compute`` on every frame of ``media`` and write it to ``target`` atomically.

    Videos stay videos at the source fps; a variable-frame-rate source is resampled to its average rate first,
    exactly as preprocessing reads it, so frame i of the reference lines up with frame i of the trained clip.
    """
    import numpy as np

    from ltx_train_lib.fileio import atomic_path
    from ltx_train_lib.media import is_image, load_image, probe_media, read_video_frames, write_video

    if is_image(media):
        edges = compute(load_image(media)[None])[0]
        from PIL import Image

        with atomic_path(target) as tmp:
            Image.fromarray(edges).save(tmp, format=Image.registered_extensions().get(target.suffix.lower(), "PNG"))
        return target
    info = probe_media(media)
    frames, fps = read_video_frames(media, fps=info.fps if info.variable_frame_rate else None)
    edges = np.concatenate([compute(frames[i : i + batch_size]) for i in range(0, len(frames), batch_size)])
    return write_video(target, edges, fps)


def compute_references(
    captions_path: str | Path,
    *,
    override: bool = False,
    batch_size: int = 100,
    caption_column: str = "caption",
    media_column: str = "media_path",
    reference_column: str = DEFAULT_REFERENCE_COLUMN,
    compute: ConditionFn = canny_edges,
    progress: Callable[[int, int, str], None] | None = None,
) -> ConditionResult:
    """Write a reference video for each entry of a caption file and record it in ``reference_column``.

    Existing reference files are kept unless ``override``. A media file that cannot be processed is listed in
    ``result.failed`` and its entry left as it was. The caption file is rewritten atomically (json/jsonl/csv; its
    caption and media columns under the standard names ``caption`` and ``media_path``).
    """
    from ltx_train_lib.captions_io import caption_format, read_captions_checked, relative_media_path, write_captions

    captions_path = Path(captions_path)
    if caption_format(captions_path) == ".txt":
        raise DatasetError(
            f"{captions_path}: the .txt caption format has no room for a '{reference_column}' column. Convert it "
            "to .json (e.g. caption_videos.py --output captions.json) and run again."
        )
    if batch_size < 1:
        raise DatasetError(f"batch size {batch_size}: must be at least 1")
    read = read_captions_checked(
        captions_path, caption_column=caption_column, media_column=media_column, check_media=False
    )
    unusable = [p for p in read.problems if p.kind == "bad_entry"]
    if unusable:
        # Rewriting the file would drop these entries silently.
        raise DatasetError(
            f"{unusable[0].message} ({len(unusable)} such entr{'y' if len(unusable) == 1 else 'ies'}; the caption "
            "file is rewritten with the reference paths, so fix or remove them first)"
        )
    base_dir = captions_path.resolve().parent
    result = ConditionResult(captions=captions_path)
    for i, entry in enumerate(read.entries):
        media = entry.media_path
        target = reference_path_for(media)
        if progress is not None:
            progress(i, len(read.entries), media.name)
        if not media.is_file():
            result.failed.append((media, "the media file does not exist; restore it or remove the entry"))
            continue
        if target.is_file() and not override:
            result.existing.append(target)
        else:
            try:
                write_reference(media, target, compute, batch_size)
            except DatasetError as exc:
                result.failed.append((media, str(exc).removeprefix(f"{media}: ")))
                continue
            except (OSError, ValueError) as exc:
                result.failed.append((media, f"could not write {target} ({exc}); check the folder and disk space"))
                continue
            result.written.append(target)
        entry.extra[reference_column] = relative_media_path(target, base_dir)
    write_captions(captions_path, read.entries)
    if progress is not None:
        progress(len(read.entries), len(read.entries), "done")
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compute_condition.py",
        description="Make IC-LoRA reference videos (Canny edges) for every clip of a caption file: "
        "<stem>_reference<ext> next to each clip, recorded in the caption file's reference column. Then run "
        "preprocess_dataset.py with --reference-column reference_path.",
    )
    p.add_argument(
        "input_path",
        metavar="INPUT_PATH",
        help="the caption file (.json/.jsonl/.csv), or the dataset folder (its captions.json, or the file --output "
        "names). Media paths are relative to the caption file's folder",
    )
    p.add_argument(
        "--output",
        "-o",
        default=None,
        help="the caption file to read and update in place (the reference's flag; default: INPUT_PATH itself, or "
        "the captions.json / dataset.json in the INPUT_PATH folder)",
    )
    p.add_argument("--override", action="store_true", help="recompute reference videos that already exist")
    p.add_argument("--batch-size", type=int, default=100, help="frames per edge-detection batch (default: 100)")
    p.add_argument("--caption-column", default="caption", help="caption column/key (default: caption)")
    p.add_argument(
        "--video-column",
        "--media-column",
        dest="video_column",
        default="media_path",
        help="media path column/key (default: media_path)",
    )
    p.add_argument(
        "--reference-column",
        default=DEFAULT_REFERENCE_COLUMN,
        help=f"column/key the reference paths are written to (default: {DEFAULT_REFERENCE_COLUMN})",
    )
    return p


def _captions_file(input_path: str, output: str | None) -> Path:
    from ltx_train_lib.precompute import resolve_dataset_file

    if output:
        path = Path(output).expanduser()
        if not path.is_file():
            raise DatasetError(
                f"{path}: caption file not found. --output names the existing caption file to update (caption "
                "the clips first with caption_videos.py)."
            )
        return path
    return resolve_dataset_file(input_path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments and 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.batch_size < 1:
        print(f"error: --batch-size {args.batch_size}: must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if not Path(args.input_path).expanduser().exists():
        print(f"error: {args.input_path}: not found; pass the caption file or the dataset folder", file=sys.stderr)
        return EXIT_USAGE

    def progress(done: int, total: int, name: str) -> None:
        if done < total:
            log.info("%d/%d %s", done + 1, total, name)

    try:
        captions = _captions_file(args.input_path, args.output)
        result = compute_references(
            captions,
            override=args.override,
            batch_size=args.batch_size,
            caption_column=args.caption_column,
            media_column=args.video_column,
            reference_column=args.reference_column,
            progress=progress,
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(result.summary())
    return EXIT_OK if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
