"""Video and image reading/writing with PyAV and PIL, plus aspect-preserving resize and crop.

PyAV is the only video backend: decord and torchvision are not installable next to the CPU torch
wheel here (see reference/feasibility.md §1), and PyAV gives frame timestamps, rotation and
variable-frame-rate information that the trainer needs.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import av
import av.logging
import numpy as np
from PIL import Image, ImageOps

from ltx_train_lib.errors import DatasetError
from ltx_train_lib.fileio import atomic_path, describe_os_error

if TYPE_CHECKING:  # audio.py reads files through this module; it is imported where sound is written
    from ltx_train_lib.audio import AudioClip, AudioTrackWriter

# Keep FFmpeg's log (libx264's banner and statistics, decoder warnings) off stderr. PyAV 18 starts silent
# (level None: a no-op C callback). set_level(ERROR) would also hide the banner, but it installs a callback
# that takes the GIL from FFmpeg's worker threads, which PyAV documents as deadlock-prone with threaded
# decoding (PyAV issues #751, #909); a test run here hung that way. None keeps the silence and the safety;
# FFmpeg errors still reach us as exceptions (without the "last error log" detail).
av.logging.set_level(None)

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m4v"})
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".webp"})

MediaKind = Literal["video", "image"]

# Frame intervals that differ by more than this fraction of the median interval make a file "variable frame rate".
_VFR_TOLERANCE = 0.02


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class MediaInfo:
    """What a media file holds. ``width``/``height`` are the display size, after rotation."""

    path: Path
    kind: MediaKind
    num_frames: int
    fps: float
    variable_frame_rate: bool
    width: int
    height: int
    rotation: int  # counter-clockwise degrees to apply to decoded frames for display (0, 90, 180, 270)
    duration: float  # seconds
    has_audio: bool


def _bad(path: Path, problem: str, fix: str) -> DatasetError:
    return DatasetError(f"{path}: {problem}. {fix}")


_REENCODE_FIX = "Re-encode or re-download the file (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`), or remove it."


def _reason(exc: BaseException) -> str:
    """What FFmpeg (or the OS) said, in words: no '[Errno 1094995529]', no repeated file name."""
    text = describe_os_error(exc)
    if isinstance(exc, av.error.FFmpegError):
        return f"FFmpeg: {text[:1].lower()}{text[1:]}"
    return text


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise _bad(path, "file not found", "Check the path.")
    if not path.is_file():
        raise _bad(path, "not a regular file", "Pass a video or image file.")
    try:
        return av.open(str(path), mode="r")
    except PermissionError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror})", "Fix the file permissions.") from exc
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise _bad(path, f"is not a readable video container ({_reason(exc)})", _REENCODE_FIX) from exc


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        if container.streams.audio:
            raise _bad(path, "has an audio stream but no video stream", "Use a video file, or remove this file.")
        raise _bad(path, "has no video stream", _REENCODE_FIX)
    return container.streams.video[0]


def _normalise_rotation(degrees: float | int | None) -> int:
    """Round a display-matrix angle to one of 0/90/180/270 (counter-clockwise)."""
    if degrees is None or (isinstance(degrees, float) and math.isnan(degrees)):
        return 0
    return int(round(float(degrees) / 90.0)) * 90 % 360


def _rotate(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a counter-clockwise display rotation to an [H,W,3] frame (np.rot90 turns counter-clockwise)."""
    if rotation == 0:
        return rgb
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))


