"""Synthetic media with known content, for tests, benchmarks and the demo dataset.

Every segment of a scene video is a different kind of picture (moving square, scrolling stripes,
drifting blocky noise, bouncing disc, sliding checkerboard) with its own colours and steady motion,
so PySceneDetect's ContentDetector at its default threshold (27) finds exactly the cuts placed, and
nothing inside a segment (the motion changes few pixels per frame).

With ``audio=True`` each segment also has its own sound: a sine tone at the segment's frequency
(``SEGMENT_TONES_HZ``, the strongest frequency of its spectrum) with the segment's own envelope (steady,
pulsing, under hiss, beeping, fluttering), panned to its own side, so a test can tell
from the sound alone which scene a span of audio came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from ltx_train_lib.audio import AudioClip
from ltx_train_lib.fileio import atomic_path
from ltx_train_lib.media import VideoWriter

# (frame index in segment, width, height, rng) -> uint8 [H,W,3]. The rng is fixed per segment.
SegmentFn = Callable[[int, int, int, np.random.Generator], np.ndarray]


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> np.ndarray:
    return rng.integers(low, high, size=3, dtype=np.int64).astype(np.uint8)


def _moving_square(i: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    bg, fg = np.array([200, 30, 30], np.uint8), np.array([240, 240, 60], np.uint8)
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = bg
    side = max(4, min(w, h) // 4)
    x = (4 * i) % max(1, w - side)
    y = (h - side) // 2 + int((h // 6) * np.sin(i / 8))
    frame[y : y + side, x : x + side] = fg
    return frame


def _scrolling_stripes(i: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    # Wide stripes moving a few pixels per frame: small frames need slow motion, or every frame is a "cut".
    period = max(16, w // 10)
    xx = np.arange(w)[None, :] + np.arange(h)[:, None] // 2 + max(1, period // 16) * i
    band = ((xx // (period // 2)) % 2).astype(bool)
    frame = np.empty((h, w, 3), np.uint8)
    frame[band] = (30, 60, 200)
    frame[~band] = (120, 220, 250)
    return frame


def _drifting_noise(i: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    # Blocky green noise that slides one pixel per frame: strong texture, small frame-to-frame change.
    block = 8
    base = rng.integers(0, 256, size=(h // block + 1, w // block + 1))
    big = np.roll(np.repeat(np.repeat(base, block, axis=0), block, axis=1)[:h, :w], i, axis=1)
    frame = np.empty((h, w, 3), np.uint8)
    frame[..., 0] = 20
    frame[..., 1] = (80 + big * 0.6).astype(np.uint8)
    frame[..., 2] = (big * 0.3).astype(np.uint8)
    return frame


def _bouncing_disc(i: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.empty((h, w, 3), np.uint8)
    frame[..., 0] = (xx * 255 // max(1, w - 1)).astype(np.uint8)
    frame[..., 1] = 40
    frame[..., 2] = 120
    r = max(3, min(w, h) // 6)
    cx = r + (3 * i) % max(1, w - 2 * r)
    cy = h // 2 + int((h // 2 - r) * abs(np.sin(i / 10)) - (h // 4))
    frame[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (255, 255, 255)
    return frame


def _sliding_checker(i: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    cell = max(16, min(w, h) // 6)
    yy, xx = np.mgrid[0:h, 0:w]
    on = (((xx + i) // cell + (yy + i // 2) // cell) % 2).astype(bool)
    frame = np.empty((h, w, 3), np.uint8)
    frame[on] = (250, 150, 20)
    frame[~on] = (60, 10, 90)
    return frame


SEGMENTS: tuple[SegmentFn, ...] = (
    _moving_square,
    _scrolling_stripes,
    _drifting_noise,
    _bouncing_disc,
    _sliding_checker,
)
# What each segment shows, for the sample clips' captions. No trigger word: the Precompute step's trigger word
# (preprocessing's --id-token) puts it before every caption, once.
SEGMENT_CAPTIONS: tuple[str, ...] = (
    "a yellow square moving across a red background",
    "light blue and dark blue diagonal stripes scrolling sideways",
    "blocky green noise drifting slowly to one side",
    "a white disc bouncing over a blue-to-pink gradient",
    "an orange and purple checkerboard sliding diagonally",
)


# The tone of each segment kind (Hz): far apart, so the strongest FFT bin names the scene even after AAC.
SEGMENT_TONES_HZ: tuple[float, ...] = (262.0, 392.0, 523.0, 659.0, 880.0)
SEGMENT_SOUND_CAPTIONS: tuple[str, ...] = (
    "a steady low tone",
    "a pulsing tone",
    "a tone under soft hiss",
    "short beeps",
    "a high fluttering tone",
)
_TONE_LEVEL = 0.3
_FADE_SECONDS = 0.005  # fade in and out at each cut: no click that a scene detector for sound would hear


def segment_sound(kind: int, num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Float32 [2, num_samples] stereo sound of one segment kind; ``rng`` (fixed per segment) draws the hiss."""
    t = np.arange(num_samples) / sample_rate
    freq = SEGMENT_TONES_HZ[kind % len(SEGMENT_TONES_HZ)]
    tone = np.sin(2 * np.pi * freq * t)  # no vibrato or glide: the strongest FFT bin stays on ``freq``
    envelope = np.ones_like(t)
    if kind % 5 == 1:
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t)  # pulsing at 4 Hz
    elif kind % 5 == 3:
        envelope = ((t * 5.0) % 1.0 < 0.6).astype(np.float64)  # beeps: 5 per second
    elif kind % 5 == 4:
        envelope = 0.85 + 0.15 * np.sin(2 * np.pi * 11.0 * t)  # a fast, shallow flutter
    mono = _TONE_LEVEL * envelope * tone
    if kind % 5 == 2:
        mono = mono + 0.03 * rng.standard_normal(num_samples)  # hiss well below the tone
    fade = min(num_samples // 2, round(_FADE_SECONDS * sample_rate))
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
        mono[:fade] *= ramp
        mono[num_samples - fade :] *= ramp[::-1]
    pan = (kind % 5 - 2) * 0.2  # -0.4 (left) ... +0.4 (right)
    return np.stack([mono * (1 - pan), mono * (1 + pan)]).astype(np.float32) / 1.4


def scene_audio(
    cuts: Sequence[int] = (72, 168),
    num_frames: int = 240,
    fps: float = 24,
    sample_rate: int = 16000,
    seed: int = 0,
    channels: int = 2,
) -> np.ndarray:
    """Float32 [channels, round(num_frames / fps * sample_rate)] sound of a scene video: segment n (frames
    [start, end)) sounds over [start / fps, end / fps) seconds with the sound of the picture it shows."""
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    total = round(num_frames / fps * sample_rate)
    out = np.zeros((2, total), np.float32)
    for n, (start, end) in enumerate(segment_bounds(cuts, num_frames)):
        a, b = round(start / fps * sample_rate), round(end / fps * sample_rate)
        out[:, a:b] = segment_sound((n + seed) % len(SEGMENTS), b - a, sample_rate, np.random.default_rng(seed * 1000 + n))
    return out.mean(axis=0, keepdims=True) if channels == 1 else out


def segment_bounds(cuts: Sequence[int], num_frames: int) -> list[tuple[int, int]]:
    """[(start, end)) frame ranges for cuts at the given frames: cuts (72, 168) of 240 -> [(0,72),(72,168),(168,240)]."""
    edges = [0, *sorted(cuts), num_frames]
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"cuts {tuple(cuts)} must be strictly increasing inside (0, {num_frames})")
    return list(zip(edges, edges[1:], strict=False))


