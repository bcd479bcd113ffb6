"""LTX-2 validation sampling: text-to-video+audio and image-to-video+audio in one loop.

The loop calls the transformer the way training does (``family.predict_streams`` on ``ForwardInputs`` with an audio
stream), from precomputed prompt conditions (no text encoder). Schedule and guidance follow diffusers'
``LTX2Pipeline``: sigmas ``linspace(1, 1/N, N)`` through the scheduler's token-count shift (counted over the video
tokens); one scheduler per stream; classifier-free guidance on a ``[negative, prompt]`` batch for both streams with
the same scale; noise for video then audio from the CPU generator; an image conditions the first latent frame, fed
clean at timestep 0 and never updated. The result is decoded to frames and to a stereo waveform by the vocoder.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np
import torch

from ltx_train_lib.models.family import AudioInputs, ForwardInputs, GeneratedClip
from ltx_train_lib.models.ltx2.audio import decode_audio
from ltx_train_lib.models.ltx2.geometry import pack_latents
from ltx_train_lib.models.ltx2.latents import encode_tokens


class Ltx2Sampler:
    def __init__(self, components, transformer, device, *, family, image_to_video: bool = False) -> None:
        self.components, self.transformer, self.family = components, transformer, family
        self.device = torch.device(device)

    def close(self) -> None:
        if self.components.vae is not None:
            self.components.vae.to("cpu")

    @contextmanager
    def _vae_on_device(self):
        vae = self.components.vae
        if vae is None:
            raise ValueError("validation needs the VAE: load the components with 'vae'")
        vae.to(self.device)
        try:
            yield vae
        finally:
            vae.to("cpu")

    def _scheduler(self, steps: int):
        base = self.components.scheduler
        if steps == 1 and base.config.get("shift_terminal"):
            return type(base).from_config(base.config, shift_terminal=None)
        return copy.deepcopy(base)

    @torch.no_grad()
    def generate(self, cfg, prompt: dict, negative: dict, generator: torch.Generator, *, frame_rate: float,
                 image=None, reference=None) -> GeneratedClip:
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
        audio = torch.randn((1, audio_len, audio_ch), generator=generator).to(device)
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
        for t in video_sched.timesteps:
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
                vu, vc = video_pred.chunk(2)
                au, ac = audio_pred.chunk(2)
                video_pred = vu + cfg.guidance_scale * (vc - vu)
                audio_pred = au + cfg.guidance_scale * (ac - au)
            latents = video_sched.step(video_pred, t, latents, return_dict=False)[0]
            audio = audio_sched.step(audio_pred, t, audio, return_dict=False)[0]
            if clean:
                latents[:, :clean] = first
        with self._vae_on_device() as vae:
            video = family.decode_latents(vae, latents[0], f, h, w)
            mel_bins = int(vae.audio.config.mel_bins) // 4
            wave, rate = decode_audio(vae.audio, vae.vocoder, audio[0], mel_bins)
        return GeneratedClip(frames=video, audio=wave, sample_rate=rate)
