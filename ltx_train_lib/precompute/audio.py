"""The sound of a sample, for audio-video families (LTX-2): read from the clip over exactly the span its video
latents cover, encoded by the family's audio VAE, written to ``audio_latents/<name>.pt`` before the latents.

A clip without a sound track (and every image) gets no audio file: its manifest entry records ``audio:
{"frames": 0}`` and the run's report names it (training that learns sound leaves it out, by name).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ltx_train_lib.errors import DatasetError

from . import model_io
from .cache import save_tensor
from .manifest import AUDIO_LATENTS_DIR

if TYPE_CHECKING:
    from .context import RunContext
    from .plan import Sample

logger = logging.getLogger(__name__)


def read_clip_audio(s: Sample, fps: float, num_frames: int, sample_rate: int):
    """[2, N] float32 waveform of the sample's frames [start, start + F) at ``sample_rate``, or None (no sound)."""
    from ltx_train_lib.audio import read_audio

    if s.info.get("kind") == "image" or num_frames <= 1:
        return None
    start = float(getattr(s, "start", 0) or 0) / fps
    clip = read_audio(s.media, start=start, duration=num_frames / fps, sample_rate=sample_rate, channels=2)
    return None if clip is None else clip.samples


def encode_audio(vae: Any, s: Sample, fps: float, video_latents: dict[str, Any], ctx: RunContext) -> None:
    """Encode and save the sample's audio latents (or record that it has none)."""
    import torch

    family = ctx.family
    frames = s.bucket.frames
    try:
        wave = read_clip_audio(s, fps, frames, int(family.audio_sample_rate))
    except DatasetError as exc:
        logger.warning("%s: its sound cannot be read (%s); it is encoded without audio", s.key, exc)
        wave = None
    target = ctx.cache.path(AUDIO_LATENTS_DIR, s.key)
    if wave is None:
        target.unlink(missing_ok=True)
        s.entry["audio"] = {"frames": 0}
        return
    encoded = model_io.encode_audio(vae, torch.from_numpy(wave)[None].float(), frames / fps, family)[0]
    encoded["duration"] = frames / fps
    save_tensor(encoded, target)
    s.entry["audio"] = {"frames": int(encoded["num_frames"]), "sample_rate": int(encoded["sample_rate"])}
    ctx.result.audio_computed.append(s.key)