def scene_frames(
    cuts: Sequence[int] = (72, 168), num_frames: int = 240, size: tuple[int, int] = (320, 240), seed: int = 0
) -> Iterator[np.ndarray]:
    """The uint8 [H,W,3] frames of a scene video (as stored, before any display rotation)."""
    w, h = size
    for n, (start, end) in enumerate(segment_bounds(cuts, num_frames)):
        fn = SEGMENTS[(n + seed) % len(SEGMENTS)]
        for i in range(end - start):
            # A fresh generator per frame with the segment's seed: noise patterns are stable across frames.
            yield fn(i, w, h, np.random.default_rng(seed * 1000 + n))


def make_scene_video(
    path: str | Path,
    cuts: Sequence[int] = (72, 168),
    num_frames: int = 240,
    fps: float = 24,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    rotation: int = 0,
    crf: int = 18,
    *,
    audio: bool = False,
    audio_sample_rate: int = 16000,
    audio_channels: int = 2,
    audio_bitrate: int = 64_000,
) -> Path:
    """H.264 MP4 whose scenes are exactly [0,cuts[0]), [cuts[0],cuts[1]), ... , [cuts[-1],num_frames).

    ``rotation`` (counter-clockwise degrees) is stored in the stream's display matrix, as phones do; the
    pixels are stored unrotated, so a reader that honours the matrix shows a ``size`` turned by it.
    ``audio``: add an AAC track with each scene's own sound (``scene_audio``), as long as the video.
    """
    path = Path(path)
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90, got {rotation}")
    if audio and rotation % 360:
        raise ValueError("make_scene_video: audio is only written for rotation 0")
    if rotation % 360 == 0:
        sound = None
        if audio:
            samples = scene_audio(cuts, num_frames, fps, audio_sample_rate, seed, audio_channels)
            sound = AudioClip(samples, audio_sample_rate)
        with VideoWriter(path, fps, crf=crf, audio=sound, audio_bitrate=audio_bitrate) as writer:
            for frame in scene_frames(cuts, num_frames, size, seed):
                writer.write_rgb(frame)
        return path
    time_base = 1 / Fraction(fps).limit_denominator(1001)
    return _write_raw(
        path, scene_frames(cuts, num_frames, size, seed), size, range(num_frames), time_base, rotation, crf
    )


