"""Synthetic media with known content, for tests, benchmarks and the demo dataset.

Every segment of a scene video is a different kind of picture (moving square, scrolling stripes,
drifting blocky noise, bouncing disc, sliding checkerboard) with its own colours and steady motion,
so PySceneDetect's ContentDetector at its default threshold (27) finds exactly the cuts placed, and
nothing inside a segment (the motion changes few pixels per frame).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

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
) -> Path:
    """H.264 MP4 whose scenes are exactly [0,cuts[0]), [cuts[0],cuts[1]), ... , [cuts[-1],num_frames).

    ``rotation`` (counter-clockwise degrees) is stored in the stream's display matrix, as phones do; the
    pixels are stored unrotated, so a reader that honours the matrix shows a ``size`` turned by it.
    """
    path = Path(path)
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90, got {rotation}")
    if rotation % 360 == 0:
        with VideoWriter(path, fps, crf=crf) as writer:
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


def scene_caption(cuts: Sequence[int], num_frames: int, seed: int = 0) -> str:
    """A caption of a scene video: what each of its scenes shows, in order ("..., then ...")."""
    return ", then ".join(
        SEGMENT_CAPTIONS[(n + seed) % len(SEGMENTS)] for n in range(len(segment_bounds(cuts, num_frames)))
    )


def sample_captions() -> dict[str, str]:
    """{file name: caption} of the sample clips (samples/clips/captions.json holds the same)."""
    return {name: scene_caption(cuts, n, seed) for name, cuts, n, seed in SAMPLE_CLIPS}


def make_sample_clips(folder: str | Path, size: tuple[int, int] = (256, 192), fps: float = 24) -> list[Path]:
    """Write the demo's sample clips (a few seconds each, real cuts and motion, well under 400 KB each)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        # crf 28: smaller files; the segments are flat colours and coarse noise, so quality stays good.
        make_scene_video(folder / name, cuts=cuts, num_frames=n, fps=fps, size=size, seed=seed, crf=28)
        for name, cuts, n, seed in SAMPLE_CLIPS
    ]
