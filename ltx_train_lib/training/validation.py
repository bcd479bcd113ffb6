"""Validation videos: input checks, the prompt/seed loop and the files written. Sampling itself is the model family's
(``ModelFamily.validation_sampler``): text-to-video, image-to-video and IC-LoRA (reference video)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ltx_train_lib.config import ValidationConfig
from ltx_train_lib.errors import ConfigError, DatasetError
from ltx_train_lib.fileio import write_text_atomic

SAMPLES_DIR = "validation_samples"
PROMPTS_FILE = "prompts.json"


def sample_name(step: int, prompt_index: int, video_index: int) -> str:
    return f"step_{step:06d}_p{prompt_index}_v{video_index}.mp4"


def check_validation_inputs(cfg: ValidationConfig, reference_mode: bool = False) -> None:
    """Fail before training starts if a validation image or reference video is missing or too short (not hours
    later)."""
    for img in cfg.images or []:
        if not Path(img).expanduser().is_file():
            raise ConfigError(f"validation.images: '{img}' does not exist; give an existing image file per prompt")
    if not reference_mode:
        return
    from ltx_train_lib.media import probe_media

    frames = cfg.video_dims[2]
    for i, video in enumerate(cfg.reference_videos or []):
        where = f"validation.reference_videos[{i}] '{video}'"
        path = Path(video).expanduser()
        if not path.is_file():
            raise ConfigError(f"{where} does not exist; give an existing reference video per prompt")
        try:
            info = probe_media(path)
        except DatasetError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if info.num_frames < frames:
            fits = max(1, (info.num_frames - 1) // 8 * 8 + 1)
            raise ConfigError(
                f"{where} has {info.num_frames} frames but validation.video_dims asks for {frames}; use a longer "
                f"reference or set the frame count of validation.video_dims to at most {fits}"
            )


def load_reference_video(path: str | Path, width: int, height: int, num_frames: int) -> np.ndarray:
    """The first ``num_frames`` frames of a reference video, resized (aspect kept) and center-cropped to
    width x height: uint8 [F, H, W, 3], as the reference's IC-LoRA pipeline prepares it."""
    from ltx_train_lib.media import read_video_frames, resize_and_crop

    frames, _ = read_video_frames(Path(path).expanduser(), max_frames=num_frames)
    if len(frames) < num_frames:
        raise ConfigError(
            f"validation.reference_videos: '{path}' has {len(frames)} frames, fewer than the {num_frames} of "
            "validation.video_dims; use a longer reference or fewer frames"
        )
    return resize_and_crop(frames, width, height)


def _load_image(path: str, width: int, height: int):
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(Image.open(Path(path).expanduser())).convert("RGB")
    # Resize so the image covers (width, height), then center-crop: PIL sizes are (w, h) (the reference mixed them).
    scale = max(width / img.width, height / img.height)
    img = img.resize((max(width, round(img.width * scale)), max(height, round(img.height * scale))), Image.BICUBIC)
    left, top = (img.width - width) // 2, (img.height - height) // 2
    return img.crop((left, top, left + width, top + height))


def _write_mp4(frames, path: Path, fps: float) -> None:
    from diffusers.utils import export_to_video

    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.mp4")
    try:
        export_to_video(list(frames), str(tmp), fps=max(1, round(fps)))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@torch.no_grad()
def generate_validation_videos(
    components, transformer, cfg: ValidationConfig, step: int, output_dir: Path, device, reference_mode: bool = False
) -> list[Path]:
    """Generate ``videos_per_prompt`` videos for every prompt with the model family's sampler; returns the written
    paths.

    ``reference_mode`` (IC-LoRA, with ``cfg.reference_videos``): each sample is the prompt's reference video and the
    generated video side by side (reference left), so width 2 x W.
    """
    from diffusers.utils import logging as diffusers_logging

    from ltx_train_lib.media import write_video
    from ltx_train_lib.models.registry import get_family

    diffusers_logging.set_verbosity_error()  # per-call truncation notices would drown the training log

    out_dir = Path(output_dir) / SAMPLES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    ic = reference_mode and bool(cfg.reference_videos)
    sampler = get_family(components.source.family).validation_sampler(
        components, transformer, device, image_to_video=bool(cfg.images) and not ic
    )
    width, height, frames = cfg.video_dims
    written: list[Path] = []
    prompts_index_path = out_dir / PROMPTS_FILE
    try:
        index = json.loads(prompts_index_path.read_text()) if prompts_index_path.is_file() else {}
    except json.JSONDecodeError:
        index = {}
    dtype = next(transformer.parameters()).dtype
    use_autocast = dtype != torch.float32
    try:
        for i, prompt in enumerate(cfg.prompts):
            reference = load_reference_video(cfg.reference_videos[i], width, height, frames) if ic else None
            for k in range(cfg.videos_per_prompt):
                generator = torch.Generator(device="cpu").manual_seed(cfg.seed + k)
                image = _load_image(cfg.images[i], width, height) if cfg.images else None
                path = out_dir / sample_name(step, i, k)
                with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=use_autocast):
                    if reference is not None:
                        video = sampler.with_reference(cfg, prompt, reference, generator, image)
                    else:
                        video = sampler.generate(cfg, prompt, generator, image)
                if reference is not None:
                    write_video(path, np.concatenate([reference, video], axis=2), cfg.frame_rate)
                else:
                    _write_mp4(video, path, cfg.frame_rate)
                written.append(path)
                index[path.name] = prompt
    finally:
        sampler.close()
    write_text_atomic(prompts_index_path, json.dumps(index, indent=2))
    return written
