"""LTX-2 validation sampling: text-to-video+audio and image-to-video+audio in one loop.

The loop calls the transformer the way training does (``family.predict_streams`` on ``ForwardInputs`` with an audio
stream), from precomputed prompt conditions (no text encoder). Schedule and guidance follow diffusers'
``LTX2Pipeline``: sigmas ``linspace(1, 1/N, N)`` through the scheduler's token-count shift (counted over the video
tokens); one scheduler per stream; classifier-free guidance on a ``[negative, prompt]`` batch for both streams with
the same scale; noise for video then audio from the CPU generator; an image conditions the first latent frame, fed
clean at timestep 0 and never updated. The result is decoded to frames and to a stereo waveform by the vocoder.
"""

from __future__ import annotations

import numpy as np
import torch

from ltx_train_lib.models.family import AudioInputs, ForwardInputs, GeneratedClip
from ltx_train_lib.models.ltx2.audio import decode_audio
from ltx_train_lib.models.ltx2.geometry import pack_audio, pack_latents
from ltx_train_lib.models.ltx2.latents import encode_tokens
from ltx_train_lib.models.sampling import SamplerBase

# LTX2Pipeline's defaults (and ComfyUI's LTXVDualCFGGuider's scales): the sound is guided harder than the picture,
# and both guided predictions are rescaled towards the conditional one's spread.
AUDIO_GUIDANCE_SCALE = 7.0
GUIDANCE_RESCALE = 0.7


def _guide(pred: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor, scale: float, rescale: float) -> torch.Tensor:
    """Classifier-free guidance on a [uncond, cond] velocity batch as LTX2Pipeline does it: in x0 space
    (x0 = x - sigma v), guided = cond + (scale - 1)(cond - uncond), rescaled by ``rescale``, back to a velocity."""
    from diffusers.pipelines.ltx2.pipeline_ltx2 import rescale_noise_cfg

    uncond, cond = (x - pred.chunk(2)[k] * sigma for k in (0, 1))
    guided = cond + (scale - 1) * (cond - uncond)
    if rescale > 0:
        guided = rescale_noise_cfg(guided, cond, guidance_rescale=rescale)
    return (x - guided) / sigma


