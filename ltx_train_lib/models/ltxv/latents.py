"""LTX-Video VAE encode/decode in the cache schema of the reference trainer (reference/ltx-video-trainer.md §3.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ltx_train_lib.models.ltxv.geometry import denormalize_latents, normalize_latents, pack_latents, unpack_latents

if TYPE_CHECKING:
    import numpy as np
    import torch


def encode_latents(vae, pixels: torch.Tensor, generators: Sequence[torch.Generator]) -> list[dict[str, Any]]:
    """VAE-encode a batch [B,3,F,H,W] of one shape: a sample of the latent distribution (as the reference does,
    not the mode), normalised per channel and packed to [F'*H'*W', C] tokens.

    One CPU generator per sample, so each sample's noise depends only on its own seed, not on the batch it is in
    or on the device.
    """
    import torch

    tokens, (f, h, w) = encode_tokens(vae, pixels, generators)
    return [
        {"latents": tokens[i].to("cpu", torch.bfloat16).clone(), "num_frames": f, "height": h, "width": w}
        for i in range(tokens.shape[0])
    ]


def encode_tokens(
    vae, pixels: torch.Tensor, generators: Sequence[torch.Generator], dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """The packed, normalised latent sample [B, F'*H'*W', C] of [B,3,F,H,W] pixels (on the VAE's device, normalised
    in ``dtype``, default the VAE's) and the latent (F', H', W'); :func:`encode_latents` stores these in the cache
    schema, validation conditions on them at full precision."""
    import torch

    param = next(vae.parameters())
    with torch.inference_mode():
        dist = vae.encode(pixels.to(param.device, param.dtype)).latent_dist
        # A list of generators: diffusers draws each sample's noise from its own generator (on the CPU).
        sample = dist.sample(generator=list(generators))
        latents = normalize_latents(sample if dtype is None else sample.to(dtype), vae)
        _, _, f, h, w = latents.shape
        tokens = pack_latents(latents)
    return tokens.clone(), (f, h, w)  # clone(): a normal tensor (not an inference tensor) for the caller


def decode_latents(vae, latents: torch.Tensor, num_frames: int, height: int, width: int) -> np.ndarray:
    """Packed latents [F'*H'*W', C] -> uint8 [F,H,W,3]: denormalise, VAE-decode at timestep 0, map [-1,1] to 0..255."""
    import torch

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
