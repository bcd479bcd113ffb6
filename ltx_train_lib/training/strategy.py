"""The flow-matching training objective with per-sample first-frame conditioning."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ltx_train_lib.models.ltxv import SPATIAL_COMPRESSION, TEMPORAL_COMPRESSION
from ltx_train_lib.training.sigmas import sample_sigmas


@dataclass
class LossOutput:
    loss: torch.Tensor
    sigmas: torch.Tensor
    conditioned: torch.Tensor  # [B] bool: first frame fed clean


def flow_matching_loss(
    model: torch.nn.Module,
    batch: dict,
    generator: torch.Generator,
    *,
    sampling_mode: str,
    sampling_params: dict,
    first_frame_p: float,
    device: torch.device,
    model_dtype: torch.dtype,
) -> LossOutput:
    """x_t = (1 - sigma) x0 + sigma * noise; the model predicts the velocity noise - x0.

    All random draws (sigmas, noise, first-frame coin flips) come from ``generator``, which is per rank and saved in
    checkpoints, so a resumed run draws exactly what the uninterrupted run would have drawn.
    """
    x0 = batch["latents"].float()  # [B, L, C]
    b, seq_len, _ = x0.shape
    f, h, w = batch["num_frames"], batch["height"], batch["width"]

    sigmas = sample_sigmas(sampling_mode, sampling_params, b, seq_len, generator)
    noise = torch.randn(x0.shape, generator=generator)
    # First-frame (image-to-video) conditioning, drawn per sample: the first latent frame is fed clean with
    # timestep 0 and excluded from the loss. Single-frame samples (images) are never conditioned.
    coin = torch.rand(b, generator=generator) < first_frame_p
    conditioned = coin & (f > 1)
    cond_mask = torch.zeros(b, seq_len, dtype=torch.bool)
    cond_mask[conditioned, : h * w] = True

    s = sigmas.view(b, 1, 1)
    x_t = torch.where(cond_mask[..., None], x0, (1 - s) * x0 + s * noise)
    timesteps = torch.where(cond_mask, torch.zeros(()), sigmas[:, None].expand(b, seq_len) * 1000.0)
    target = noise - x0

    fps = float(batch["fps"])
    pred = model(
        hidden_states=x_t.to(device, model_dtype),
        encoder_hidden_states=batch["prompt_embeds"].to(device, model_dtype),
        timestep=timesteps.to(device),
        encoder_attention_mask=batch["prompt_attention_mask"].to(device).to(model_dtype),
        num_frames=f,
        height=h,
        width=w,
        rope_interpolation_scale=(TEMPORAL_COMPRESSION / fps, SPATIAL_COMPRESSION, SPATIAL_COMPRESSION),
        return_dict=False,
    )[0]
    loss_mask = (~cond_mask).to(device).float()[..., None]
    sq = (pred.float() - target.to(device)) ** 2
    loss = (sq * loss_mask).sum() / (loss_mask.sum() * sq.shape[-1]).clamp(min=1.0)
    return LossOutput(loss=loss, sigmas=sigmas, conditioned=conditioned)