class Ltx2Sampler(SamplerBase):
    """Samples validation clips (frames and sound) from the training transformer and the autoencoders.

    ``validation.guidance_scale`` guides the video; the sound uses ``audio_guidance_scale`` (7, LTX-2's default)
    and both the pipeline's guidance rescale (0.7)."""

    def __init__(self, components, transformer, device, *, family, image_to_video: bool = False) -> None:
        self.components, self.transformer, self.family = components, transformer, family
        self.device = torch.device(device)
        self.audio_guidance_scale = AUDIO_GUIDANCE_SCALE
        self.guidance_rescale = self.audio_guidance_rescale = GUIDANCE_RESCALE




    @torch.no_grad()
    def generate(self, cfg, prompt: dict, negative: dict, generator: torch.Generator, *, frame_rate: float,
                 image=None, reference=None) -> GeneratedClip:
        """One validation clip: frames uint8 [F, H, W, 3] at ``cfg.video_dims`` and its stereo sound."""
        latents, audio = self.denoise(cfg, prompt, negative, generator, frame_rate=frame_rate, image=image,
                                      reference=reference)
        f, h, w = self.family.geometry.latent_shape(*cfg.video_dims)
        with self._vae_on_device() as vae:
            video = self.family.decode_latents(vae, latents[0], f, h, w)
            mel_bins = int(vae.audio.config.mel_bins) // 4
            wave, rate = decode_audio(vae.audio, vae.vocoder, audio[0], mel_bins)
        return GeneratedClip(frames=video, audio=wave, sample_rate=rate)

    @torch.no_grad()
    def denoise(self, cfg, prompt: dict, negative: dict, generator: torch.Generator, *, frame_rate: float,
                image=None, reference=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The denoised packed latents (normalised, as the cache stores them): video [1, F'*H'*W', C] and audio
        [1, La, Ca]."""
        if reference is not None:
            raise ValueError("IC-LoRA (reference video) validation is not available for LTX-2 yet; remove "
                             "validation.reference_videos")
        from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

        device, family = self.device, self.family
        width, height, frames = cfg.video_dims
        f, h, w = family.geometry.latent_shape(width, height, frames)
        seq_len = f * h * w
        first = None
        if image is not None:
            from ltx_train_lib.media import frames_to_pixels

            with self._vae_on_device() as vae:
                pixels = frames_to_pixels(np.array(image)[None])
                first, _ = encode_tokens(vae, pixels[None], [generator], dtype=torch.float32)
                first = first.to(device)
        channels = self.transformer.config.in_channels
        latents = pack_latents(torch.randn((1, channels, f, h, w), generator=generator)).to(device)
        audio_len, audio_ch = family.audio_token_shape(self.transformer, (f, h, w), frame_rate)
        # As LTX2Pipeline.prepare_audio_latents: [1, C, L, M] from the generator, then packed to [1, L, C*M].
        audio_channels = int(self.components.vae.audio.config.latent_channels)
        audio = pack_audio(torch.randn((1, audio_channels, audio_len, audio_ch // audio_channels),
                                       generator=generator)).to(device)
        clean = 0
        if first is not None:
            clean = first.shape[1]
            latents[:, :clean] = first

        guided = cfg.guidance_scale > 1.0
        keys = ("prompt_embeds", "audio_prompt_embeds", "prompt_attention_mask")
        cond = {k: prompt[k][None] for k in keys}
        if guided:
            cond = {k: torch.cat([negative[k][None], cond[k]]) for k in keys}
        n = cond["prompt_embeds"].shape[0]
        cond = {k: v.to(device) for k, v in cond.items()}

        steps = cfg.inference_steps
        video_sched, audio_sched = self._scheduler(steps), self._scheduler(steps)
        base = video_sched.config
        mu = calculate_shift(seq_len, base.get("base_image_seq_len", 1024), base.get("max_image_seq_len", 4096),
                             base.get("base_shift", 0.95), base.get("max_shift", 2.05))
        sigmas = np.linspace(1.0, 1.0 / steps, steps)
        video_sched.set_timesteps(sigmas=sigmas, mu=mu, device=device)
        audio_sched.set_timesteps(sigmas=sigmas, mu=mu, device=device)
        positions = family.token_positions(n, (f, h, w), frame_rate).to(device)
        dtype = next(self.transformer.parameters()).dtype
        for i, t in enumerate(video_sched.timesteps):
            timesteps = t.to(device, torch.float32).expand(n, seq_len).clone()
            timesteps[:, :clean] = 0.0
            inputs = ForwardInputs(
                tokens=latents.expand(n, -1, -1), timesteps=timesteps, prompt_embeds=cond["prompt_embeds"],
                prompt_attention_mask=cond["prompt_attention_mask"], latent_shape=(f, h, w), fps=float(frame_rate),
                positions=positions,
                audio=AudioInputs(tokens=audio.expand(n, -1, -1),
                                  timesteps=t.to(device, torch.float32).expand(n, audio_len).clone(),
                                  prompt_embeds=cond["audio_prompt_embeds"]),
            )
            video_pred, audio_pred = family.predict_streams(self.transformer, inputs, device=device, dtype=dtype)
            video_pred, audio_pred = video_pred.float(), audio_pred.float()
            if guided:
                sigma = video_sched.sigmas[i].to(device)
                video_pred = _guide(video_pred, latents, sigma, cfg.guidance_scale, self.guidance_rescale)
                audio_pred = _guide(audio_pred, audio, sigma, self.audio_guidance_scale, self.audio_guidance_rescale)
            latents = video_sched.step(video_pred, t, latents, return_dict=False)[0]
            audio = audio_sched.step(audio_pred, t, audio, return_dict=False)[0]
            if clean:
                latents[:, :clean] = first
        return latents, audio
