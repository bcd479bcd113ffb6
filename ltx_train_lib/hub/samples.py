"""Validation samples for the Hub: find the last validation round's videos and their prompts, and turn them into
GIFs (the Hub's model-card widget and markdown images show GIFs inline; mp4 would need a player)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SAMPLES_DIR = "validation_samples"
PROMPTS_FILE = "prompts.json"
HUB_SAMPLES_DIR = "sample_videos"
SAMPLE_NAME = re.compile(r"^step_(?P<step>\d+)_p(?P<p>\d+)_v(?P<v>\d+)\.mp4$")
GIF_MAX_FPS = 15.0
GIF_MAX_SIDE = 512  # keeps a 161-frame sample GIF to a few MB; the mp4 stays the reference


@dataclass(frozen=True)
class Sample:
    path: Path
    step: int
    prompt_index: int
    video_index: int
    prompt: str

    @property
    def path_in_repo(self) -> str:
        """Where this sample's GIF goes in the Hub repository."""
        return f"{HUB_SAMPLES_DIR}/{self.path.stem}.gif"


def _read_prompts(samples_dir: Path) -> dict[str, str]:
    path = samples_dir / PROMPTS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        logger.warning("%s: unreadable (%s); samples get their prompts from the config instead", path, exc)
        return {}
    if not isinstance(data, dict):
        logger.warning("%s: expected a JSON object {file name: prompt}; ignoring it", path)
        return {}
    return {str(k): str(v) for k, v in data.items()}


def last_validation_samples(output_dir: str | Path, config_prompts: list[str] | None = None) -> list[Sample]:
    """The samples of the last validation round (highest step), ordered by prompt then video index."""
    samples_dir = Path(output_dir) / SAMPLES_DIR
    if not samples_dir.is_dir():
        return []
    found = [(m, p) for p in samples_dir.iterdir() if p.is_file() and (m := SAMPLE_NAME.match(p.name))]
    if not found:
        return []
    last = max(int(m["step"]) for m, _ in found)
    prompts = _read_prompts(samples_dir)
    config_prompts = config_prompts or []
    samples = []
    for m, path in found:
        if int(m["step"]) != last:
            continue
        p = int(m["p"])
        prompt = prompts.get(path.name) or (config_prompts[p] if p < len(config_prompts) else "")
        samples.append(Sample(path, last, p, int(m["v"]), prompt))
    return sorted(samples, key=lambda s: (s.prompt_index, s.video_index))


def video_to_gif(
    src: str | Path, dst: str | Path, *, max_fps: float = GIF_MAX_FPS, max_side: int = GIF_MAX_SIDE
) -> Path:
    """mp4 -> looping GIF at min(source fps, max_fps). Frames are picked by time, so the GIF plays at real speed."""
    import av
    from PIL import Image

    src, dst = Path(src), Path(dst)
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        src_fps = float(rate) if rate else 24.0
        frames = [frame.to_image() for frame in container.decode(stream)]
    if not frames:
        raise ValueError(f"{src}: no video frames")
    fps = min(src_fps, max_fps)
    n_out = max(1, int(len(frames) * fps / src_fps + 1e-6))
    picked = [frames[min(len(frames) - 1, round(i * src_fps / fps))] for i in range(n_out)]
    w, h = picked[0].size
    scale = min(1.0, max_side / max(w, h))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        picked = [f.resize(size, Image.Resampling.LANCZOS) for f in picked]
    dst.parent.mkdir(parents=True, exist_ok=True)
    picked[0].save(dst, format="GIF", save_all=True, append_images=picked[1:], duration=round(1000 / fps), loop=0)
    return dst
