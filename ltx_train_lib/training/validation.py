"""Validation videos: input checks, the prompts encoded once, the frame rate, the prompt/seed loop and the files
written. Sampling itself is the model family's (``ModelFamily.validation_sampler``): text-to-video, image-to-video and
IC-LoRA (reference video), from the embeddings :func:`encode_validation_prompts` made at training start."""

from __future__ import annotations

import gc
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ltx_train_lib.config import ValidationConfig
from ltx_train_lib.errors import ConfigError, DatasetError
from ltx_train_lib.fileio import write_text_atomic

if TYPE_CHECKING:
    from ltx_train_lib.config import ModelConfig
    from ltx_train_lib.data import PrecomputedDataset
    from ltx_train_lib.models.family import ModelFamily

log = logging.getLogger("ltx_train_lib.trainer")

SAMPLES_DIR = "validation_samples"
PROMPTS_FILE = "prompts.json"
# When neither validation.frame_rate nor a dataset says: ComfyUI's LTXVConditioning default.
FALLBACK_FRAME_RATE = 25.0


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


@dataclass(frozen=True)
class ValidationConditions:
    """The validation prompts and the negative prompt as the family's condition dicts (``prompt_embeds``,
    ``prompt_attention_mask``, on the CPU), encoded once so no text encoder stays loaded during training."""

    prompts: list[dict[str, torch.Tensor]]
    negative: dict[str, torch.Tensor]


def _encode(family: ModelFamily, tokenizer, text_encoder, prompts: Sequence[str], encoding: str | None):
    """``family.encode_prompts``, passing the text encoding (``data.text_encoding``) where the family takes one."""
    import inspect

    params = inspect.signature(family.encode_prompts).parameters.values()
    if encoding is not None and any(p.name == "encoding" or p.kind is p.VAR_KEYWORD for p in params):
        return family.encode_prompts(tokenizer, text_encoder, prompts, encoding=encoding)
    return family.encode_prompts(tokenizer, text_encoder, prompts)


def encode_conditions(family: ModelFamily, tokenizer, text_encoder, cfg: ValidationConfig,
                      encoding: str | None = None) -> ValidationConditions:
    """Encode ``cfg.prompts`` and ``cfg.negative_prompt`` with a loaded text encoder (in one batch)."""
    conditions = _encode(family, tokenizer, text_encoder, [*cfg.prompts, cfg.negative_prompt], encoding)
    return ValidationConditions(prompts=list(conditions[:-1]), negative=conditions[-1])


