"""Validation videos with the diffusers LTX pipelines (text-to-video, and image-to-video with a first frame)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ltx_train_lib.config import ValidationConfig
from ltx_train_lib.errors import ConfigError
from ltx_train_lib.fileio import write_text_atomic

SAMPLES_DIR = "validation_samples"
PROMPTS_FILE = "prompts.json"


def sample_name(step: int, prompt_index: int, video_index: int) -> str:
    return f"step_{step:06d}_p{prompt_index}_v{video_index}.mp4"


def check_validation_inputs(cfg: ValidationConfig) -> None:
    """Fail before training starts if a validation image is missing (not hours later)."""
    for img in cfg.images or []:
        if not Path(img).expanduser().is_file():
            raise ConfigError(f"validation.images: '{img}' does not exist; give an existing image file per prompt")


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
def generate_validation_videos(components, transformer, cfg: ValidationConfig, step: int, output_dir: Path, device) -> list[Path]:
    """Generate ``videos_per_prompt`` videos for every prompt; returns the written paths."""
    from diffusers import LTXImageToVideoPipeline, LTXPipeline
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # per-call truncation notices would drown the training log

    out_dir = Path(output_dir) / SAMPLES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = dict(
        transformer=transformer,
        vae=components.vae.to(device),
        text_encoder=components.text_encoder.to(device),
        tokenizer=components.tokenizer,
        scheduler=components.scheduler,
    )
    t2v = LTXPipeline(**parts)
    i2v = LTXImageToVideoPipeline(**parts) if cfg.images else None
    for pipe in (t2v, i2v):
        if pipe is not None:
            pipe.set_progress_bar_config(disable=True)
    width, height, frames = cfg.video_dims
    written: list[Path] = []
    prompts_index_path = out_dir / PROMPTS_FILE
    try:
        index = json.loads(prompts_index_path.read_text()) if prompts_index_path.is_file() else {}
    except json.JSONDecodeError:
        index = {}
    dtype = next(transformer.parameters()).dtype
    use_autocast = dtype != torch.float32
    for i, prompt in enumerate(cfg.prompts):
        for k in range(cfg.videos_per_prompt):
            generator = torch.Generator(device="cpu").manual_seed(cfg.seed + k)
            kwargs = dict(
                prompt=prompt,
                negative_prompt=cfg.negative_prompt,
                width=width,
                height=height,
                num_frames=frames,
                frame_rate=cfg.frame_rate,
                num_inference_steps=cfg.inference_steps,
                guidance_scale=cfg.guidance_scale,
                generator=generator,
                max_sequence_length=256,  # the T5 length the model was trained with (the pipeline default is 128)
                output_type="np",
            )
            pipe = t2v
            if cfg.images:
                pipe = i2v
                kwargs["image"] = _load_image(cfg.images[i], width, height)
            with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=use_autocast):
                video = pipe(**kwargs).frames[0]
            path = out_dir / sample_name(step, i, k)
            _write_mp4(video, path, cfg.frame_rate)
            written.append(path)
            index[path.name] = prompt
    write_text_atomic(prompts_index_path, json.dumps(index, indent=2))
    components.vae.to("cpu")
    components.text_encoder.to("cpu")
    return written
