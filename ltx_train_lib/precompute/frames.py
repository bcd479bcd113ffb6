"""The pixels a sample is encoded from: its bucket's frames (first, centre or a random window), resized and cropped
to the bucket; and, for IC-LoRA, its reference video at the same frame indices with the same crop window."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from ltx_train_lib.buckets import Bucket, nearest_bucket
from ltx_train_lib.errors import DatasetError

from .config import PrecomputeConfig
from .plan import Sample, too_short_reason

if TYPE_CHECKING:
    import numpy as np

IMAGE_FPS = 1.0  # the reference's value for images (commit 7687249; fps <= 0 broke RoPE scaling, issue #43)


def load_frames(s: Sample, config: PrecomputeConfig, buckets: list[Bucket]) -> tuple[np.ndarray, float]:
    """Pick the bucket's frames, resize and crop. Re-buckets when the file has fewer frames than it claimed."""
    import numpy as np

    from ltx_train_lib.media import load_image, read_video_frames, resize_and_crop

    rng = np.random.default_rng(s.seed)
    if s.info["kind"] == "image":
        frames, fps = load_image(s.media)[None], IMAGE_FPS
    else:
        n, f = s.info["num_frames"], s.bucket.frames
        if config.frame_selection == "center":
            start = (n - f) // 2
        elif config.frame_selection == "random":
            start = int(rng.integers(0, n - f + 1))
        else:
            start = 0
        # A variable-frame-rate file is resampled to its average rate, so motion speed stays even.
        resample = s.info["fps"] if s.info.get("vfr") else None
        frames, fps = read_video_frames(s.media, start=start, max_frames=f, fps=resample)
        if len(frames) < f and start > 0:
            start = 0
            frames, fps = read_video_frames(s.media, start=start, max_frames=f, fps=resample)
        if len(frames) < f:
            # The container overstated its frame count: fall back to the bucket the real count fits.
            info = dict(s.info, num_frames=len(frames))
            bucket = nearest_bucket(buckets, info["width"], info["height"], len(frames))
            if bucket is None:
                raise DatasetError(too_short_reason(info, buckets))
            s.bucket, s.info = bucket, info
            s.entry["info"] = info
            frames = frames[: bucket.frames]
        s.start = start
    # The reference (IC-LoRA) replays this generator state, so a random crop picks the same window for both.
    s.crop_rng = copy.deepcopy(rng)
    frames = resize_and_crop(frames, s.bucket.width, s.bucket.height, mode=config.reshape_mode, rng=rng)  # type: ignore[arg-type]
    return frames, fps


def load_reference_frames(s: Sample, config: PrecomputeConfig) -> tuple[np.ndarray, float]:
    """The reference's frames at its target's frame indices and bucket, cropped like the target."""
    from ltx_train_lib.media import load_image, read_video_frames, resize_and_crop

    assert s.reference is not None and s.reference_info is not None
    f = s.bucket.frames
    if s.reference_info["kind"] == "image":
        if f != 1:
            raise DatasetError(f"is an image but its target is trained on {f} frames; give a video reference")
        frames, fps = load_image(s.reference)[None], IMAGE_FPS
    else:
        resample = s.reference_info["fps"] if s.reference_info.get("vfr") else None
        frames, fps = read_video_frames(s.reference, start=s.start, max_frames=f, fps=resample)
        if len(frames) < f:
            raise DatasetError(
                f"has {s.start + len(frames)} frames but its target is trained on frames {s.start}-"
                f"{s.start + f - 1}; give a reference as long as the target"
            )
    frames = resize_and_crop(
        frames, s.bucket.width, s.bucket.height, mode=config.reshape_mode, rng=copy.deepcopy(s.crop_rng)
    )  # type: ignore[arg-type]
    return frames, fps


__all__ = ["IMAGE_FPS", "load_frames", "load_reference_frames"]
