"""Every model-specific step of preprocessing, in one place: loading the text encoder and the VAE, T5 encoding,
VAE encoding/decoding, the identities of a model source's components, and freeing their memory.

The rest of :mod:`ltx_train_lib.precompute` reaches model code (``ltx_train_lib.models.*``, transformers, diffusers)
only through this module, always as ``model_io.<name>`` at call time, so the module can be swapped for a model
family's implementation (and tests can spy on one function) without touching the planning or running code.

The functions below are moved unchanged from the former ``ltx_train_lib/precompute.py``; torch, transformers and
diffusers are imported inside them, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltx_train_lib.errors import ConfigError
from ltx_train_lib.fileio import atomic_path
from ltx_train_lib.models.ltxv import TEXT_MAX_TOKENS

if TYPE_CHECKING:
    import numpy as np
    import torch


def encode_prompts(tokenizer, text_encoder, prompts: Sequence[str]) -> list[dict[str, torch.Tensor]]:
    """T5 embeddings as the reference computes them: 256 tokens, padded to max length, mask as bool.

    The encoder is called without the attention mask, as the reference and diffusers' LTX pipelines do, so the
    embeddings match what they produce at inference time.
    """
    import torch

    inputs = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=TEXT_MAX_TOKENS,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    device = next(text_encoder.parameters()).device
    with torch.inference_mode():
        embeds = text_encoder(inputs.input_ids.to(device))[0]
    mask = inputs.attention_mask.bool()
    # clone(): a row of the batch tensor would otherwise be saved with the whole batch's storage.
    return [
        {
            "prompt_embeds": embeds[i].to("cpu", torch.bfloat16).clone(),
            "prompt_attention_mask": mask[i].clone(),
        }
        for i in range(len(prompts))
    ]


def frames_to_pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 [F,H,W,3] -> float [3,F,H,W] in [-1, 1] (the reference's Normalize(0.5, 0.5))."""
    import torch

    return torch.from_numpy(frames).permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)


def encode_latents(vae, pixels: torch.Tensor, generators: Sequence[torch.Generator]) -> list[dict[str, Any]]:
    """VAE-encode a batch [B,3,F,H,W] of one shape: a sample of the latent distribution (as the reference does,
    not the mode), normalised per channel and packed to [F'*H'*W', C] tokens.

    One CPU generator per sample, so each sample's noise depends only on its own seed, not on the batch it is in
    or on the device.
    """
    import torch

    from ltx_train_lib.models.ltxv import normalize_latents, pack_latents

    param = next(vae.parameters())
    with torch.inference_mode():
        dist = vae.encode(pixels.to(param.device, param.dtype)).latent_dist
        # A list of generators: diffusers draws each sample's noise from its own generator (on the CPU).
        latents = normalize_latents(dist.sample(generator=list(generators)), vae)
        _, _, f, h, w = latents.shape
        tokens = pack_latents(latents)
    return [
        {"latents": tokens[i].to("cpu", torch.bfloat16).clone(), "num_frames": f, "height": h, "width": w}
        for i in range(tokens.shape[0])
    ]


def decode_latents(vae, latents: torch.Tensor, num_frames: int, height: int, width: int) -> np.ndarray:
    """Packed latents [F'*H'*W', C] -> uint8 [F,H,W,3]: denormalise, VAE-decode at timestep 0, map [-1,1] to 0..255."""
    import torch

    from ltx_train_lib.models.ltxv import denormalize_latents, unpack_latents

    param = next(vae.parameters())
    with torch.inference_mode():
        z = unpack_latents(latents[None].to(param.device, param.dtype), num_frames, height, width)
        z = denormalize_latents(z, vae)
        temb = None
        if getattr(vae.config, "timestep_conditioning", False):  # 0.9.1+ decoders take the denoising timestep
            temb = torch.zeros(1, device=param.device, dtype=param.dtype)
        video = vae.decode(z, temb, return_dict=False)[0][0]  # [3, F, H, W]
        video = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return video.permute(1, 2, 3, 0).cpu().numpy()


def decode_latents_file(vae, latents_path: Path, target: Path) -> Path:
    """A latents ``.pt`` (the reference's schema) decoded to ``target``: an mp4 at its stored fps, or a PNG for a
    1-frame latent. Written atomically."""
    import torch

    from ltx_train_lib.media import write_video

    lat = torch.load(latents_path, map_location="cpu", weights_only=True)
    video = decode_latents(vae, lat["latents"], lat["num_frames"], lat["height"], lat["width"])
    if len(video) == 1:
        from PIL import Image

        with atomic_path(target) as tmp:
            Image.fromarray(video[0]).save(tmp, format="PNG")
    else:
        # fps <= 0 came from images in old reference caches (its issue #43); 24 is the reference's default.
        fps = float(lat.get("fps") or 0)
        write_video(target, video, fps if fps > 0 else 24.0)
    return target