def encode_validation_prompts(
    family: ModelFamily,
    model: ModelConfig,
    cfg: ValidationConfig,
    *,
    device: torch.device,
    dtype: torch.dtype,
    load_in_8bit: bool = False,
    encoding: str | None = None,
) -> ValidationConditions:
    """Load the text encoder (in ``dtype``, or 8-bit through the family), encode the validation and negative prompts
    with the family's ``encode_prompts`` (the encoding of the cached conditions), and free the encoder again before
    returning: it is never resident while training or sampling."""
    from ltx_train_lib.models.registry import resolve_source

    device = torch.device(device)
    source = resolve_source(model.model_source)
    overrides = {"text_encoder": model.text_encoder_path, "tokenizer": model.tokenizer_path}
    if load_in_8bit and device.type != "cuda":
        log.warning("acceleration.load_text_encoder_in_8bit needs a CUDA GPU; validation prompts are encoded in %s", dtype)
        load_in_8bit = False
    if load_in_8bit:
        tokenizer, text_encoder = family.load_text_encoder_8bit(source, device, overrides)
    else:
        parts = family.load_components(source, ("text_encoder", "tokenizer"), dtypes={"text_encoder": dtype}, overrides=overrides)
        tokenizer, text_encoder = parts.tokenizer, parts.text_encoder.to(device)
        del parts
    try:
        return encode_conditions(family, tokenizer, text_encoder.eval(), cfg, encoding)
    finally:
        del text_encoder
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def dataset_frame_rate(dataset: PrecomputedDataset) -> float:
    """The frame rate training gave RoPE: the most common ``fps`` of the dataset's video latents (images too when it
    has no video), read as the dataset reads it (24 when absent). A mix of rates is logged."""
    rates: Counter[float] = Counter()
    videos = [s for s in dataset.samples if s.shape[0] > 1] or list(dataset.samples)
    for sample in videos:
        try:  # mmap: only the small fields are read, not the latents
            header = torch.load(sample.latents_path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a file in torch's legacy (non-zip) format cannot be mapped
            header = torch.load(sample.latents_path, map_location="cpu", weights_only=True)
        fps = float(header.get("fps", 24.0))
        rates[fps if fps > 0 else 1.0] += 1  # data.py's rule for a broken fps
    if not rates:
        return FALLBACK_FRAME_RATE
    (fps, count), *others = rates.most_common()
    if others:
        shown = ", ".join(f"{r:g} fps x{c}" for r, c in rates.most_common())
        log.warning("the dataset mixes frame rates (%s); validation uses the most common, %g fps; set "
                    "validation.frame_rate to choose another", shown, fps)
    return fps


def resolved_frame_rate(cfg: ValidationConfig, frame_rate: float | None = None) -> float:
    """``frame_rate`` (given), else ``cfg.frame_rate``, else :data:`FALLBACK_FRAME_RATE`."""
    return float(frame_rate or cfg.frame_rate or FALLBACK_FRAME_RATE)


@torch.no_grad()
def generate_validation_videos(
    components,
    transformer,
    cfg: ValidationConfig,
    step: int,
    output_dir: Path,
    device,
    reference_mode: bool = False,
    conditions: ValidationConditions | None = None,
    frame_rate: float | None = None,
) -> list[Path]:
    """Generate ``videos_per_prompt`` videos for every prompt with the model family's sampler; returns the written
    paths.

    ``conditions`` are the prompts' embeddings from :func:`encode_validation_prompts` (the trainer's); without them
    the prompts are encoded here with ``components.text_encoder`` where it is (tests, scripts). The mp4 and RoPE use
    ``frame_rate``, else ``cfg.frame_rate`` (the trainer resolves a null one to the dataset's fps). Compiled blocks
    are swapped for their eager originals for the duration. ``reference_mode`` (IC-LoRA, with
    ``cfg.reference_videos``): each sample is the prompt's reference video and the generated video side by side
    (reference left), so width 2 x W.
    """
    from ltx_train_lib.media import write_video
    from ltx_train_lib.models.registry import get_family
    from ltx_train_lib.training.model_setup import eager_blocks

    family = get_family(components.source.family)
    if conditions is None:
        if components.text_encoder is None or components.tokenizer is None:
            raise ValueError("generate_validation_videos needs conditions= or components with a text encoder and tokenizer")
        conditions = encode_conditions(family, components.tokenizer, components.text_encoder, cfg)
    if len(conditions.prompts) != len(cfg.prompts):
        raise ValueError(f"{len(conditions.prompts)} encoded prompts for {len(cfg.prompts)} validation prompts")
    fps = resolved_frame_rate(cfg, frame_rate)

    out_dir = Path(output_dir) / SAMPLES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    ic = reference_mode and bool(cfg.reference_videos)
    width, height, frames = cfg.video_dims
    written: list[Path] = []
    prompts_index_path = out_dir / PROMPTS_FILE
    try:
        index = json.loads(prompts_index_path.read_text()) if prompts_index_path.is_file() else {}
    except json.JSONDecodeError:
        index = {}
    dtype = next(transformer.parameters()).dtype
    use_autocast = dtype != torch.float32
    sampler: Any = None
    with eager_blocks(family, transformer):
        try:
            sampler = family.validation_sampler(components, transformer, device, image_to_video=bool(cfg.images) and not ic)
            for i, prompt in enumerate(cfg.prompts):
                reference = load_reference_video(cfg.reference_videos[i], width, height, frames) if ic else None
                for k in range(cfg.videos_per_prompt):
                    generator = torch.Generator(device="cpu").manual_seed(cfg.seed + k)
                    image = _load_image(cfg.images[i], width, height) if cfg.images else None
                    path = out_dir / sample_name(step, i, k)
                    with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=use_autocast):
                        sample = sampler.generate(cfg, conditions.prompts[i], conditions.negative, generator,
                                                  frame_rate=fps, image=image, reference=reference)
                    # Audio-video families return a GeneratedClip: its sound goes into the mp4 as an audio stream.
                    video, sound, rate = (sample, None, None) if isinstance(sample, np.ndarray) else (
                        sample.frames, sample.audio, sample.sample_rate)
                    write_video(path, np.concatenate([reference, video], axis=2) if reference is not None else video, fps,
                                audio=sound, audio_sample_rate=rate)
                    written.append(path)
                    index[path.name] = prompt
        finally:
            if sampler is not None:
                sampler.close()
    write_text_atomic(prompts_index_path, json.dumps(index, indent=2))
    return written