def _stream_fps(stream: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def _frame_time(frame: av.VideoFrame, index: int, fps: float) -> float:
    """Presentation time in seconds; falls back to the frame index when the container has no timestamps."""
    t = frame.time
    return float(t) if t is not None else index / fps


def _pts_deltas(pts: list[int]) -> np.ndarray:
    deltas = np.diff(np.sort(np.asarray(pts, dtype=np.int64)))
    return deltas[deltas > 0]


def _is_vfr(pts: list[int]) -> bool:
    """True when frame intervals differ by more than rounding: mkv/webm store milliseconds, so 24 fps
    alternates 41 and 42 ms; one tick of difference is quantisation, not a variable rate."""
    deltas = _pts_deltas(pts)
    if deltas.size < 2:
        return False
    median = float(np.median(deltas))
    return bool(np.any(np.abs(deltas - median) > max(_VFR_TOLERANCE * median, 1.0)))


def probe_media(path: str | Path) -> MediaInfo:
    """Describe a video or image; raises DatasetError naming the file, the problem and the fix."""
    path = Path(path)
    if is_image(path):
        image = load_image(path)
        return MediaInfo(path, "image", 1, 1.0, False, image.shape[1], image.shape[0], 0, 0.0, False)
    if not is_video(path):
        raise _bad(
            path,
            f"unsupported file type '{path.suffix}'",
            f"Use one of {sorted(VIDEO_EXTENSIONS | IMAGE_EXTENSIONS)}.",
        )
    with _open(path) as container:
        stream = _video_stream(path, container)
        has_audio = bool(container.streams.audio)
        stated_frames = int(stream.frames or 0)
        # Demux every packet (no decoding: reading only, fast) to count frames and read their timestamps.
        # It works for containers that store no frame count (mkv, webm), and it finds truncated files,
        # which FFmpeg otherwise decodes silently up to the break.
        pts: list[int] = []
        packets = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet at end of stream
                    continue
                packets += 1
                if packet.pts is not None:
                    pts.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise _bad(path, f"is corrupt or truncated ({_reason(exc)})", _REENCODE_FIX) from exc
        if packets == 0:
            raise _bad(path, "has a video stream with zero frames", _REENCODE_FIX)
        if stated_frames and packets < stated_frames:
            raise _bad(
                path,
                f"is truncated: its header lists {stated_frames} video frames but only {packets} are in the file",
                "Copy or download the file again; if only the start is wanted, re-encode that part.",
            )
        # Decode the first frame: proves the stream is decodable and gives the rotation side data.
        container.seek(0)
        try:
            first = next(iter(container.decode(stream)), None)
        except av.error.FFmpegError as exc:
            raise _bad(path, f"is corrupt: its first video frame cannot be decoded ({_reason(exc)})", _REENCODE_FIX) from exc
        if first is None:
            raise _bad(path, "has a video stream whose frames cannot be decoded", _REENCODE_FIX)
        rotation = _normalise_rotation(first.rotation)
        width, height = int(first.width), int(first.height)
        if rotation in (90, 270):
            width, height = height, width
        num_frames = stated_frames or packets
        rate = _stream_fps(stream)
        complete_pts = len(pts) == packets and stream.time_base is not None
        # When some packets have no timestamp (MPEG-PS does that), sorted gaps would look like a variable rate.
        variable = complete_pts and _is_vfr(pts)
        duration = 0.0
        deltas = _pts_deltas(pts)
        if complete_pts and deltas.size:
            # From the timestamps themselves: the header's duration is an estimate in some containers (MPEG).
            duration = float((max(pts) - min(pts) + int(np.median(deltas))) * stream.time_base)
        elif stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        if rate is None:
            rate = Fraction(num_frames / duration) if duration > 0 else Fraction(1)
        if duration <= 0:
            duration = num_frames / float(rate)
        return MediaInfo(
            path=path,
            kind="video",
            num_frames=num_frames,
            fps=float(rate),
            variable_frame_rate=variable,
            width=width,
            height=height,
            rotation=rotation,
            duration=duration,
            has_audio=has_audio,
        )


def list_media(
    folder: str | Path, recursive: bool = True, kinds: Sequence[MediaKind] = ("video", "image")
) -> list[Path]:
    """Media files under ``folder`` in a stable order (case-sensitive sort of the relative posix path).

    Hidden files and folders (name starting with '.') are skipped: they hold caches such as .precomputed/
    and the temporary files of atomic writes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder. Pass a folder that holds videos or images.")
    suffixes: set[str] = set()
    if "video" in kinds:
        suffixes |= VIDEO_EXTENSIONS
    if "image" in kinds:
        suffixes |= IMAGE_EXTENSIONS
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found = []
    for p in candidates:
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() in suffixes and p.is_file():
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def iter_video_frames(path: str | Path) -> Iterator[tuple[av.VideoFrame, float]]:
    """Decoded frames in presentation order with their time in seconds (frames are not rotated)."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(path, container)
        stream.thread_type = "AUTO"  # frame threading: decoding is the cost of every read
        fps = float(_stream_fps(stream) or 1)
        try:
            for i, frame in enumerate(container.decode(stream)):
                yield frame, _frame_time(frame, i, fps)
        except av.error.FFmpegError as exc:
            raise _bad(path, f"is corrupt or truncated: decoding failed ({_reason(exc)})", _REENCODE_FIX) from exc


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """uint8 [H,W,3] RGB with the stream's display rotation applied."""
    return _rotate(frame.to_ndarray(format="rgb24"), _normalise_rotation(frame.rotation))


def _resample_targets(times: Iterable[tuple[av.VideoFrame, float]], fps: float) -> Iterator[av.VideoFrame]:
    """Yield, for each tick k/fps of a fixed-rate clock, the source frame whose timestamp is nearest.

    Streams: holds only the previous frame. Ticks run from the first frame's time to the end of the
    last frame (its time plus one typical frame interval), so an N-second clip gives about N*fps frames.
    """
    step = 1.0 / fps
    prev: tuple[av.VideoFrame, float] | None = None
    t0: float | None = None
    k = 0
    deltas: list[float] = []
    for frame, t in times:
        if prev is None:
            prev, t0 = (frame, t), t
            continue
        assert t0 is not None
        deltas.append(t - prev[1])
        midpoint = (prev[1] + t) / 2
        while t0 + k * step < midpoint - 1e-9:
            yield prev[0]
            k += 1
        prev = (frame, t)
    if prev is None or t0 is None:
        return
    interval = float(np.median(deltas)) if deltas else step
    end = prev[1] + interval
    while t0 + k * step < end - 1e-6:
        yield prev[0]
        k += 1


def read_video_frames(
    path: str | Path, *, start: int = 0, max_frames: int | None = None, fps: float | None = None
) -> tuple[np.ndarray, float]:
    """Decode a video (or image) into uint8 [F,H,W,3] RGB, display rotation applied.

    ``fps``: resample to that rate by picking the frame nearest each tick (works for VFR files).
    ``start``/``max_frames`` index the output sequence (after resampling when ``fps`` is given).
    Returns (frames, effective fps). An image gives one frame at fps 1.0.
    """
    path = Path(path)
    if is_image(path):
        return load_image(path)[None], 1.0
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if fps is None:
        with _open(path) as container:
            rate = _stream_fps(_video_stream(path, container))
        out_fps = float(rate) if rate else 1.0
        source: Generator[av.VideoFrame, None, None] = (f for f, _ in iter_video_frames(path))
    else:
        out_fps = float(fps)
        source = _resample_targets(iter_video_frames(path), out_fps)
    frames: list[np.ndarray] = []
    # Convert to RGB only the frames that are kept: colour conversion is the main cost after decoding.
    with contextlib.closing(source):
        for i, frame in enumerate(source):
            if i < start:
                continue
            if max_frames is not None and len(frames) >= max_frames:
                break
            frames.append(frame_to_rgb(frame))
    if not frames:
        raise _bad(
            path,
            f"gave no frames from frame {start}" if start else "has no decodable video frames",
            "Use a smaller start index, or re-encode the file." if start else _REENCODE_FIX,
        )
    return np.stack(frames), out_fps


def load_image(path: str | Path) -> np.ndarray:
    """uint8 [H,W,3] RGB, with the EXIF orientation applied."""
    path = Path(path)
    if not path.is_file():
        raise _bad(path, "file not found", "Check the path.")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except PermissionError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror})", "Fix the file permissions.") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _bad(
            path, f"is not a readable image ({_reason(exc)})", "Re-export the image as PNG or JPEG, or remove it."
        ) from exc