def _model_ids(model_source: str, load_in_8bit: bool) -> tuple[str, str]:
    """Identities of the VAE and of the text encoder a model source uses, for the manifest's settings keys.

    Named versions share components (every 0.9.5+ version has the same VAE; T5 always comes from the reference's
    repo), so switching between them keeps whatever cache is still valid.
    """
    from ltx_train_lib.models.loader import VAE_REPO_095
    from ltx_train_lib.models.registry import HF_MAIN_REPO, resolve_source

    try:
        source = resolve_source(model_source)
    except ValueError as exc:  # check_model_source raises ValueError for unknown version names
        raise ConfigError(f"model source: {exc}") from exc
    if source.kind == "tiny":
        from ltx_train_lib.models.tiny import TINY_VERSION

        vae_id = text_id = f"tiny:{TINY_VERSION}"
    elif source.kind == "version":
        assert source.version is not None
        old = source.version.name in ("LTXV_2B_0.9.0", "LTXV_2B_0.9.1")
        vae_id = f"hub:{source.version.hf_repo if old else VAE_REPO_095}"
        text_id = f"hub:{HF_MAIN_REPO}"
    elif source.kind == "single_file":
        vae_id, text_id = f"file:{source.location}", f"hub:{HF_MAIN_REPO}"
    else:
        vae_id = text_id = f"{source.kind}:{source.location}"
    return vae_id, text_id + (":8bit" if load_in_8bit else "")


def _load_text_encoder(model_source: str, device, load_in_8bit: bool, overrides: dict[str, str] | None = None):
    import torch

    from ltx_train_lib.models.loader import load_components

    overrides = overrides or {}
    if load_in_8bit:
        return _load_text_encoder_8bit(model_source, device, overrides)
    # bf16 on GPU as the reference; on CPU the tiny model runs in fp32, real T5-XXL in bf16 (half the memory).
    from ltx_train_lib.models.registry import resolve_source

    tiny = resolve_source(model_source).kind == "tiny"
    dtype = torch.bfloat16 if device.type == "cuda" or not tiny else torch.float32
    comps = load_components(
        model_source, components=("text_encoder", "tokenizer"), text_encoder_dtype=dtype,
        text_encoder_path=overrides.get("text_encoder_path"), tokenizer_path=overrides.get("tokenizer_path"),
    )
    text_encoder = comps.text_encoder.to(device).eval()
    return comps.tokenizer, text_encoder


def _load_text_encoder_8bit(model_source: str, device, overrides: dict[str, str] | None = None):
    """T5 quantised to int8 with bitsandbytes (CUDA only), from the same place load_components would read it."""
    if device.type != "cuda":
        raise ConfigError("--load-text-encoder-in-8bit needs a CUDA GPU (bitsandbytes); drop the flag on CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--load-text-encoder-in-8bit needs bitsandbytes: pip install bitsandbytes") from exc
    import torch
    from transformers import BitsAndBytesConfig, T5EncoderModel

    from ltx_train_lib.errors import ModelLoadError
    from ltx_train_lib.models.loader import load_components
    from ltx_train_lib.models.registry import HF_MAIN_REPO, resolve_source

    source = resolve_source(model_source)
    if source.kind == "tiny":
        from ltx_train_lib.models.tiny import tiny_model_dir

        where = str(tiny_model_dir())
    elif source.kind in ("folder", "hub"):
        where = source.location
    else:
        where = HF_MAIN_REPO
    overrides = overrides or {}
    if overrides.get("text_encoder_path"):
        where = overrides["text_encoder_path"]  # a folder; 8-bit loading of a single T5 file is not supported
    try:
        text_encoder = T5EncoderModel.from_pretrained(
            where,
            subfolder="text_encoder",
            quantization_config=BitsAndBytesConfig(load_in_8bit=True),
            dtype=torch.bfloat16,
            device_map={"": device.index or 0},
        )
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        raise ModelLoadError(f"could not load the text encoder in 8-bit from '{where}': {exc}") from exc
    tokenizer = load_components(model_source, components=("tokenizer",), tokenizer_path=overrides.get("tokenizer_path")).tokenizer
    return tokenizer, text_encoder.eval()


def _load_vae(model_source: str, device, tiling: bool, overrides: dict[str, str] | None = None):
    import torch

    from ltx_train_lib.models.loader import load_components

    # bf16 on GPU as the reference; fp32 on CPU, where bf16 3-D convolutions are slow.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    vae_path = (overrides or {}).get("vae_path")
    vae = load_components(model_source, components=("vae",), vae_dtype=dtype, vae_path=vae_path).vae.to(device).eval()
    if tiling:
        vae.enable_tiling()
    return vae


def _release_memory(collect: bool) -> None:
    """Models are freed by reference counting once deleted (they hold no reference cycles); a full gc pass costs
    about a second in a process that imported torch and transformers, so it runs once, at the end of a run."""
    if collect:
        gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


__all__ = [
    "TEXT_MAX_TOKENS",
    "_load_text_encoder",
    "_load_text_encoder_8bit",
    "_load_vae",
    "_model_ids",
    "_release_memory",
    "decode_latents",
    "decode_latents_file",
    "encode_latents",
    "encode_prompts",
    "frames_to_pixels",
]