def _write_raw(
    path: Path,
    frames: Iterator[np.ndarray],
    size: tuple[int, int],
    pts: Sequence[int],
    time_base: Fraction,
    rotation: int,
    crf: int,
) -> Path:
    """Low-level writer for what VideoWriter does not do on purpose: explicit timestamps and a display matrix."""
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(1) / time_base)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            stream.codec_context.time_base = time_base
            if rotation % 360:
                # PyAV >= 16 writes the display matrix as coded side data (the 'rotate' tag of old ffmpeg).
                stream.set_display_rotation(rotation % 360)
            for frame_pts, rgb in zip(pts, frames, strict=True):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = frame_pts
                frame.time_base = time_base
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    return path


def make_rotated_video(
    path: str | Path, rotation: int = 90, num_frames: int = 24, fps: float = 24, size: tuple[int, int] = (160, 96)
) -> Path:
    """A one-scene video whose display matrix says to turn it ``rotation`` degrees counter-clockwise."""
    return make_scene_video(path, cuts=(), num_frames=num_frames, fps=fps, size=size, rotation=rotation)


def vfr_ticks(num_ticks: int = 48, drop_every: int = 5) -> list[int]:
    """Timestamps (in ticks of a fixed clock) with every ``drop_every``-th tick missing, like a phone dropping frames.

    The first and last ticks are always kept, so the clip spans exactly ``num_ticks`` ticks.
    """
    return [t for t in range(num_ticks) if t % drop_every != drop_every - 1 or t in (0, num_ticks - 1)]


