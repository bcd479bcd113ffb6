"""The LTX-Video transformer as training and sampling call it: forward arguments and RoPE positions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ltx_train_lib.models.ltxv.geometry import SPATIAL_COMPRESSION, TEMPORAL_COMPRESSION, rope_interpolation_scale

if TYPE_CHECKING:
    import torch

    from ltx_train_lib.models.family import ForwardInputs


def predict(model: torch.nn.Module, inputs: ForwardInputs, *, device: Any, dtype: Any) -> torch.Tensor:
    """One forward of diffusers' ``LTXVideoTransformer3DModel`` on packed tokens: the velocity prediction [B, L, C]."""
    f, h, w = inputs.latent_shape
    kwargs: dict[str, Any] = dict(
        hidden_states=inputs.tokens.to(device, dtype),
        encoder_hidden_states=inputs.prompt_embeds.to(device, dtype),
        timestep=inputs.timesteps.to(device),
        encoder_attention_mask=inputs.prompt_attention_mask.to(device).to(dtype),
        num_frames=f,
        height=h,
        width=w,
        rope_interpolation_scale=rope_interpolation_scale(inputs.fps),
        return_dict=False,
    )
    if inputs.positions is not None:
        kwargs["video_coords"] = inputs.positions.to(device)
    return model(**kwargs)[0]


def video_coords(batch_size: int, num_frames: int, height: int, width: int, fps: float) -> torch.Tensor:
    """RoPE positions [B, 3, F*H*W] of a latent grid in the units diffusers' ``LTXVideoTransformer3DModel`` takes as
    ``video_coords``: (frame * 8/fps, row * 32, col * 32), token order frame-major then row then column.

    Its rotary embedding divides these by the base sizes (20, 2048, 2048); without ``video_coords`` it builds the same
    grid from ``rope_interpolation_scale`` = (8/fps, 32, 32) itself, so a sequence given these coordinates gets exactly
    the positions of the standard strategy. Patch sizes are 1 in every LTX-Video release. Like the reference trainer
    (and diffusers' own grid), no causal offset is applied to the frame index.
    """
    import torch

    f = torch.arange(num_frames, dtype=torch.float32) * (TEMPORAL_COMPRESSION / fps)
    h = torch.arange(height, dtype=torch.float32) * SPATIAL_COMPRESSION
    w = torch.arange(width, dtype=torch.float32) * SPATIAL_COMPRESSION
    grid = torch.stack(torch.meshgrid(f, h, w, indexing="ij"), dim=0).flatten(1)  # [3, F*H*W]
    return grid[None].expand(batch_size, -1, -1).contiguous()