def _fps_fraction(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    # limit_denominator keeps NTSC rates exact (29.97 -> 30000/1001) and integer rates integer.
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """Streaming H.264 (yuv420p) writer. Odd frame sizes are cropped by one pixel (yuv420p needs even sizes).

    ``audio`` (an ``audio.AudioClip``) adds an AAC track, stream 1, starting with the first frame; it is
    interleaved with the frames by time and written whole, even when it outlasts them.
    Use as a context manager; the file appears at ``path`` only when the block exits without error.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        *,
        crf: int = 18,
        preset: str = "veryfast",
        audio: AudioClip | None = None,
        audio_bitrate: int = 128_000,
    ) -> None:
        self.path = Path(path)
        self.rate = _fps_fraction(fps)
        self.crf = crf
        self.preset = preset
        self.audio = audio
        self.audio_bitrate = audio_bitrate
        self.frames_written = 0
        self._atomic: contextlib.AbstractContextManager[Path] | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._audio_track: AudioTrackWriter | None = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        # The temp name ends in .tmp, so name the container format explicitly.
        self._container = av.open(str(tmp), mode="w", format="mp4")
        return self

    def _open_stream(self, width: int, height: int) -> None:
        assert self._container is not None
        stream = self._container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        stream.codec_context.time_base = 1 / self.rate
        self._stream = stream
        self._size = (stream.width, stream.height)
        if self.audio is not None:  # streams are added before the first packet: the header lists them all
            from ltx_train_lib.audio import AudioTrackWriter

            self._audio_track = AudioTrackWriter(self._container, self.audio, self.audio_bitrate)

    def write_rgb(self, rgb: np.ndarray) -> None:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected a uint8 [H,W,3] frame, got {rgb.dtype} {rgb.shape}")
        if self._stream is None:
            self._open_stream(rgb.shape[1], rgb.shape[0])
        assert self._size is not None
        w, h = self._size
        if rgb.shape[1] < w or rgb.shape[0] < h:
            raise ValueError(f"frame {rgb.shape[1]}x{rgb.shape[0]} is smaller than the first frame {w}x{h}")
        self.write_frame(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24"))

    def write_frame(self, frame: av.VideoFrame) -> None:
        """Encode a decoded frame as is (no RGB round trip); its pts is replaced by the output frame index."""
        if self._stream is None:
            self._open_stream(frame.width, frame.height)
        assert self._stream is not None and self._container is not None and self._size is not None
        if (frame.width, frame.height) != self._size:
            frame = frame.reformat(width=self._size[0], height=self._size[1])
        frame.pts = self.frames_written
        frame.time_base = self._stream.codec_context.time_base
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1
        if self._audio_track is not None:
            self._audio_track.write_until(self.frames_written / self.rate)

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._container is not None and self._atomic is not None
        container, atomic = self._container, self._atomic
        self._container = self._atomic = None
        if exc_type is None:
            try:
                if self._stream is None:
                    raise ValueError(f"{self.path}: no frames were given to write")
                container.mux(self._stream.encode(None))  # flush the encoder's delayed frames
                if self._audio_track is not None:
                    self._audio_track.finish()
                container.close()
            except BaseException as error:
                container.close()
                atomic.__exit__(type(error), error, error.__traceback__)  # removes the temp file
                raise
            atomic.__exit__(None, None, None)  # fsync + rename into place
        else:
            container.close()
            atomic.__exit__(exc_type, exc, tb)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    *,
    audio: AudioClip | np.ndarray | None = None,
    audio_sample_rate: int | None = None,
    audio_bitrate: int = 128_000,
) -> Path:
    """Write uint8 [F,H,W,3] RGB frames as H.264 MP4 (yuv420p), atomically. Odd sizes are cropped to even.

    ``audio``: a sound track muxed beside the frames as AAC, from the first frame on: an ``audio.AudioClip``
    or a float array [N] / [channels, N] (1 or 2 channels, values in [-1, 1]) with ``audio_sample_rate``.
    Without it the file is exactly what this function always wrote (one video stream).
    """
    clip = None
    if audio is not None:
        from ltx_train_lib.audio import as_audio_clip

        clip = as_audio_clip(audio, audio_sample_rate)
    elif audio_sample_rate is not None:
        raise ValueError("audio_sample_rate was given without audio")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"expected uint8 frames [F,H,W,3] with F >= 1, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    if frames.shape[1] < 2 or frames.shape[2] < 2:
        raise ValueError(f"frames must be at least 2x2 pixels, got {frames.shape[2]}x{frames.shape[1]}")
    with VideoWriter(path, fps, audio=clip, audio_bitrate=audio_bitrate) as writer:
        for frame in frames:
            writer.write_rgb(frame)
    return Path(path)


def resize_and_crop(
    frames: np.ndarray,
    width: int,
    height: int,
    mode: Literal["center", "random"] = "center",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Aspect-preserving bicubic resize so the frame covers width x height, then crop to exactly that size.

    Accepts [H,W,3] or [F,H,W,3] uint8; the same crop window is used for every frame of a clip.
    """
    if mode not in ("center", "random"):
        raise ValueError(f"mode must be 'center' or 'random', got {mode!r}")
    single = frames.ndim == 3
    clip = frames[None] if single else frames
    if clip.ndim != 4:
        raise ValueError(f"expected [H,W,C] or [F,H,W,C] frames, got shape {frames.shape}")
    src_h, src_w = clip.shape[1:3]
    # Scale so the short side (relative to the target aspect) matches, as the reference trainer does.
    scale = max(width / src_w, height / src_h)
    new_w = max(width, round(src_w * scale))
    new_h = max(height, round(src_h * scale))
    if (new_w, new_h) != (src_w, src_h):
        clip = np.stack([np.asarray(Image.fromarray(f).resize((new_w, new_h), Image.Resampling.BICUBIC)) for f in clip])
    if mode == "center":
        top, left = (new_h - height) // 2, (new_w - width) // 2
    else:
        rng = rng if rng is not None else np.random.default_rng()
        top = int(rng.integers(0, new_h - height + 1))
        left = int(rng.integers(0, new_w - width + 1))
    out = np.ascontiguousarray(clip[:, top : top + height, left : left + width])
    return out[0] if single else out


def frames_to_pixels(frames: np.ndarray):
    """uint8 [F,H,W,3] -> float [3,F,H,W] in [-1, 1] (the reference's Normalize(0.5, 0.5)), what every VAE takes."""
    import torch

    return torch.from_numpy(frames).permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)
