"""LTX-2 latent math: video and audio compression, packing, normalisation, RoPE positions, the sigma shift.

Video latents pack exactly as LTX-Video's (patch size 1: [B, C, F, H, W] -> [B, F*H*W, C]); audio latents
[B, C, L, M] (L latent frames, M latent mel bins) pack to [B, L, C*M] — diffusers' ``_pack_audio_latents`` without
patching — and are normalised per packed feature with the audio VAE's ``latents_mean``/``latents_std``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ltx_train_lib.models.ltxv.geometry import pack_latents, unpack_latents  # noqa: F401 - same packing

if TYPE_CHECKING:
    import torch

SPATIAL_COMPRESSION = 32
TEMPORAL_COMPRESSION = 8
AUDIO_SAMPLE_RATE = 16000
AUDIO_HOP_LENGTH = 160
AUDIO_LATENT_DOWNSAMPLE = 4  # the audio VAE halves time and mel bins twice
AUDIO_N_FFT = 1024  # the mel front end of every LTX-2.x audio VAE (ComfyUI reads it from the checkpoint's config)
# RoPE: the first latent frame holds one pixel frame, so its start is shifted to 0 (the transformer's causal_offset).
CAUSAL_OFFSET = 1


def audio_latents_per_second(sample_rate: int = AUDIO_SAMPLE_RATE, hop_length: int = AUDIO_HOP_LENGTH) -> float:
    return sample_rate / hop_length / AUDIO_LATENT_DOWNSAMPLE


def pixel_frames(latent_frames: int) -> int:
    return (latent_frames - 1) * TEMPORAL_COMPRESSION + 1


def audio_latent_frames(duration_s: float) -> int:
    """Audio latent frames for a clip of ``duration_s`` seconds: what diffusers' LTX-2 pipelines and ComfyUI's
    ``LTXVEmptyLatentAudio`` allocate (round(duration x 25)), at least 1."""
    return max(1, round(duration_s * audio_latents_per_second()))


def pack_audio(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, L, M] -> [B, L, C*M]."""
    return latents.transpose(1, 2).flatten(2, 3)


def unpack_audio(tokens: torch.Tensor, mel_bins: int) -> torch.Tensor:
    """[B, L, C*M] -> [B, C, L, M]."""
    return tokens.unflatten(2, (-1, mel_bins)).transpose(1, 2)


def normalize_audio(tokens: torch.Tensor, audio_vae) -> torch.Tensor:
    mean = audio_vae.latents_mean.to(tokens.device, tokens.dtype)
    std = audio_vae.latents_std.to(tokens.device, tokens.dtype)
    return (tokens - mean) / std


def denormalize_audio(tokens: torch.Tensor, audio_vae) -> torch.Tensor:
    mean = audio_vae.latents_mean.to(tokens.device, tokens.dtype)
    std = audio_vae.latents_std.to(tokens.device, tokens.dtype)
    return tokens * std + mean


def video_coords(batch_size: int, num_frames: int, height: int, width: int, fps: float) -> torch.Tensor:
    """RoPE patch bounds [B, 3, F*H*W, 2] (start, end) in pixel units, time in seconds: what
    ``LTX2VideoTransformer3DModel.rope.prepare_video_coords`` builds for patch size 1, written out so strategies can
    place extra tokens (IC-LoRA) at chosen positions. Token order frame-major, then row, then column."""
    import torch

    f = torch.arange(num_frames, dtype=torch.float32)
    h = torch.arange(height, dtype=torch.float32)
    w = torch.arange(width, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(f, h, w, indexing="ij"), dim=0).flatten(1)  # [3, N] latent starts
    bounds = torch.stack([grid, grid + 1], dim=-1)  # [3, N, 2]
    scale = torch.tensor([TEMPORAL_COMPRESSION, SPATIAL_COMPRESSION, SPATIAL_COMPRESSION], dtype=torch.float32)
    pixels = bounds * scale.view(3, 1, 1)
    pixels[0] = (pixels[0] + CAUSAL_OFFSET - TEMPORAL_COMPRESSION).clamp(min=0) / fps
    return pixels[None].expand(batch_size, -1, -1, -1).contiguous()


def shift_for_tokens(num_tokens: int, min_tokens: int = 1024, max_tokens: int = 4096, min_shift: float = 0.95,
                     max_shift: float = 2.05) -> float:
    """The token-count shift of the shifted-logit-normal sigma sampler: LTX-2's scheduler uses LTX-Video's
    constants (base 0.95 at 1024 tokens, 2.05 at 4096), counted over the video tokens."""
    m = (max_shift - min_shift) / (max_tokens - min_tokens)
    return m * num_tokens + (min_shift - m * min_tokens)
