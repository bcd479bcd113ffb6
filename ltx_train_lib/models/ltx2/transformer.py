"""The LTX-2 transformer as training and sampling call it: both streams in one forward."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ltx_train_lib.models.ltx2.geometry import audio_latent_frames, pixel_frames, video_coords

if TYPE_CHECKING:
    import torch

    from ltx_train_lib.models.family import ForwardInputs


def predict_streams(model: torch.nn.Module, inputs: ForwardInputs, *, device: Any,
                    dtype: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward of diffusers' ``LTX2VideoTransformer3DModel``: (video velocity [B, L, C], audio velocity
    [B, La, Ca]). The text mask is the connectors' (all ones once registers fill the padding); the same mask serves
    both streams, as in ``LTX2Pipeline``. ``sigma`` (used by 2.3+'s prompt modulation) is the video timestep of the
    first non-conditioning token per sample, i.e. the sample's noise level."""
    import torch

    audio = inputs.audio
    if audio is None:
        raise ValueError("the LTX-2 transformer needs an audio stream (ForwardInputs.audio)")
    f, h, w = inputs.latent_shape
    mask = inputs.prompt_attention_mask.to(device).to(dtype)
    timesteps = inputs.timesteps.to(device)
    sigma = timesteps.max(dim=1).values
    audio_sigma = audio.timesteps.to(device).max(dim=1).values
    positions = inputs.positions
    if positions is None:
        positions = video_coords(inputs.tokens.shape[0], f, h, w, inputs.fps)
    video_out, audio_out = model(
        hidden_states=inputs.tokens.to(device, dtype),
        audio_hidden_states=audio.tokens.to(device, dtype),
        encoder_hidden_states=inputs.prompt_embeds.to(device, dtype),
        audio_encoder_hidden_states=audio.prompt_embeds.to(device, dtype),
        timestep=timesteps,
        audio_timestep=audio.timesteps.to(device),
        sigma=sigma,
        audio_sigma=audio_sigma,
        encoder_attention_mask=mask,
        audio_encoder_attention_mask=mask,
        num_frames=f,
        height=h,
        width=w,
        fps=float(inputs.fps),
        audio_num_frames=audio.tokens.shape[1],
        video_coords=positions.to(device, torch.float32),
        # The cross-modal modulation reads the other stream's noise level, as LTX2Pipeline does by default.
        use_cross_timestep=True,
        return_dict=False,
    )
    return video_out, audio_out


def audio_token_shape(model: torch.nn.Module, latent_shape: tuple[int, int, int], fps: float) -> tuple[int, int]:
    """The audio stream that goes with a video latent grid: round(25 x duration) tokens of ``audio_in_channels``."""
    duration = pixel_frames(latent_shape[0]) / float(fps)
    # The training model may be wrapped (DDP: .module; torch.compile: ._orig_mod).
    while not hasattr(model, "config") and (hasattr(model, "module") or hasattr(model, "_orig_mod")):
        model = getattr(model, "module", None) or model._orig_mod
    return audio_latent_frames(duration), int(model.config.audio_in_channels)
