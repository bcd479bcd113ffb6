"""Draw the pack's icon, docs/icon.png (the ComfyUI registry's ``[tool.comfy] Icon``): ``python docs/make_icon.py``.

A 256x256 PNG: a film frame (video) with a play triangle and three stacked bars (the small low-rank update a LoRA
adds), in the colours of the monitor panel. Drawn with Pillow only, so it is reproducible and needs no fonts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

ICON = Path(__file__).with_name("icon.png")
SIZE = 256
BACKGROUND = (24, 28, 38, 255)
FRAME = (74, 144, 226, 255)  # the panel's loss blue
ACCENT = (243, 156, 18, 255)  # the panel's smoothed-loss orange
LIGHT = (236, 240, 245, 255)


def draw_icon(size: int = SIZE) -> Image.Image:
    s = size / 256  # every coordinate below is for 256 px
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([0, 0, size - 1, size - 1], radius=int(48 * s), fill=BACKGROUND)
    # the film frame, with sprocket holes along its top and bottom edges
    d.rounded_rectangle([28 * s, 52 * s, 228 * s, 180 * s], radius=int(14 * s), outline=FRAME, width=int(10 * s))
    for i in range(6):
        x = (44 + i * 32) * s
        d.rectangle([x, 60 * s, x + 14 * s, 70 * s], fill=FRAME)
        d.rectangle([x, 162 * s, x + 14 * s, 172 * s], fill=FRAME)
    d.polygon([(104 * s, 88 * s), (104 * s, 144 * s), (152 * s, 116 * s)], fill=LIGHT)  # play
    # the low-rank update: three bars of decreasing width under the frame
    for i, width in enumerate((168, 120, 72)):
        y = (194 + i * 14) * s
        d.rounded_rectangle([44 * s, y, (44 + width) * s, y + 8 * s], radius=int(4 * s), fill=ACCENT)
    return img


def main() -> int:
    draw_icon().save(ICON, optimize=True)
    print(f"wrote {ICON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
