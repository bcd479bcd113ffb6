"""LTX-2 audio: waveform -> log-mel -> audio VAE latents (cache schema), and latents -> mel -> vocoder waveform.

The mel front end is the one LTX-2's audio VAE was trained with (ComfyUI's and diffusers-based trainers' audio
preprocessing use the same settings): 16 kHz stereo, STFT with a 1024-point Hann window and hop 160 (centred,
reflect padding), magnitude (power 1), a Slaney-scale mel filterbank with Slaney normalisation from 0 Hz to Nyquist,
then ``log(max(mel, 1e-5))``. Written with ``torch.stft`` and transformers' ``mel_filter_bank`` (torchaudio is
ComfyUI's to install, not ours).

Lengths: a clip of D seconds has ``round(25 D)`` audio latent frames, as LTX-2's generators (diffusers' pipelines,
ComfyUI's ``LTXVEmptyLatentAudio``) allocate them; the causal audio VAE turns T mel frames into (T - 1) // 4 + 1
latent frames, so the mel is cut (or padded with silence) to 4 L - 3 frames, which is also the length its decoder
returns for L latents. Audio latents are the posterior's mode, as ComfyUI's audio encoder takes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ltx_train_lib.models.ltx2.geometry import (
    AUDIO_HOP_LENGTH,
    AUDIO_LATENT_DOWNSAMPLE,
    AUDIO_N_FFT,
    AUDIO_SAMPLE_RATE,
    denormalize_audio,
    normalize_audio,
    pack_audio,
    unpack_audio,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

LOG_FLOOR = 1e-5
AUDIO_CHANNELS = 2


@lru_cache(maxsize=8)
def _mel_filters(mel_bins: int, sample_rate: int, n_fft: int):
    import torch
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1, num_mel_filters=mel_bins, min_frequency=0.0,
        max_frequency=sample_rate / 2.0, sampling_rate=sample_rate, norm="slaney", mel_scale="slaney",
    )  # [freq, mel]
    return torch.from_numpy(bank).float()


def waveform_to_mel(waveform: torch.Tensor, mel_bins: int, sample_rate: int = AUDIO_SAMPLE_RATE,
                    n_fft: int = AUDIO_N_FFT, hop_length: int = AUDIO_HOP_LENGTH) -> torch.Tensor:
    """[B, C, N] float waveform at ``sample_rate`` -> log-mel [B, C, T, mel_bins], T = N // hop + 1."""
    import torch

    b, c, n = waveform.shape
    flat = waveform.reshape(b * c, n).float()
    window = torch.hann_window(n_fft, device=flat.device)
    spec = torch.stft(flat, n_fft=n_fft, hop_length=hop_length, win_length=n_fft, window=window, center=True,
                      pad_mode="reflect", return_complex=True).abs()  # [B*C, freq, T]
    mel = torch.matmul(spec.transpose(1, 2), _mel_filters(mel_bins, sample_rate, n_fft).to(flat.device))  # [B*C, T, mel]
    mel = torch.log(mel.clamp(min=LOG_FLOOR))
    return mel.reshape(b, c, mel.shape[1], mel_bins)


def mel_frames_for(latent_frames: int) -> int:
    return latent_frames * AUDIO_LATENT_DOWNSAMPLE - (AUDIO_LATENT_DOWNSAMPLE - 1)


def fit_mel(mel: torch.Tensor, latent_frames: int) -> torch.Tensor:
    """Cut or pad (with silence: the log floor) the time axis of [B, C, T, M] to the frames of ``latent_frames``."""
    import math

    import torch

    want = mel_frames_for(latent_frames)
    have = mel.shape[2]
    if have >= want:
        return mel[:, :, :want]
    pad = torch.full((*mel.shape[:2], want - have, mel.shape[3]), math.log(LOG_FLOOR), dtype=mel.dtype,
                     device=mel.device)
    return torch.cat([mel, pad], dim=2)


def encode_audio(audio_vae, waveforms: torch.Tensor, latent_frames: int) -> list[dict[str, Any]]:
    """[B, 2, N] waveforms at 16 kHz -> one audio-latents dict per sample: ``latents`` [L, C*M] (bf16, normalised),
    ``num_frames`` L, ``mel_bins`` M (latent), ``channels`` C, ``sample_rate``."""
    import torch

    param = next(audio_vae.parameters())
    mel_bins = int(audio_vae.config.mel_bins)
    with torch.inference_mode():
        mel = fit_mel(waveform_to_mel(waveforms.to(param.device), mel_bins), latent_frames)
        latents = audio_vae.encode(mel.to(param.dtype)).latent_dist.mode()  # [B, C, L, M]
        _, channels, frames, latent_mel = latents.shape
        tokens = normalize_audio(pack_audio(latents.float()), audio_vae)
    return [
        {
            "latents": tokens[i].to("cpu", torch.bfloat16).clone(),
            "num_frames": int(frames),
            "mel_bins": int(latent_mel),
            "channels": int(channels),
            "sample_rate": AUDIO_SAMPLE_RATE,
        }
        for i in range(tokens.shape[0])
    ]


def decode_audio(audio_vae, vocoder, tokens: torch.Tensor, mel_bins: int) -> tuple[np.ndarray, int]:
    """Normalised packed audio latents [L, C*M] of one sample -> (float32 waveform [2, N] in [-1, 1], sample rate)."""
    import torch

    param = next(audio_vae.parameters())
    with torch.inference_mode():
        z = unpack_audio(denormalize_audio(tokens[None].to(param.device, torch.float32), audio_vae), mel_bins)
        mel = audio_vae.decode(z.to(param.dtype), return_dict=False)[0]
        vparam = next(vocoder.parameters())
        wave = vocoder(mel.to(vparam.device, vparam.dtype))[0].float().clamp(-1, 1)
    rate = int(getattr(vocoder.config, "output_sampling_rate", AUDIO_SAMPLE_RATE))
    return wave.cpu().numpy(), rate


def stack_waveforms(waves: Sequence[np.ndarray]) -> torch.Tensor:
    import numpy as np
    import torch

    return torch.from_numpy(np.stack([np.asarray(w, dtype=np.float32) for w in waves]))
