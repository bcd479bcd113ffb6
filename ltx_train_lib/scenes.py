"""Scene detection (PySceneDetect) and frame-accurate splitting (PyAV) of videos into one clip per scene.

Detection runs PySceneDetect's SceneManager with one of its detectors. Splitting decodes the source once
with PyAV and re-encodes each scene's frames to ``<video stem>-Scene-NNN.mp4`` (libx264, yuv420p), so a
cut lands on the exact frame the detector chose (stream copy could only cut on keyframes) and no ffmpeg
binary is needed. The detector reports cuts as times; they are mapped to frame indices through the
frames' own timestamps, so variable-frame-rate files split where the detector saw the cut.

Each clip carries the source's sound over exactly its frames' span (``audio.read_audio``, re-encoded to AAC
at the source's rate, mono kept mono, more channels down-mixed to stereo), so the audio lasts as long as the
video; sources without sound give video-only clips. The manifest and summary record which clips have sound.

Clips of one video are written into a hidden staging folder and moved into place together, then the
video is recorded in ``.scenes_manifest.json``; a crash or a bad file never leaves part of a video's
clips behind, and a re-run skips videos whose clips are all present with the same settings.

Before writing, the output folder is checked (it can be created and written, and the disk has about as much free
space as the videos to split take); an error while writing (disk full, read-only folder) stops the run with one
``OutputError``, keeping the clips of the videos already split.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from ltx_train_lib.audio import AAC_SAMPLE_RATES, audio_stream_info, read_audio
from ltx_train_lib.errors import ConfigError, DatasetError, LtxTrainError, OutputError
from ltx_train_lib.fileio import check_writable_dir, describe_os_error, translate_write_errors, write_text_atomic
from ltx_train_lib.media import (
    VideoWriter,
    _normalise_rotation,
    _open,
    _stream_fps,
    frame_to_rgb,
    is_video,
    iter_video_frames,
    list_media,
    probe_media,
)

logger = logging.getLogger(__name__)

DetectorName = Literal["content", "adaptive", "threshold", "histogram"]
DETECTORS: tuple[str, ...] = ("content", "adaptive", "threshold", "histogram")
MANIFEST_NAME = ".scenes_manifest.json"
MANIFEST_VERSION = 1
CLIP_TEMPLATE = "{stem}-Scene-{number:03d}.mp4"

_TIMECODE_RE = re.compile(r"^(\d+):([0-5]?\d):([0-5]?\d(?:\.\d+)?)$")
_SECONDS_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*s$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------- lengths


@dataclass(frozen=True)
class SceneLength:
    """A scene length given either in frames or in seconds."""

    frames: int | None = None
    seconds: float | None = None

    def shorter(self, num_frames: int, duration: float) -> bool:
        """True when a scene of ``num_frames`` frames lasting ``duration`` seconds is below this length."""
        if self.frames is not None:
            return num_frames < self.frames
        assert self.seconds is not None
        return duration < self.seconds - 1e-6  # timestamps are rounded to microseconds

    def for_detector(self) -> int | float:
        """PySceneDetect's own form: int = frames, float = seconds."""
        return self.frames if self.frames is not None else float(self.seconds or 0.0)

    def __str__(self) -> str:
        return f"{self.frames} frames" if self.frames is not None else f"{self.seconds:g}s"


