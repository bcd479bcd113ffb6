"""Validation videos with the diffusers LTX pipelines (text-to-video, and image-to-video with a first frame), and
IC-LoRA (reference video) samples from a small sampler loop over the same components."""

from __future__ import annotations

import copy
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


@torch.no_grad()
def sample_with_reference(
    pipe,
    transformer,
    cfg: ValidationConfig,
    prompt: str,
    reference: np.ndarray,
    generator: torch.Generator,
    device,
    image=None,
) -> np.ndarray:
    """IC-LoRA sampling: denoise the target tokens with the reference's latents prepended clean at timestep 0.

    Mirrors training (``reference_video_loss``): sequence ``[reference | target]`` with one shared RoPE grid, and the
    diffusers LTX pipeline's schedule (sigmas linspace(1, 1/N, N), token-count shift) and classifier-free guidance
    with the negative prompt. ``image`` (optional) is fed clean as the target's first latent frame. Returns the
    decoded target as uint8 [F, H, W, 3].
    """
    from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

    from ltx_train_lib.models.ltxv import TEXT_MAX_TOKENS, rope_interpolation_scale
    from ltx_train_lib.precompute import decode_latents, encode_latents, frames_to_pixels
    from ltx_train_lib.training.strategy import video_coords

    vae = pipe.vae
    dtype = next(transformer.parameters()).dtype
    guided = cfg.guidance_scale > 1.0
    embeds, mask, neg_embeds, neg_mask = pipe.encode_prompt(
        prompt,
        cfg.negative_prompt,
        do_classifier_free_guidance=guided,
        max_sequence_length=TEXT_MAX_TOKENS,  # the T5 length the model was trained with
        device=device,
    )
    if guided:  # one batched call: [unconditional, conditional]
        embeds, mask = torch.cat([neg_embeds, embeds]), torch.cat([neg_mask, mask])
    n = embeds.shape[0]

    ref = encode_latents(vae, frames_to_pixels(reference)[None], [generator])[0]
    f, h, w = ref["num_frames"], ref["height"], ref["width"]
    ref_tokens = ref["latents"][None].to(device, torch.float32)
    seq_len = ref_tokens.shape[1]
    latents = torch.randn(ref_tokens.shape, generator=generator).to(device)
    clean = 0  # target tokens fed clean (the first latent frame when an image is given)
    if image is not None:
        first = encode_latents(vae, frames_to_pixels(np.array(image)[None])[None], [generator])[0]["latents"]
        clean = first.shape[0]
        first = first[None].to(device, torch.float32)
        latents[:, :clean] = first

    scheduler = copy.deepcopy(pipe.scheduler)  # set_timesteps/step keep state: never touch the shared one
    steps = cfg.inference_steps
    mu = calculate_shift(
        seq_len,  # the target's token count, as the sigma sampler in training
        scheduler.config.get("base_image_seq_len", 256),
        scheduler.config.get("max_image_seq_len", 4096),
        scheduler.config.get("base_shift", 0.5),
        scheduler.config.get("max_shift", 1.15),
    )
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1.0 / steps, steps), mu=mu, device=device)
    coords = video_coords(n, f, h, w, cfg.frame_rate)
    coords = torch.cat([coords, coords], dim=2).to(device)
    rope_scale = rope_interpolation_scale(cfg.frame_rate)
    ref_timestep = torch.zeros(n, seq_len, device=device)
    for t in scheduler.timesteps:
        target_timestep = t.to(device, torch.float32).expand(n, seq_len).clone()
        target_timestep[:, :clean] = 0.0
        pred = transformer(
            hidden_states=torch.cat([ref_tokens, latents], dim=1).expand(n, -1, -1).to(dtype),
            encoder_hidden_states=embeds.to(dtype),
            timestep=torch.cat([ref_timestep, target_timestep], dim=1),
            encoder_attention_mask=mask,
            num_frames=f,
            height=h,
            width=w,
            rope_interpolation_scale=rope_scale,
            video_coords=coords,
            return_dict=False,
        )[0][:, seq_len:].float()
        if guided:
            uncond, cond = pred.chunk(2)
            pred = uncond + cfg.guidance_scale * (cond - uncond)
        latents = scheduler.step(pred, t, latents, return_dict=False)[0]
        if clean:
            latents[:, :clean] = first  # conditioning tokens are never updated
    return decode_latents(vae, latents[0], f, h, w)


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
    """Generate ``videos_per_prompt`` videos for every prompt; returns the written paths.

    ``reference_mode`` (IC-LoRA, with ``cfg.reference_videos``): each sample is the prompt's reference video and the
    generated video side by side (reference left), so width 2 x W.
    """
    from diffusers import LTXImageToVideoPipeline, LTXPipeline
    from diffusers.utils import logging as diffusers_logging

    from ltx_train_lib.media import write_video

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
    ic = reference_mode and bool(cfg.reference_videos)
    i2v = LTXImageToVideoPipeline(**parts) if cfg.images and not ic else None
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
        reference = load_reference_video(cfg.reference_videos[i], width, height, frames) if ic else None
        for k in range(cfg.videos_per_prompt):
            generator = torch.Generator(device="cpu").manual_seed(cfg.seed + k)
            if reference is not None:
                image = _load_image(cfg.images[i], width, height) if cfg.images else None
                with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=use_autocast):
                    video = sample_with_reference(t2v, transformer, cfg, prompt, reference, generator, device, image)
                path = out_dir / sample_name(step, i, k)
                write_video(path, np.concatenate([reference, video], axis=2), cfg.frame_rate)
                written.append(path)
                index[path.name] = prompt
                continue
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
