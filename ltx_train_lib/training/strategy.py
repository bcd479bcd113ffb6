"""The flow-matching training objectives: standard (with per-sample first-frame conditioning) and IC-LoRA's
reference-video strategy (reference/ltx-video-trainer.md §3.5-3.7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ltx_train_lib.errors import DatasetError
from ltx_train_lib.models.ltxv import SPATIAL_COMPRESSION, TEMPORAL_COMPRESSION, rope_interpolation_scale
from ltx_train_lib.training.sigmas import sample_sigmas

if TYPE_CHECKING:
    from ltx_train_lib.data import PrecomputedDataset


@dataclass
class LossOutput:
    loss: torch.Tensor
    sigmas: torch.Tensor
    conditioned: torch.Tensor  # [B] bool: first frame fed clean


@dataclass
class _Noised:
    """One batch noised for flow matching: the model input, its per-token timesteps and the velocity target."""

    x_t: torch.Tensor  # [B, L, C]
    timesteps: torch.Tensor  # [B, L]: sigma * 1000, 0 on conditioning tokens
    target: torch.Tensor  # [B, L, C]: noise - x0
    cond_mask: torch.Tensor  # [B, L] bool: tokens fed clean (first frame), excluded from the loss
    sigmas: torch.Tensor
    conditioned: torch.Tensor


def _noise_batch(x0: torch.Tensor, num_frames: int, tokens_per_frame: int, generator: torch.Generator,
                 sampling_mode: str, sampling_params: dict, first_frame_p: float) -> _Noised:
    """x_t = (1 - sigma) x0 + sigma * noise, with per-sample first-frame conditioning.

    All random draws (sigmas, noise, first-frame coin flips, in that order) come from ``generator``, which is per rank
    and saved in checkpoints, so a resumed run draws exactly what the uninterrupted run would have drawn.
    """
    b, seq_len, _ = x0.shape
    sigmas = sample_sigmas(sampling_mode, sampling_params, b, seq_len, generator)
    noise = torch.randn(x0.shape, generator=generator)
    # First-frame (image-to-video) conditioning, drawn per sample: the first latent frame is fed clean with
    # timestep 0 and excluded from the loss. Single-frame samples (images) are never conditioned.
    coin = torch.rand(b, generator=generator) < first_frame_p
    conditioned = coin & (num_frames > 1)
    cond_mask = torch.zeros(b, seq_len, dtype=torch.bool)
    cond_mask[conditioned, :tokens_per_frame] = True
    s = sigmas.view(b, 1, 1)
    return _Noised(
        x_t=torch.where(cond_mask[..., None], x0, (1 - s) * x0 + s * noise),
        timesteps=torch.where(cond_mask, torch.zeros(()), sigmas[:, None].expand(b, seq_len) * 1000.0),
        target=noise - x0,
        cond_mask=cond_mask,
        sigmas=sigmas,
        conditioned=conditioned,
    )


def _masked_mse(pred: torch.Tensor, noised: _Noised) -> torch.Tensor:
    """MSE over the tokens that are not conditioning, averaged over the whole batch (as the reference)."""
    loss_mask = (~noised.cond_mask).to(pred.device).float()[..., None]
    sq = (pred.float() - noised.target.to(pred.device)) ** 2
    return (sq * loss_mask).sum() / (loss_mask.sum() * sq.shape[-1]).clamp(min=1.0)


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
    """The standard objective: the model predicts the velocity noise - x0 of the noised latents."""
    x0 = batch["latents"].float()  # [B, L, C]
    f, h, w = batch["num_frames"], batch["height"], batch["width"]
    noised = _noise_batch(x0, f, h * w, generator, sampling_mode, sampling_params, first_frame_p)
    pred = model(
        hidden_states=noised.x_t.to(device, model_dtype),
        encoder_hidden_states=batch["prompt_embeds"].to(device, model_dtype),
        timestep=noised.timesteps.to(device),
        encoder_attention_mask=batch["prompt_attention_mask"].to(device).to(model_dtype),
        num_frames=f,
        height=h,
        width=w,
        rope_interpolation_scale=rope_interpolation_scale(float(batch["fps"])),
        return_dict=False,
    )[0]
    return LossOutput(loss=_masked_mse(pred, noised), sigmas=noised.sigmas, conditioned=noised.conditioned)


# --------------------------------------------------------------------------------------------- IC-LoRA (reference)


def video_coords(batch_size: int, num_frames: int, height: int, width: int, fps: float) -> torch.Tensor:
    """RoPE positions [B, 3, F*H*W] of a latent grid in the units diffusers' ``LTXVideoTransformer3DModel`` takes as
    ``video_coords``: (frame * 8/fps, row * 32, col * 32), token order frame-major then row then column.

    Its rotary embedding divides these by the base sizes (20, 2048, 2048); without ``video_coords`` it builds the same
    grid from ``rope_interpolation_scale`` = (8/fps, 32, 32) itself, so a sequence given these coordinates gets exactly
    the positions of the standard strategy. Patch sizes are 1 in every LTX-Video release. Like the reference trainer
    (and diffusers' own grid), no causal offset is applied to the frame index.
    """
    f = torch.arange(num_frames, dtype=torch.float32) * (TEMPORAL_COMPRESSION / fps)
    h = torch.arange(height, dtype=torch.float32) * SPATIAL_COMPRESSION
    w = torch.arange(width, dtype=torch.float32) * SPATIAL_COMPRESSION
    grid = torch.stack(torch.meshgrid(f, h, w, indexing="ij"), dim=0).flatten(1)  # [3, F*H*W]
    return grid[None].expand(batch_size, -1, -1).contiguous()


def reference_video_loss(
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
    """IC-LoRA: the clean reference latents are prepended to the noisy target; only the target is learned.

    The sequence is ``[reference (clean, timestep 0) | target (noised as in flow_matching_loss)]`` with explicit RoPE
    coordinates: reference and target share one (f, h, w) grid, so each reference token sits at the position of the
    target token it conditions. Sigma is drawn for the target's token count (not the doubled sequence), and the loss
    covers the last L (target) tokens only, minus the first frame when it is fed clean. Random draws come from
    ``generator`` in the same order as in ``flow_matching_loss`` (sigmas, noise, first-frame coins).
    """
    x0 = batch["latents"].float()  # [B, L, C]
    ref = batch["ref_latents"].float()  # [B, L, C]
    if ref.shape != x0.shape:
        raise DatasetError(
            f"reference latents of shape {tuple(ref.shape)} do not match their targets' {tuple(x0.shape)} (batch "
            f"samples {batch.get('indices')}); re-run preprocess_dataset.py --reference-column so each reference is "
            "encoded at its target's bucket"
        )
    b, seq_len, _ = x0.shape
    f, h, w = batch["num_frames"], batch["height"], batch["width"]
    noised = _noise_batch(x0, f, h * w, generator, sampling_mode, sampling_params, first_frame_p)
    fps = float(batch["fps"])
    coords = video_coords(b, f, h, w, fps)
    pred = model(
        hidden_states=torch.cat([ref, noised.x_t], dim=1).to(device, model_dtype),
        encoder_hidden_states=batch["prompt_embeds"].to(device, model_dtype),
        timestep=torch.cat([torch.zeros(b, seq_len), noised.timesteps], dim=1).to(device),
        encoder_attention_mask=batch["prompt_attention_mask"].to(device).to(model_dtype),
        num_frames=f,
        height=h,
        width=w,
        rope_interpolation_scale=rope_interpolation_scale(fps),
        video_coords=torch.cat([coords, coords], dim=2).to(device),
        return_dict=False,
    )[0]
    pred = pred[:, seq_len:]  # the reference tokens' outputs are never compared with anything
    return LossOutput(loss=_masked_mse(pred, noised), sigmas=noised.sigmas, conditioned=noised.conditioned)


def check_reference_latents(dataset: PrecomputedDataset, reference_latents_dir: str) -> None:
    """Before training: every sample has reference latents of its target's shape (the reference trainer only found
    out mid-run, and its default folder name did not match what its preprocessing wrote)."""
    ref_root = dataset.root / reference_latents_dir
    fix = (
        "run preprocess_dataset.py with --reference-column reference_path (it writes reference_latents/), or set "
        "conditioning.reference_latents_dir to the folder under .precomputed that holds them"
    )
    if not ref_root.is_dir():
        raise DatasetError(f"conditioning.reference_latents_dir: '{ref_root}' does not exist; {fix}")
    latents_root = dataset.root / "latents"
    missing: list[str] = []
    for sample in dataset.samples:
        rel = sample.latents_path.relative_to(latents_root)
        ref_path = ref_root / rel
        if not ref_path.is_file():
            missing.append(rel.as_posix())
            continue
        header = torch.load(ref_path, map_location="cpu", weights_only=True)
        try:
            shape = (int(header["num_frames"]), int(header["height"]), int(header["width"]))
        except (KeyError, TypeError) as exc:
            raise DatasetError(
                f"'{ref_path}': not a latents file of the expected schema (missing {exc}); {fix}"
            ) from None
        if shape != sample.shape:
            raise DatasetError(
                f"'{ref_path}': reference latents of shape {shape} (frames, rows, cols) but its target has "
                f"{sample.shape}; {fix} (each reference is encoded at its target's bucket)"
            )
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(
            f"{len(missing)} of {len(dataset.samples)} sample(s) have no reference latents in '{ref_root}': {shown}; "
            f"{fix}"
        )
