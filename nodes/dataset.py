"""Dataset nodes: LoadVideos (a folder of media) and SplitScenes (one clip per scene)."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

from . import comfy
from . import types as T
from .schema_widgets import dataclass_widget, param_widget

log = logging.getLogger("ltx_trainer.nodes")

MAX_THUMBNAILS = 24
THUMBNAIL_SIDE = 256


def slug(name: str) -> str:
    """A folder-safe dataset name."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip()).strip("._")
    return text or "dataset"


def datasets_dir() -> Path:
    return comfy.trainer_dir() / "datasets"


def thumbnail(path: Path):
    """First frame of a video (or the image itself), at most THUMBNAIL_SIDE pixels on its long side."""
    import numpy as np
    from PIL import Image

    from ltx_train_lib import media

    if media.is_image(path):
        rgb = media.load_image(path)
    else:
        frame, _ = next(iter(media.iter_video_frames(path)))
        rgb = media.frame_to_rgb(frame)
    img = Image.fromarray(rgb)
    img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return np.asarray(img)


def thumbnails_ui(files: list[Path], base: Path) -> tuple[list[dict[str, str]], list[str]]:
    """UI entries for the first frames of ``files`` and the names of files that could not be read."""
    entries, unreadable = [], []
    for path in files[:MAX_THUMBNAILS]:
        try:
            entries.append(comfy.save_preview_image(thumbnail(path), path.stem))
        except Exception as exc:  # noqa: BLE001 - a preview must never fail the node; the file is named instead
            log.warning("no preview for %s: %s", path, exc)
            unreadable.append(_rel(path, base))
    return entries, unreadable


