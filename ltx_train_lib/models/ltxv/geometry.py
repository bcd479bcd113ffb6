"""LTX-Video latent math: compression, token counts, packing, normalisation, RoPE scale and the sigma shift."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SPATIAL_COMPRESSION = 32
TEMPORAL_COMPRESSION = 8


def latent_frames(num_frames: int) -> int:
    return (num_frames - 1) // TEMPORAL_COMPRESSION + 1


def token_count(width: int, height: int, num_frames: int) -> int:
    """Sequence length of a WxHxF video: (H/32)(W/32)((F-1)/8+1)."""
    return (height // SPATIAL_COMPRESSION) * (width // SPATIAL_COMPRESSION) * latent_frames(num_frames)


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, F, H, W] -> [B, F*H*W, C]; token order frame-major, then row, then column (patch size 1)."""
    b, c, f, h, w = latents.shape
    return latents.permute(0, 2, 3, 4, 1).reshape(b, f * h * w, c)


def unpack_latents(tokens: torch.Tensor, num_frames: int, height: int, width: int) -> torch.Tensor:
    """[B, F*H*W, C] -> [B, C, F, H, W]."""
    b, _, c = tokens.shape
    return tokens.reshape(b, num_frames, height, width, c).permute(0, 4, 1, 2, 3)


def _stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = like.shape[1]
    mean = vae.latents_mean.view(1, c, 1, 1, 1).to(like.device, like.dtype)
    std = vae.latents_std.view(1, c, 1, 1, 1).to(like.device, like.dtype)
    return mean, std


def normalize_latents(latents: torch.Tensor, vae) -> torch.Tensor:
    """Per-channel (z - mean) / std, as the reference stores latents (scaling factor 1.0 for LTX VAEs)."""
    mean, std = _stats(vae, latents)
    return (latents - mean) * vae.config.scaling_factor / std


def denormalize_latents(latents: torch.Tensor, vae) -> torch.Tensor:
    mean, std = _stats(vae, latents)
    return latents * std / vae.config.scaling_factor + mean


def rope_interpolation_scale(fps: float) -> tuple[float, float, float]:
    """The (t, h, w) RoPE scale the transformer expects for a video at ``fps`` (every LTX-Video VAE is 8x/32x)."""
    return (TEMPORAL_COMPRESSION / fps, SPATIAL_COMPRESSION, SPATIAL_COMPRESSION)


def shift_for_tokens(num_tokens: int, min_tokens: int = 1024, max_tokens: int = 4096, min_shift: float = 0.95, max_shift: float = 2.05) -> float:
    """The reference's token-count shift for the shifted-logit-normal sigma sampler (linear, not clamped)."""
    m = (max_shift - min_shift) / (max_tokens - min_tokens)
    b = min_shift - m * min_tokens
    return m * num_tokens + b
