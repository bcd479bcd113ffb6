"""Every model-specific step of preprocessing, in one place, answered by the model family: loading the text encoder
and the VAE, text encoding, VAE encoding/decoding, the identities of a source's components, freeing their memory.

The rest of :mod:`ltx_train_lib.precompute` reaches model code only through this module, always as
``model_io.<name>`` at call time (tests spy on one function). The family comes from the run's ``model_source``
(``family=``; the LTX-Video family when none is given, as for caches made before there were families). torch is
imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltx_train_lib.errors import ConfigError
from ltx_train_lib.fileio import atomic_path
from ltx_train_lib.media import frames_to_pixels
from ltx_train_lib.models.registry import DEFAULT_FAMILY, family_for_source, get_family, resolve_source

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ltx_train_lib.models.family import ModelFamily

# Part of every condition's cache key (see manifest.condition_key): the text length conditions are encoded at.
TEXT_MAX_TOKENS = get_family(DEFAULT_FAMILY).text_max_tokens


def family_of(model_source: str) -> ModelFamily:
    return family_for_source(model_source)


def _default(family: ModelFamily | None) -> ModelFamily:
    return family or get_family(DEFAULT_FAMILY)


def encode_prompts(
    tokenizer, text_encoder, prompts: Sequence[str], family: ModelFamily | None = None, *, encoding: str = "comfyui"
) -> list[dict[str, torch.Tensor]]:
    """One condition dict per prompt, in the family's cache schema, in the text ``encoding`` the run asks for
    (``PrecomputeConfig.text_encoding``: ``comfyui`` as ComfyUI feeds the model, ``reference`` as the reference
    trainer cached; see ``ModelFamily.encode_prompts``)."""
    return _default(family).encode_prompts(tokenizer, text_encoder, prompts, encoding=encoding)


def encode_latents(vae, pixels: torch.Tensor, generators: Sequence[torch.Generator], family: ModelFamily | None = None) -> list[dict[str, Any]]:
    """VAE-encode a batch [B,3,F,H,W] of one shape (one CPU generator per sample) into the family's latents schema."""
    return _default(family).encode_latents(vae, pixels, generators)


def encode_audio(vae, waveforms: torch.Tensor, duration_s: float, family: ModelFamily) -> list[dict[str, Any]]:
    """[B, 2, N] waveforms covering ``duration_s`` seconds -> one audio-latents dict per sample (audio-video
    families; ``ModelFamily.encode_audio``)."""
    return family.encode_audio(vae, waveforms, duration_s)


def decode_latents(vae, latents: torch.Tensor, num_frames: int, height: int, width: int, family: ModelFamily | None = None) -> np.ndarray:
    return _default(family).decode_latents(vae, latents, num_frames, height, width)


def decode_latents_file(vae, latents_path: Path, target: Path, family: ModelFamily | None = None) -> Path:
    """A latents ``.pt`` (the reference's schema) decoded to ``target``: an mp4 at its stored fps, or a PNG for a
    1-frame latent. Written atomically."""
    import torch

    from ltx_train_lib.media import write_video

    lat = torch.load(latents_path, map_location="cpu", weights_only=True)
    video = decode_latents(vae, lat["latents"], lat["num_frames"], lat["height"], lat["width"], family)
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
    """Identities of the VAE and of the text encoder a model source uses, for the manifest's settings keys (the
    family knows which sources share components, so switching between them keeps whatever cache is still valid)."""
    try:
        source = resolve_source(model_source)
    except ValueError as exc:
        raise ConfigError(f"model source: {exc}") from exc
    return get_family(source.family).cache_identities(source, load_text_encoder_in_8bit=load_in_8bit)


def _load_text_encoder(model_source: str, device, load_in_8bit: bool, overrides: dict[str, str] | None = None):
    import torch

    from ltx_train_lib.models.loader import load_components

    overrides = overrides or {}
    source = resolve_source(model_source)
    if load_in_8bit:
        return get_family(source.family).load_text_encoder_8bit(
            source, device, {"text_encoder": overrides.get("text_encoder_path"), "tokenizer": overrides.get("tokenizer_path")}
        )
    # bf16 on GPU as the reference; on CPU the tiny model runs in fp32, a real text encoder in bf16 (half the memory).
    dtype = torch.bfloat16 if device.type == "cuda" or source.kind != "tiny" else torch.float32
    comps = load_components(
        model_source, components=("text_encoder", "tokenizer"), text_encoder_dtype=dtype,
        text_encoder_path=overrides.get("text_encoder_path"), tokenizer_path=overrides.get("tokenizer_path"),
    )
    return comps.tokenizer, comps.text_encoder.to(device).eval()


def _load_vae(model_source: str, device, tiling: bool, overrides: dict[str, str] | None = None):
    import torch

    from ltx_train_lib.models.loader import load_components

    # bf16 on GPU as the reference; fp32 on CPU, where bf16 3-D convolutions are slow.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    overrides = overrides or {}
    vae = load_components(model_source, components=("vae",), vae_dtype=dtype, vae_path=overrides.get("vae_path"),
                          audio_vae_path=overrides.get("audio_vae_path")).vae.to(device).eval()
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
    "_load_vae",
    "_model_ids",
    "_release_memory",
    "decode_latents",
    "decode_latents_file",
    "encode_audio",
    "encode_latents",
    "encode_prompts",
    "family_of",
    "frames_to_pixels",
]