def _rel(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def audio_summary(files: list[Path], base: Path) -> str:
    """"sound: 3 of 4 videos; without: b.mp4": read from each video's header (nothing decoded)."""
    from ltx_train_lib.audio import has_audio
    from ltx_train_lib.errors import LtxTrainError
    from ltx_train_lib.media import is_video
    from ltx_train_lib.scenes import audio_line

    readable, without = 0, []
    for path in files:
        if not is_video(path):
            continue  # images never have sound; they train video-only
        try:
            sound = has_audio(path)
        except LtxTrainError:
            continue  # unreadable: the preview line names it, and SplitScenes/Precompute say why
        readable += 1
        if not sound:
            without.append(_rel(path, base))
    return audio_line(readable, without, "videos")


def folder_signature(folder: Path, recursive: bool) -> str:
    """Changes when a file is added, removed, replaced or touched: ComfyUI re-runs the node then."""
    digest = hashlib.sha256()
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    for p in sorted(pattern):
        if any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue  # caches and temp files (.precomputed/, .x.tmp) change on every run; they are not inputs
        try:
            st = p.stat()
        except OSError:
            continue
        digest.update(f"{p.relative_to(folder).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class LoadVideos:
    """A folder of raw videos (and optionally images), the start of a dataset."""

    CATEGORY = "LTX Trainer/dataset"
    SEARCH_ALIASES = ["load videos", "video folder", "import videos", "training videos", "video dataset"]
    DESCRIPTION = (
        "Lists the videos (and optionally images) of a folder. Relative folders are looked up in ComfyUI's input "
        "folder. Everything made from them later goes under output/ltx_trainer/datasets/<dataset_name>/."
    )
    RETURN_TYPES = (T.VIDEOS,)
    RETURN_NAMES = ("videos",)
    OUTPUT_TOOLTIPS = (
        "The media files, in a stable order, with the dataset's work folder. The summary counts the videos with "
        "sound and names those without.",
    )
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        from ltx_train_lib.media import list_media

        return {
            "required": {
                "folder": (
                    "STRING",
                    {
                        "default": "ltx_videos",
                        "tooltip": "Folder of videos: relative to ComfyUI's input folder, or an absolute path.",
                    },
                ),
                "recursive": param_widget(list_media, "recursive", "BOOLEAN", "Also take media from sub-folders."),
                "include_images": (
                    "BOOLEAN",
                    {"default": False, "tooltip": "Also take .png/.jpg/.webp images (trained as one-frame clips)."},
                ),
                "dataset_name": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Name of the work folder output/ltx_trainer/datasets/<name>/; empty = the folder's name.",
                    },
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, folder: str, recursive: bool, include_images: bool, dataset_name: str, **_: Any) -> str:
        try:
            return folder_signature(comfy.resolve_input(folder, "folder"), recursive)
        except (OSError, FileNotFoundError) as exc:
            return f"missing: {exc}"

    def load(self, folder: str, recursive: bool, include_images: bool, dataset_name: str, unique_id: str | None = None):
        from ltx_train_lib.errors import DatasetError
        from ltx_train_lib.media import list_media

        path = comfy.resolve_input(folder, "LoadVideos.folder")
        if not path.is_dir():
            raise DatasetError(f"LoadVideos.folder: '{path}' is a file, not a folder; give the folder that holds the videos")
        kinds = ("video", "image") if include_images else ("video",)
        files = list_media(path, recursive=recursive, kinds=kinds)
        if not files:
            what = "videos or images" if include_images else "videos"
            raise DatasetError(
                f"LoadVideos.folder: '{path}' has no {what} (.mp4, .mov, .mkv, .webm, ...); copy the clips there"
                + ("" if recursive else " or enable 'recursive' if they are in sub-folders")
            )
        name = slug(dataset_name or path.name)
        record = T.MediaSet(folder=path, files=tuple(files), work_dir=datasets_dir() / name, name=name, stage="raw")
        entries, unreadable = thumbnails_ui(files, path)
        text = [f"{len(files)} file(s) in {path}", audio_summary(files, path)]
        if unreadable:
            text.append("cannot preview (probably unreadable): " + ", ".join(unreadable))
        return {"ui": {**comfy.ui_images(entries), **comfy.ui_text(text, unique_id)}, "result": (record,)}


class SplitScenes:
    """Cut every video at its scene changes into one clip per scene (PySceneDetect, frame-accurate)."""

    CATEGORY = "LTX Trainer/dataset"
    SEARCH_ALIASES = ["scene detection", "split scenes", "cut scenes", "shot detection", "pyscenedetect", "split video"]
    DESCRIPTION = (
        "Detects scene cuts and writes one clip per scene to <work folder>/scenes/. Each clip keeps the source's "
        "sound over its span (AAC). Re-running skips videos already split with the same settings; bad videos are "
        "skipped with a reason."
    )
    RETURN_TYPES = (T.VIDEOS,)
    RETURN_NAMES = ("clips",)
    OUTPUT_TOOLTIPS = ("The scene clips, with the sound of their span where the source has sound.",)
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        from ltx_train_lib.scenes import DETECTORS, SplitSettings

        return {
            "required": {
                "videos": (T.VIDEOS, {"tooltip": "Videos to split (from Load Videos)."}),
                "detector": dataclass_widget(
                    SplitSettings,
                    "detector",
                    list(DETECTORS),
                    "PySceneDetect detector: content (cuts), adaptive (cuts with camera motion), threshold (fades "
                    "to black), histogram.",
                ),
                "threshold": dataclass_widget(
                    SplitSettings,
                    "threshold",
                    "FLOAT",
                    "Detector threshold; 0 = the detector's own default (content 27, adaptive 3, threshold 12, "
                    "histogram 0.05). Lower finds more cuts.",
                    min=0.0,
                    max=255.0,
                    step=0.01,
                ),
                "min_scene_length": dataclass_widget(
                    SplitSettings,
                    "min_scene_length",
                    "STRING",
                    "Shortest scene the detector may cut: frames ('15'), seconds ('0.6s') or a timecode; empty = "
                    "PySceneDetect's default.",
                ),
                "filter_shorter_than": dataclass_widget(
                    SplitSettings,
                    "filter_shorter_than",
                    "STRING",
                    "Scenes shorter than this are not saved: frames ('49'), seconds ('2s') or a timecode; empty = "
                    "keep all.",
                ),
                "max_scenes": dataclass_widget(
                    SplitSettings, "max_scenes", "INT", "Keep at most this many scenes per video; 0 = all.", min=0, max=100000
                ),
                "crf": dataclass_widget(
                    SplitSettings, "crf", "INT", "libx264 quality of the clips (lower = better and bigger).", min=0, max=51
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def split(
        self,
        videos: T.MediaSet,
        detector: str,
        threshold: float,
        min_scene_length: str,
        filter_shorter_than: str,
        max_scenes: int,
        crf: int,
        unique_id: str | None = None,
    ):
        from ltx_train_lib.errors import DatasetError
        from ltx_train_lib.scenes import SplitSettings, split_folder

        settings = SplitSettings(
            detector=detector,  # type: ignore[arg-type]
            threshold=threshold or None,
            min_scene_length=min_scene_length.strip() or None,
            filter_shorter_than=filter_shorter_than.strip() or None,
            max_scenes=max_scenes or None,
            crf=crf,
        )
        settings.validate()
        out = videos.work_dir / "scenes"
        bar = comfy.Progress(len(videos.files), unique_id, "split scenes")

        def progress(done: int, total: int, current: Path) -> None:
            comfy.throw_if_interrupted()  # Cancel between videos: finished videos stay split and are reused
            bar.update(done, total)
            if done < total:
                comfy.progress_text(f"video {done + 1}/{total}: {current.name}", unique_id)

        # The library walks the folder itself (and keeps its manifest there); LoadVideos listed the same files.
        recursive = any(p.parent != videos.folder for p in videos.files)
        summary = split_folder(videos.folder, out, settings, recursive=recursive, progress=progress)
        clips = summary.clips
        if not clips:
            why = summary.why_no_clips(settings.filter_shorter_than)
            raise DatasetError(f"SplitScenes: no clip was made from {len(videos.files)} video(s). {why}")
        record = T.MediaSet(folder=out, files=tuple(clips), work_dir=videos.work_dir, name=videos.name, stage="scenes")
        entries, _ = thumbnails_ui(clips, out)
        return {"ui": {**comfy.ui_images(entries), **comfy.ui_text(summary.text(), unique_id)}, "result": (record,)}
