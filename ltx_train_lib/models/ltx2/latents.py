"""LTX-2 video VAE encode/decode in the cache schema (the same schema as LTX-Video's: packed, normalised tokens)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ltx_train_lib.models.ltxv.geometry import denormalize_latents, normalize_latents, pack_latents, unpack_latents

if TYPE_CHECKING:
    import numpy as np
    import torch


def _video(vae):
    return getattr(vae, "video", vae)  # Ltx2Autoencoders or a bare video VAE


def encode_tokens(vae, pixels: torch.Tensor, generators: Sequence[torch.Generator], dtype=None):
    import torch

    video = _video(vae)
    param = next(video.parameters())
    with torch.inference_mode():
        dist = video.encode(pixels.to(param.device, param.dtype)).latent_dist
        sample = dist.sample(generator=list(generators))
        latents = normalize_latents(sample if dtype is None else sample.to(dtype), video)
        _, _, f, h, w = latents.shape
        tokens = pack_latents(latents)
    return tokens.clone(), (f, h, w)


def encode_latents(vae, pixels: torch.Tensor, generators: Sequence[torch.Generator]) -> list[dict[str, Any]]:
    """As LTX-Video: a sample of the latent distribution (one CPU generator per sample), normalised, packed."""
    import torch

    tokens, (f, h, w) = encode_tokens(vae, pixels, generators)
    return [
        {"latents": tokens[i].to("cpu", torch.bfloat16).clone(), "num_frames": f, "height": h, "width": w}
        for i in range(tokens.shape[0])
    ]


def decode_latents(vae, latents: torch.Tensor, num_frames: int, height: int, width: int) -> np.ndarray:
    import torch

    video = _video(vae)
    param = next(video.parameters())
    with torch.inference_mode():
        z = denormalize_latents(unpack_latents(latents[None].to(param.device, param.dtype), num_frames, height, width), video)
        temb = torch.zeros(1, device=param.device, dtype=param.dtype) if video.config.timestep_conditioning else None
        out = video.decode(z, temb, return_dict=False)[0][0]
        out = ((out.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return out.permute(1, 2, 3, 0).cpu().numpy()
