"""A labelled grid of decoded samples, one tile per compared LoRA, as one ComfyUI IMAGE batch (a video grid).

CompareCheckpoints decodes each checkpoint's sample with the user's VAE; this lays them side by side (at most
``columns`` a row), each under a strip naming it ("step 250", "base model"...), frame by frame, so Save Animated
WEBP / Preview Image / Create Video show every checkpoint at once and the names cannot be confused with batch
indices. Pure torch + Pillow (which ComfyUI ships), so it is tested without ComfyUI.
"""

from __future__ import annotations

import math

import torch

BACKGROUND = 0.08  # the gaps between tiles: dark grey, so tiles of black frames stay apart
GAP = 4  # pixels between tiles
MAX_COLUMNS = 4


def label_height(frame_height: int) -> int:
    """A strip readable at the frame's size: 1/8 of it, at least 14 px (the font's smallest clear size)."""
    return max(14, round(frame_height / 8))


def label_strip(text: str, width: int, height: int) -> torch.Tensor:
    """``text`` in white on black, ``height`` x ``width`` x 3 in [0, 1]; cut with an ellipsis when too long."""
    from PIL import Image, ImageDraw, ImageFont

    size = max(10, height - 4)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    shown = text
    while shown and draw.textlength(shown, font=font) > width - 4:
        shown = shown[:-2] + "…" if len(shown) > 1 else ""
    draw.text((2, (height - size) // 2), shown, fill=(255, 255, 255), font=font)
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(height, width, 3).float() / 255.0


def labelled_grid(videos: list[torch.Tensor], labels: list[str], columns: int = MAX_COLUMNS) -> torch.Tensor:
    """Tiles of ``videos`` (each frames x H x W x 3 in [0, 1], one frame for images) under their ``labels``, as
    frames x H' x W' x 3. Shorter videos hold their last frame; every video must have the same frame size (they
    come from one latent)."""
    if not videos or len(videos) != len(labels):
        raise ValueError(f"labelled_grid: {len(videos)} videos for {len(labels)} labels")
    height, width = videos[0].shape[1:3]
    for label, video in zip(labels, videos, strict=True):
        if video.ndim != 4 or tuple(video.shape[1:]) != (height, width, 3):
            raise ValueError(f"labelled_grid: '{label}' is {tuple(video.shape)}, not frames x {height} x {width} x 3")
    frames = max(v.shape[0] for v in videos)
    strip = label_height(height)
    cols = min(columns, len(videos))
    rows = math.ceil(len(videos) / cols)
    tile_h = strip + height
    grid = torch.full((frames, rows * tile_h + (rows - 1) * GAP, cols * width + (cols - 1) * GAP, 3), BACKGROUND)
    for i, (label, video) in enumerate(zip(labels, videos, strict=True)):
        if video.shape[0] < frames:  # hold the last frame
            video = torch.cat([video, video[-1:].expand(frames - video.shape[0], -1, -1, -1)])
        top, left = (i // cols) * (tile_h + GAP), (i % cols) * (width + GAP)
        grid[:, top:top + strip, left:left + width] = label_strip(label, width, strip)
        grid[:, top + strip:top + tile_h, left:left + width] = video.float().clamp(0, 1).cpu()
    return grid