def parse_scene_length(value: str | int | float, what: str = "--filter-shorter-than") -> SceneLength:
    """Parse frames ``"123"``, seconds ``"5s"``/``"2.5s"`` or a timecode ``"HH:MM:SS[.nnn]"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a length, got {value!r}.")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = f"{value}s"
    else:
        text = str(value).strip()
    if text.isdigit():
        return SceneLength(frames=int(text))
    m = _SECONDS_RE.match(text)
    if m:
        return SceneLength(seconds=float(m.group(1)))
    m = _TIMECODE_RE.match(text)
    if m:
        hours, minutes, seconds = int(m.group(1)), int(m.group(2)), float(m.group(3))
        return SceneLength(seconds=hours * 3600 + minutes * 60 + seconds)
    raise ConfigError(
        f"{what}: cannot read {value!r} as a length. Use frames ('48'), seconds ('2s', '2.5s') "
        "or a timecode ('00:00:02.500')."
    )


# --------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SplitSettings:
    """Detection and output options; unset detector options keep PySceneDetect's defaults."""

    detector: DetectorName = "content"
    threshold: float | None = None
    min_scene_length: str | int | None = None  # frames or a length string, passed to the detector
    filter_shorter_than: str | int | None = None  # scenes shorter than this are detected but not saved
    max_scenes: int | None = None  # keep the first N scenes (after filtering)
    downscale: int | None = None  # fixed downscale factor for detection; None = PySceneDetect's automatic one
    frame_skip: int = 0  # detection looks at 1 of every frame_skip+1 frames
    luma_only: bool = False
    adaptive_window: int | None = None
    fade_bias: float | None = None
    backend: Literal["opencv", "pyav"] = "opencv"  # decoder used for detection (splitting always uses PyAV)
    crf: int = 18  # libx264 quality of the clips (lower = better, bigger)
    keep_audio: bool = True  # clips carry the source's sound (AAC); False writes video-only clips

    def validate(self) -> None:
        if self.detector not in DETECTORS:
            raise ConfigError(f"detector: unknown {self.detector!r}. Use one of {', '.join(DETECTORS)}.")
        if self.max_scenes is not None and self.max_scenes < 1:
            raise ConfigError(f"max_scenes: must be >= 1, got {self.max_scenes}. Leave it unset to keep all scenes.")
        if self.downscale is not None and self.downscale < 1:
            raise ConfigError(f"downscale: must be >= 1, got {self.downscale}. Use 1 for full resolution.")
        if self.frame_skip < 0:
            raise ConfigError(f"frame_skip: must be >= 0, got {self.frame_skip}.")
        if self.adaptive_window is not None and self.adaptive_window < 1:
            raise ConfigError(f"adaptive_window: must be >= 1, got {self.adaptive_window}.")
        if self.threshold is not None and self.threshold < 0:
            raise ConfigError(f"threshold: must be >= 0, got {self.threshold}.")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"crf: must be in 0..51, got {self.crf}.")
        if self.backend not in ("opencv", "pyav"):
            raise ConfigError(f"backend: unknown {self.backend!r}. Use 'opencv' or 'pyav'.")
        if self.min_scene_length is not None:
            parse_scene_length(self.min_scene_length, "min_scene_length")
        if self.filter_shorter_than is not None:
            parse_scene_length(self.filter_shorter_than, "filter_shorter_than")

    def key(self) -> dict[str, Any]:
        """What decides the output: a change in any of these redoes a video on re-run."""
        return asdict(self)


def make_detector(settings: SplitSettings):
    """The PySceneDetect detector for ``settings`` (only options the user set are passed)."""
    import scenedetect  # imported here: opencv is a heavy import that the rest of the library does not need

    kwargs: dict[str, Any] = {}
    if settings.min_scene_length is not None:
        kwargs["min_scene_len"] = parse_scene_length(settings.min_scene_length, "min_scene_length").for_detector()
    if settings.detector == "content":
        if settings.threshold is not None:
            kwargs["threshold"] = settings.threshold
        return scenedetect.ContentDetector(luma_only=settings.luma_only, **kwargs)
    if settings.detector == "adaptive":
        if settings.threshold is not None:
            kwargs["adaptive_threshold"] = settings.threshold
        if settings.adaptive_window is not None:
            kwargs["window_width"] = settings.adaptive_window
        return scenedetect.AdaptiveDetector(luma_only=settings.luma_only, **kwargs)
    if settings.detector == "threshold":
        if settings.threshold is not None:
            kwargs["threshold"] = settings.threshold
        if settings.fade_bias is not None:
            kwargs["fade_bias"] = settings.fade_bias
        # add_final_scene: keep the last scene even if the video does not fade out at the end.
        return scenedetect.ThresholdDetector(add_final_scene=True, **kwargs)
    if settings.threshold is not None:
        kwargs["threshold"] = settings.threshold
    return scenedetect.HistogramDetector(**kwargs)


