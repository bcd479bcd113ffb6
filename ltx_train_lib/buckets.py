"""Resolution buckets ``WxHxF``: parsing, validation and nearest-bucket assignment.

W and H must be multiples of 32 (the VAE's spatial compression) and F must be 8k+1 (its temporal compression plus
the causal first frame); F=1 buckets hold images.
"""

from __future__ import annotations

from dataclasses import dataclass

from ltx_train_lib.errors import ConfigError
from ltx_train_lib.models.family import LatentGeometry

# Every LTX family's VAE compresses 32x in space and 8x in time (plus the causal first frame).
GEOMETRY = LatentGeometry()
SPATIAL_COMPRESSION, TEMPORAL_COMPRESSION = GEOMETRY.spatial, GEOMETRY.temporal


@dataclass(frozen=True, order=True)
class Bucket:
    width: int
    height: int
    frames: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.frames}"

    @property
    def tokens(self) -> int:
        return GEOMETRY.token_count(self.width, self.height, self.frames)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(F', H', W') of the latents."""
        return GEOMETRY.latent_shape(self.width, self.height, self.frames)


def validate_bucket(width: int, height: int, frames: int, where: str = "resolution bucket") -> Bucket:
    text = f"{width}x{height}x{frames}"
    if width <= 0 or height <= 0 or width % SPATIAL_COMPRESSION or height % SPATIAL_COMPRESSION:
        lo_w, lo_h = max(32, width // 32 * 32), max(32, height // 32 * 32)
        raise ConfigError(
            f"{where} '{text}': width and height must be positive multiples of 32; e.g. use {lo_w}x{lo_h}x{frames}"
        )
    if frames < 1 or (frames - 1) % TEMPORAL_COMPRESSION:
        near = max(1, (frames - 1) // 8 * 8 + 1)
        raise ConfigError(
            f"{where} '{text}': the frame count must be 8k+1 (1, 9, 17, 25, ..., 121); e.g. use {width}x{height}x{near}"
        )
    return Bucket(width, height, frames)


def parse_buckets(spec: str | list[str] | tuple[str, ...]) -> list[Bucket]:
    """Parse ``"768x448x89;512x512x49"`` (or a list of such strings) into distinct, validated buckets."""
    parts = spec if isinstance(spec, (list, tuple)) else str(spec).replace(",", ";").split(";")
    buckets: list[Bucket] = []
    for raw in parts:
        raw = raw.strip().lower()
        if not raw:
            continue
        fields = raw.split("x")
        if len(fields) != 3 or not all(f.strip().isdigit() for f in fields):
            raise ConfigError(f"resolution bucket '{raw}': expected WIDTHxHEIGHTxFRAMES such as 768x448x89")
        b = validate_bucket(*(int(f) for f in fields))
        if b not in buckets:
            buckets.append(b)
    if not buckets:
        # No flag or widget name here: the caller's prefix names the input (--resolution-buckets, or the node's
        # resolution_buckets widget).
        raise ConfigError("no resolution bucket given; give one or more WIDTHxHEIGHTxFRAMES such as 768x448x89")
    return buckets


def nearest_bucket(buckets: list[Bucket], width: int, height: int, num_frames: int) -> Bucket | None:
    """The bucket for a clip: among buckets whose F fits the clip (F <= num_frames), the most frames, then the
    closest aspect ratio and size (|H-h| + |W-w|). None when the clip is too short for every bucket."""
    fitting = [b for b in buckets if b.frames <= num_frames]
    if not fitting:
        return None
    max_f = max(b.frames for b in fitting)
    candidates = [b for b in fitting if b.frames == max_f]
    aspect = width / max(height, 1)

    def score(b: Bucket) -> tuple[float, int]:
        return (abs(b.width / b.height - aspect), abs(b.height - height) + abs(b.width - width))

    return min(candidates, key=score)
