"""The LTX-Video transformer as training and sampling call it: forward arguments and RoPE positions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ltx_train_lib.models.ltxv.geometry import SPATIAL_COMPRESSION, TEMPORAL_COMPRESSION, rope_interpolation_scale

if TYPE_CHECKING:
    import torch

    from ltx_train_lib.models.family import ForwardInputs


def predict(model: torch.nn.Module, inputs: ForwardInputs, *, device: Any, dtype: Any) -> torch.Tensor:
    """One forward of diffusers' ``LTXVideoTransformer3DModel`` on packed tokens: the velocity prediction [B, L, C].

    Positions: ``inputs.positions`` when given; else, with ``causal_temporal_positioning``, the causal grid of
    :func:`video_coords` (diffusers' own grid has no such offset); else diffusers' own grid from
    ``rope_interpolation_scale`` (the call is then exactly what it was before the flag existed).
    """
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
    positions = inputs.positions
    if positions is None and inputs.causal_temporal_positioning:
        positions = video_coords(inputs.tokens.shape[0], f, h, w, inputs.fps, causal=True)
    if positions is not None:
        kwargs["video_coords"] = positions.to(device)
    return model(**kwargs)[0]


def video_coords(batch_size: int, num_frames: int, height: int, width: int, fps: float, *, causal: bool = False) -> torch.Tensor:
    """RoPE positions [B, 3, F*H*W] of a latent grid in the units diffusers' ``LTXVideoTransformer3DModel`` takes as
    ``video_coords``: (time in seconds, pixel row, pixel column), token order frame-major then row then column.

    Its rotary embedding divides these by the base sizes (20, 2048, 2048); without ``video_coords`` it builds the
    non-causal grid from ``rope_interpolation_scale`` = (8/fps, 32, 32) itself, so a sequence given
    ``causal=False`` coordinates gets exactly the positions of the standard strategy (frame * 8/fps, as the
    reference trainer and diffusers' ``LTXPipeline``). Patch sizes are 1 in every LTX-Video release.

    ``causal=True`` is ComfyUI's rule for checkpoints whose config sets ``causal_temporal_positioning``
    (``comfy/ldm/lightricks/symmetric_patchifier.py`` ``latent_to_pixel_coords(causal_fix=True)``, then
    ``model.py`` multiplies the time row by ``1/frame_rate``): the first latent frame encodes one pixel frame and
    every later one eight, so latent frame k sits at pixel frame max(0, 8k + 1 - 8), in seconds.
    """
    import torch

    if causal:
        pixel_frames = (torch.arange(num_frames) * TEMPORAL_COMPRESSION + 1 - TEMPORAL_COMPRESSION).clamp(min=0)
        f = pixel_frames.to(torch.float32) * (1.0 / fps)
    else:
        f = torch.arange(num_frames, dtype=torch.float32) * (TEMPORAL_COMPRESSION / fps)
    h = torch.arange(height, dtype=torch.float32) * SPATIAL_COMPRESSION
    w = torch.arange(width, dtype=torch.float32) * SPATIAL_COMPRESSION
    grid = torch.stack(torch.meshgrid(f, h, w, indexing="ij"), dim=0).flatten(1)  # [3, F*H*W]
    return grid[None].expand(batch_size, -1, -1).contiguous()