# --------------------------------------------------------------------------------------------- detection


@dataclass
class Scene:
    """One scene: frames [start_frame, end_frame) of the source; times in seconds from its first frame."""

    number: int  # 1-based number in the output file name
    start_frame: int
    end_frame: int
    start_time: float
    end_time: float

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame


def _frame_times(path: Path) -> list[float]:
    """Presentation times (seconds, from the first frame) of every video frame, in presentation order.

    Read by demuxing (no decoding) when every packet has a timestamp; otherwise (MPEG-PS, some AVI) by
    decoding, where FFmpeg fills the missing timestamps in.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        packets = [p.pts for p in container.demux(stream) if p.size]
    if time_base is not None and packets and all(p is not None for p in packets):
        pts = sorted(packets)
        return [float((p - pts[0]) * time_base) for p in pts]
    times = [t for _, t in iter_video_frames(path)]
    return [t - times[0] for t in times] if times else []


def detect_scene_times(path: str | Path, settings: SplitSettings) -> list[tuple[float, float]]:
    """Scenes as (start, end) seconds from the first frame; a video with no cut is one scene."""
    import scenedetect

    path = Path(path)
    try:
        video = scenedetect.open_video(str(path), backend=settings.backend)
    except Exception as exc:  # VideoOpenFailure and decoder errors of either backend
        raise DatasetError(
            f"{path}: is not a readable video: PySceneDetect cannot open it ({describe_os_error(exc)}). "
            "Re-encode the file to H.264 MP4, or remove it."
        ) from exc
    manager = scenedetect.SceneManager()
    if settings.downscale is not None:
        manager.auto_downscale = False
        manager.downscale = settings.downscale
    manager.add_detector(make_detector(settings))
    try:
        manager.detect_scenes(video=video, frame_skip=settings.frame_skip)
    except Exception as exc:
        raise DatasetError(
            f"{path}: scene detection failed while decoding ({describe_os_error(exc)}). Re-encode the file, or "
            "remove it."
        ) from exc
    scene_list = manager.get_scene_list(start_in_scene=True)
    if not scene_list:
        return []
    # start_in_scene=True makes the first scene start at the first frame, whichever the detector; measuring
    # from it removes any container start offset that the backend and our demuxer might count differently.
    origin = scene_list[0][0].seconds
    return [(start.seconds - origin, end.seconds - origin) for start, end in scene_list]


def plan_scenes(
    times: list[tuple[float, float]],
    frame_times: list[float],
    *,
    filter_shorter_than: SceneLength | None = None,
    max_scenes: int | None = None,
) -> tuple[list[Scene], int]:
    """Turn scene times into frame ranges, drop short scenes, keep the first ``max_scenes``.

    A frame belongs to a scene when its timestamp lies in [start, end), with a tolerance of a quarter of
    the typical frame interval to absorb millisecond rounding in the detector's timestamps.
    Returns (scenes to write, number of scenes detected).
    """
    if not frame_times:
        return [], 0
    interval = float(np.median(np.diff(frame_times))) if len(frame_times) > 1 else 1.0
    eps = 0.25 * interval
    video_end = frame_times[-1] + interval
    kept: list[Scene] = []
    detected = 0
    for start_s, end_s in times:
        start = bisect.bisect_left(frame_times, start_s - eps)
        end = bisect.bisect_left(frame_times, end_s - eps)
        if end <= start:
            continue
        detected += 1
        duration = (frame_times[end] if end < len(frame_times) else video_end) - frame_times[start]
        if filter_shorter_than is not None and filter_shorter_than.shorter(end - start, duration):
            continue
        kept.append(Scene(0, start, end, frame_times[start], frame_times[start] + duration))
    if max_scenes is not None:
        kept = kept[:max_scenes]
    for n, scene in enumerate(kept, start=1):
        scene.number = n
    return kept, detected


# --------------------------------------------------------------------------------------------- splitting


def clip_name(stem: str, number: int) -> str:
    return CLIP_TEMPLATE.format(stem=stem, number=number)


# Sound of the clips: AAC at this bit rate per channel pair (the encoder lowers it where a low rate needs less).
CLIP_AUDIO_BITRATE = 128_000


def clip_audio_format(path: str | Path) -> tuple[int, int] | None:
    """(sample rate, channels) the clips of ``path`` get for its sound, or None when it has none.

    The source's rate where AAC can store it (else 48 kHz); mono stays mono, more channels become stereo.
    """
    info = audio_stream_info(path)
    if info is None:
        return None
    rate = info.sample_rate if info.sample_rate in AAC_SAMPLE_RATES else 48000
    return rate, 1 if info.channels == 1 else 2


def write_scene_clips(
    path: str | Path,
    scenes: list[Scene],
    out_dir: str | Path,
    stem: str | None = None,
    crf: int = 18,
    *,
    audio: bool = True,
) -> list[int]:
    """Decode ``path`` once and write each scene's frames to ``out_dir/<stem>-Scene-NNN.mp4``.

    Frames go to scenes by index in presentation order (the same order ``plan_scenes`` counted), so the
    clips hold exactly [start_frame, end_frame). Rotated sources are written upright (the rotation is
    applied to the pixels) so every reader, including ones that ignore display matrices, sees them the same.
    ``audio`` (and a source with sound): each clip also gets the sound from its first frame's time for
    num_frames / fps seconds, the duration of the clip's video, read sample-accurately by ``read_audio``.
    Returns the number of frames written per scene.
    """
    path, out_dir = Path(path), Path(out_dir)
    stem = stem or path.stem
    with _open(path) as container:  # DatasetError for a bad input: an OSError here is always about the output
        rate = _stream_fps(container.streams.video[0]) or Fraction(24)
    sound_format = clip_audio_format(path) if audio else None
    counts = [0] * len(scenes)
    if not scenes:
        return counts
    j = 0
    writer: VideoWriter | None = None
    # Closed in `finally`: the threaded decoder stops here on every path, not whenever the generator is collected.
    decoded = iter_video_frames(path)
    try:
        for index, (frame, _t) in enumerate(decoded):
            while j < len(scenes) and index >= scenes[j].end_frame:
                if writer is not None:
                    writer.__exit__(None, None, None)
                    writer = None
                j += 1
            if j == len(scenes):
                break  # past the last scene kept: stop decoding
            if index < scenes[j].start_frame:
                continue  # a gap (a filtered scene, or a fade the threshold detector left out)
            if writer is None:
                sound = None
                if sound_format is not None:
                    # The clip's video lasts num_frames / rate (frames are written at a constant rate): the
                    # sound spans exactly that from the scene's first frame, zero-padded past the track's end.
                    sound = read_audio(
                        path,
                        start=scenes[j].start_time,
                        duration=scenes[j].num_frames / float(rate),
                        sample_rate=sound_format[0],
                        channels=sound_format[1],
                    )
                writer = VideoWriter(
                    out_dir / clip_name(stem, scenes[j].number),
                    rate,
                    crf=crf,
                    audio=sound,
                    audio_bitrate=CLIP_AUDIO_BITRATE,
                ).__enter__()
            rotation = _normalise_rotation(frame.rotation)
            if rotation == 0 and frame.width % 2 == 0 and frame.height % 2 == 0:
                writer.write_frame(frame)  # no RGB round trip: the encoder converts to yuv420p directly
            else:
                writer.write_rgb(frame_to_rgb(frame))
            counts[j] += 1
        if writer is not None:
            writer.__exit__(None, None, None)
            writer = None
    except BaseException as exc:
        if writer is not None:
            writer.__exit__(type(exc), exc, exc.__traceback__)  # removes the half-written temp file
        raise
    finally:
        decoded.close()
    return counts


# --------------------------------------------------------------------------------------------- manifest


def _read_manifest(output_dir: Path) -> dict[str, Any]:
    path = output_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") == MANIFEST_VERSION and isinstance(data.get("videos"), dict):
            return data
        logger.warning("%s: unknown manifest version; videos will be split again.", path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, AttributeError) as exc:
        logger.warning("%s: unreadable (%s); videos will be split again.", path, exc)
    return {"version": MANIFEST_VERSION, "videos": {}}


def _write_manifest(output_dir: Path, manifest: dict[str, Any]) -> None:
    write_text_atomic(output_dir / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _source_key(path: Path) -> str:
    return str(path.resolve())


def _fingerprint(path: Path, settings: SplitSettings) -> dict[str, Any]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "settings": settings.key()}


def _is_done(entry: dict[str, Any] | None, fingerprint: dict[str, Any], output_dir: Path) -> bool:
    if not entry or any(entry.get(k) != v for k, v in fingerprint.items()):
        return False
    clips = entry.get("clips", [])
    return all((output_dir / clip["file"]).is_file() for clip in clips)


# --------------------------------------------------------------------------------------------- driver


@dataclass
class ClipInfo:
    file: str  # posix path relative to the output folder
    start_frame: int
    end_frame: int
    frames: int
    start_time: float
    end_time: float
    has_audio: bool = False  # the clip carries the source's sound


@dataclass
class VideoResult:
    source: Path
    status: Literal["split", "unchanged", "skipped"]
    clips: list[ClipInfo] = field(default_factory=list)
    scenes_detected: int = 0
    reason: str = ""  # why a video was skipped


AUDIO_NAMES_SHOWN = 5


def audio_line(total: int, without: list[str], what: str = "files") -> str:
    """"sound: 4 of 6 clips; without: a.mp4, b.mp4": the count, and the first few names without sound."""
    line = f"sound: {total - len(without)} of {total} {what}"
    if without:
        shown = ", ".join(without[:AUDIO_NAMES_SHOWN])
        more = f" and {len(without) - AUDIO_NAMES_SHOWN} more" if len(without) > AUDIO_NAMES_SHOWN else ""
        line += f"; without: {shown}{more}"
    return line


@dataclass
class SplitSummary:
    output_dir: Path
    results: list[VideoResult]

    @property
    def split(self) -> list[VideoResult]:
        return [r for r in self.results if r.status == "split"]

    @property
    def unchanged(self) -> list[VideoResult]:
        return [r for r in self.results if r.status == "unchanged"]

    @property
    def skipped(self) -> list[VideoResult]:
        return [r for r in self.results if r.status == "skipped"]

    @property
    def clips(self) -> list[Path]:
        return [self.output_dir / c.file for r in self.results if r.status != "skipped" for c in r.clips]

    @property
    def clips_without_audio(self) -> list[Path]:
        return [self.output_dir / c.file for r in self.results if r.status != "skipped" for c in r.clips if not c.has_audio]

    def audio_text(self) -> str:
        """One line: how many clips have sound, and the first few without ("" when there are no clips)."""
        return audio_line(len(self.clips), [p.name for p in self.clips_without_audio], "clips")

    def text(self) -> str:
        lines = [
            f"{len(self.split)} split, {len(self.unchanged)} already done, {len(self.skipped)} skipped; "
            f"{len(self.clips)} clips in {self.output_dir}"
        ]
        if self.clips:
            lines.append(self.audio_text())
        lines += [f"  skipped {r.source}: {r.reason}" for r in self.skipped]
        return "\n".join(lines)

    def why_no_clips(self, filter_shorter_than: str | int | None = None) -> str:
        """Why the run gave no clip, in sentences that each name the video or setting and the fix."""
        parts = [r.reason for r in self.skipped]
        done = self.split + self.unchanged
        detected = sum(r.scenes_detected for r in done)
        if done and filter_shorter_than is not None and detected:
            parts.append(
                f"All {detected} scene(s) of {len(done)} readable video(s) are shorter than filter_shorter_than "
                f"{filter_shorter_than!r}. Lower filter_shorter_than, or clear it to keep every scene."
            )
        elif done:
            parts.append(
                f"{', '.join(r.source.name for r in done)}: no decodable frames in any scene. Re-encode the file(s)."
            )
        return " ".join(parts) or "No video was found. Add videos (.mp4, .mov, .mkv, .webm, ...) to the input."


def split_video(
    video: str | Path,
    output_dir: str | Path,
    settings: SplitSettings | None = None,
    *,
    subdir: str = "",
    manifest: dict[str, Any] | None = None,
) -> VideoResult:
    """Split one video into ``output_dir/subdir``; raises DatasetError for a bad input.

    With ``manifest`` (as read from the output folder) a video already split with the same settings is
    left alone, and the manifest is updated and saved after a successful split.
    """
    settings = settings or SplitSettings()
    settings.validate()
    video, output_dir = Path(video), Path(output_dir)
    manifest = _read_manifest(output_dir) if manifest is None else manifest
    key = _source_key(video)
    fingerprint = _fingerprint(video, settings)
    entry = manifest["videos"].get(key)
    if _is_done(entry, fingerprint, output_dir):
        clips = [ClipInfo(**c) for c in entry["clips"]]
        return VideoResult(video, "unchanged", clips, entry.get("scenes_detected", len(clips)))

    info = probe_media(video)  # clear DatasetError for corrupt, audio-only, zero-frame and unreadable files
    if info.kind != "video":
        raise DatasetError(f"{video}: is an image, not a video. Scene splitting needs a video file.")
    times = detect_scene_times(video, settings)
    filter_len = None if settings.filter_shorter_than is None else parse_scene_length(settings.filter_shorter_than)
    frame_times = _frame_times(video)
    scenes, detected = plan_scenes(times, frame_times, filter_shorter_than=filter_len, max_scenes=settings.max_scenes)

    target_dir = output_dir / subdir if subdir else output_dir
    # Reading errors are DatasetErrors (media._open / iter_video_frames); an OSError in here is the output's.
    with translate_write_errors(output_dir, "output folder", _KEPT_HINT):
        target_dir.mkdir(parents=True, exist_ok=True)
        # Stage every clip of this video, then move them in together: the folder never holds part of a video.
        staging = Path(tempfile.mkdtemp(prefix=f".{video.stem}.", suffix=".tmp", dir=target_dir))
        try:
            counts = write_scene_clips(video, scenes, staging, stem=video.stem, crf=settings.crf, audio=settings.keep_audio)
            with_audio = settings.keep_audio and info.has_audio
            # Clips an earlier run made for this video under other settings would mix with the new ones.
            for old in (entry or {}).get("clips", []):
                (output_dir / old["file"]).unlink(missing_ok=True)
            clips: list[ClipInfo] = []
            for scene, count in zip(scenes, counts, strict=True):
                if count == 0:
                    continue  # the decoder gave fewer frames than the container listed (damaged tail)
                name = clip_name(video.stem, scene.number)
                os.replace(staging / name, target_dir / name)
                rel = (Path(subdir) / name).as_posix() if subdir else name
                clips.append(
                    ClipInfo(
                        rel,
                        scene.start_frame,
                        scene.start_frame + count,
                        count,
                        scene.start_time,
                        scene.end_time,
                        has_audio=with_audio,
                    )
                )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        manifest["videos"][key] = {
            **fingerprint,
            "source": str(video),
            "scenes_detected": detected,
            "clips": [asdict(c) for c in clips],
        }
        _write_manifest(output_dir, manifest)
    return VideoResult(video, "split", clips, detected)


ProgressFn = Callable[[int, int, Path], None]
_KEPT_HINT = "The clips of the videos split before are kept; run again to continue."


def _inputs(input_path: Path, output_dir: Path, recursive: bool) -> list[tuple[Path, str]]:
    """(video, output subfolder) pairs; subfolders mirror the input tree so equal stems never collide."""
    if input_path.is_file():
        return [(input_path, "")]
    if not input_path.is_dir():
        raise DatasetError(f"{input_path}: no such file or folder. Pass a video file or a folder of videos.")
    out = output_dir.resolve()
    pairs = []
    for video in list_media(input_path, recursive=recursive, kinds=("video",)):
        if out == video.resolve().parent or out in video.resolve().parents:
            continue  # the output folder sits inside the input folder: never split our own clips
        rel_parent = video.relative_to(input_path).parent.as_posix()
        pairs.append((video, "" if rel_parent == "." else rel_parent))
    return pairs


def split_folder(
    input_path: str | Path,
    output_dir: str | Path,
    settings: SplitSettings | None = None,
    *,
    recursive: bool = False,
    progress: ProgressFn | None = None,
) -> SplitSummary:
    """Split one video or every video in a folder into scene clips under ``output_dir``.

    Bad inputs are skipped with a reason (see ``SplitSummary.skipped``); videos already split with the
    same settings are left alone. ``progress(done, total, current_video)`` is called before each video.
    """
    settings = settings or SplitSettings()
    settings.validate()
    input_path, output_dir = Path(input_path), Path(output_dir)
    if input_path.is_file() and not is_video(input_path):
        raise DatasetError(f"{input_path}: not a video file (suffix '{input_path.suffix}'). Pass a video or a folder.")
    pairs = _inputs(input_path, output_dir, recursive)
    manifest = _read_manifest(output_dir)
    todo = [v for v, _ in pairs if not _is_done(manifest["videos"].get(_source_key(v)), _fingerprint(v, settings), output_dir)]
    if todo:
        # Rough estimate of what will be written: clips at the default quality are about the size of their source.
        needed = sum(v.stat().st_size for v in todo)
        check_writable_dir(output_dir, "output folder", needed_bytes=needed)
    results: list[VideoResult] = []
    claimed: dict[str, Path] = {}  # output name prefix -> the video that owns it
    for done, (video, subdir) in enumerate(pairs):
        if progress is not None:
            progress(done, len(pairs), video)
        prefix = f"{subdir}/{video.stem}"
        if prefix in claimed:
            reason = (
                f"its clips would have the same names as those of {claimed[prefix].name} "
                "(same file name, other extension). Rename one of the two videos."
            )
            logger.warning("skipping %s: %s", video, reason)
            results.append(VideoResult(video, "skipped", reason=reason))
            continue
        claimed[prefix] = video
        try:
            result = split_video(video, output_dir, settings, subdir=subdir, manifest=manifest)
        except OutputError:
            raise  # the output folder, not this video: every other video would fail the same way
        except LtxTrainError as exc:
            logger.warning("skipping %s", exc)
            results.append(VideoResult(video, "skipped", reason=str(exc)))
            continue
        except (OSError, av.error.FFmpegError) as exc:
            reason = f"{video}: cannot be split ({describe_os_error(exc)}). Check the file can be read, or re-encode it."
            logger.warning("skipping %s", reason)
            results.append(VideoResult(video, "skipped", reason=reason))
            continue
        results.append(result)
    if progress is not None:
        progress(len(pairs), len(pairs), input_path)
    return SplitSummary(output_dir, results)