def make_vfr_video(
    path: str | Path,
    ticks: Sequence[int] | None = None,
    tick_rate: int = 24,
    size: tuple[int, int] = (160, 96),
) -> Path:
    """A variable-frame-rate MP4: frame n is shown at ``ticks[n] / tick_rate`` seconds.

    Frame content is the moving-square segment at position ``ticks[n]``, so a reader that resamples to
    ``tick_rate`` by timestamp can be checked frame by frame.
    """
    ticks = list(vfr_ticks() if ticks is None else ticks)
    w, h = size
    rng = np.random.default_rng(0)
    frames = (_moving_square(t, w, h, rng) for t in ticks)
    return _write_raw(Path(path), frames, size, ticks, Fraction(1, tick_rate), 0, 18)


def make_image(path: str | Path, size: tuple[int, int] = (96, 64), seed: int = 0) -> Path:
    """A small image with a colour gradient and a seeded block, saved by PIL in the format its suffix names."""
    path = Path(path)
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = xx * 255 // max(1, w - 1)
    img[..., 1] = yy * 255 // max(1, h - 1)
    img[..., 2] = _colour(rng)[2]
    y0, x0 = int(rng.integers(0, max(1, h // 2))), int(rng.integers(0, max(1, w // 2)))
    img[y0 : y0 + h // 3, x0 : x0 + w // 3] = _colour(rng)
    with atomic_path(path) as tmp:
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"{path}: unsupported image suffix; use .png, .jpg, .jpeg or .webp")
        Image.fromarray(img).save(tmp, format=fmt)
    return path


# (file name, cuts, frames, seed): each scene >= 49 frames where possible, so an F=49 bucket fits it.
SAMPLE_CLIPS: tuple[tuple[str, tuple[int, ...], int, int], ...] = (
    ("sample_a.mp4", (60,), 120, 0),
    ("sample_b.mp4", (50, 100), 150, 1),
    ("sample_c.mp4", (56,), 112, 3),
)


def scene_caption(cuts: Sequence[int], num_frames: int, seed: int = 0, *, sound: bool = False) -> str:
    """A caption of a scene video: what each of its scenes shows, in order ("..., then ...").

    ``sound``: also say what each scene sounds like ("..., with a pulsing tone")."""
    parts = []
    for n in range(len(segment_bounds(cuts, num_frames))):
        kind = (n + seed) % len(SEGMENTS)
        parts.append(SEGMENT_CAPTIONS[kind] + (f", with {SEGMENT_SOUND_CAPTIONS[kind]}" if sound else ""))
    return ", then ".join(parts)


def sample_captions() -> dict[str, str]:
    """{file name: caption} of the sample clips (samples/clips/captions.json holds the same)."""
    return {name: scene_caption(cuts, n, seed) for name, cuts, n, seed in SAMPLE_CLIPS}


# The sample clips' sound: 16 kHz stereo (what LTX-2's audio VAE takes), at a low AAC rate (tones code cheaply).
SAMPLE_AUDIO_RATE = 16000
SAMPLE_AUDIO_BITRATE = 32_000


def make_sample_clips(
    folder: str | Path, size: tuple[int, int] = (256, 192), fps: float = 24, *, audio: bool = True
) -> list[Path]:
    """Write the demo's sample clips (a few seconds each, real cuts and motion, well under 400 KB each).

    ``audio`` (default): each scene has its own sound (see ``scene_audio``); False writes video-only clips,
    byte-identical to the clips made before sound was added.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        # crf 28: smaller files; the segments are flat colours and coarse noise, so quality stays good.
        make_scene_video(
            folder / name,
            cuts=cuts,
            num_frames=n,
            fps=fps,
            size=size,
            seed=seed,
            crf=28,
            audio=audio,
            audio_sample_rate=SAMPLE_AUDIO_RATE,
            audio_bitrate=SAMPLE_AUDIO_BITRATE,
        )
        for name, cuts, n, seed in SAMPLE_CLIPS
    ]
