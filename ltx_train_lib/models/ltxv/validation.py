"""LTX-Video validation sampling: text-to-video, image-to-video and IC-LoRA (reference video) in one loop.

The loop calls the transformer the way training does, through the family (``family.predict`` on
:class:`~ltx_train_lib.models.family.ForwardInputs` with explicit RoPE positions from ``family.token_positions``), so
a model with the causal temporal offset (``components.extras["causal_temporal_positioning"]``) is sampled with it,
as ComfyUI samples it. Prompts arrive as precomputed embeddings (encoded once at training start with the family's
``encode_prompts``, as the cached conditions were): there is no text encoder here.

Schedule, shift and guidance are diffusers' ``LTXPipeline`` / ``LTXImageToVideoPipeline``'s, step for step:
sigmas ``linspace(1, 1/N, N)`` through the scheduler's token-count shift (``calculate_shift``) and terminal stretch;
classifier-free guidance ``uncond + g (cond - uncond)`` on one ``[negative, prompt]`` batch when g > 1; the noise drawn
from the CPU generator as ``[1, C, F', H', W']`` after the image is VAE-encoded from the same generator (a sample of
the latent distribution); the image's latent frame fed clean at timestep 0 and never updated; decoding at timestep 0.
For a non-causal model and the same embeddings the latents equal the pipelines' ``output_type="latent"``
(tests/test_validation.py). Deliberate differences:

- ``inference_steps: 1`` drops the scheduler's terminal stretch (the pipelines divide 0 by 0 and return NaN there);
- IC-LoRA (no diffusers counterpart) prepends the reference's latents clean at timestep 0, on the target's RoPE grid,
  as the reference-video training strategy does; the reference is encoded before the image and the noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ltx_train_lib.models.family import ForwardInputs
from ltx_train_lib.models.ltxv.geometry import pack_latents
from ltx_train_lib.models.ltxv.latents import encode_tokens
from ltx_train_lib.models.sampling import SamplerBase


class LtxvSampler(SamplerBase):
    """Samples validation videos from the training transformer, the VAE and the scheduler of ``components``.

    The VAE is on ``device`` only while it encodes a conditioning image / reference or decodes a sample, and back on
    the CPU afterwards, also when that fails.
    """

    def __init__(self, components, transformer, device, *, image_to_video: bool = False, family=None) -> None:
        if family is None:
            from ltx_train_lib.models.registry import get_family

            family = get_family(components.source.family)
        self.components, self.transformer, self.family = components, transformer, family
        self.device = torch.device(device)
        self.image_to_video = image_to_video  # kept for the interface: one loop serves every mode
        self.causal = components.causal_temporal_positioning


    # ------------------------------------------------------------------ public
    @torch.no_grad()
    def generate(self, cfg, prompt: dict, negative: dict, generator: torch.Generator, *, frame_rate: float,
                 image=None, reference: np.ndarray | None = None) -> np.ndarray:
        """One validation video: uint8 [F, H, W, 3] at ``cfg.video_dims``.

        ``prompt`` / ``negative`` are condition dicts (``prompt_embeds`` [L, D], ``prompt_attention_mask`` [L]) as
        ``encode_prompts`` returns them; ``image`` (PIL or uint8 [H, W, 3], at the video size) conditions the first
        frame; ``reference`` (uint8 [F, H, W, 3]) is the IC-LoRA reference video.
        """
        latents = self.denoise(cfg, prompt, negative, generator, frame_rate=frame_rate, image=image, reference=reference)
        f, h, w = self._latent_shape(cfg)
        with self._vae_on_device() as vae:
            return self.family.decode_latents(vae, latents[0], f, h, w)

    @torch.no_grad()
    def denoise(self, cfg, prompt: dict, negative: dict, generator: torch.Generator, *, frame_rate: float,
                image=None, reference: np.ndarray | None = None) -> torch.Tensor:
        """The denoised packed latents [1, F'*H'*W', C] of the target video (normalised, as the cache stores them)."""
        from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

        device, family = self.device, self.family
        f, h, w = self._latent_shape(cfg)
        seq_len = f * h * w

        ref_tokens = first = None
        if reference is not None or image is not None:
            from ltx_train_lib.media import frames_to_pixels

            with self._vae_on_device() as vae:
                if reference is not None:
                    ref_tokens = self._encode(vae, frames_to_pixels(np.asarray(reference)), generator)
                    if ref_tokens.shape[1] != seq_len:
                        raise ValueError(f"the reference video gives {ref_tokens.shape[1]} latent tokens, the target {seq_len}")
                if image is not None:
                    first = self._encode(vae, frames_to_pixels(np.array(image)[None]), generator)  # a writable copy
        channels = self.transformer.config.in_channels
        # As the pipelines' prepare_latents: [B, C, F', H', W'] from the CPU generator, then packed.
        latents = pack_latents(torch.randn((1, channels, f, h, w), generator=generator, dtype=torch.float32)).to(device)
        clean = 0  # leading target tokens fed clean at timestep 0 (the image's latent frame)
        if first is not None:
            clean = first.shape[1]
            latents[:, :clean] = first

        guided = cfg.guidance_scale > 1.0
        embeds, mask = prompt["prompt_embeds"][None], prompt["prompt_attention_mask"][None]
        if guided:  # one batched call: [unconditional, conditional], as the pipelines
            embeds = torch.cat([negative["prompt_embeds"][None], embeds])
            mask = torch.cat([negative["prompt_attention_mask"][None], mask])
        n = embeds.shape[0]
        embeds, mask = embeds.to(device), mask.to(device)

        steps = cfg.inference_steps
        scheduler = self._scheduler(steps)
        mu = calculate_shift(
            seq_len,  # the target's token count (not a prepended reference's), as the sigma sampler in training
            scheduler.config.get("base_image_seq_len", 256),
            scheduler.config.get("max_image_seq_len", 4096),
            scheduler.config.get("base_shift", 0.5),
            scheduler.config.get("max_shift", 1.15),
        )
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1.0 / steps, steps), mu=mu, device=device)

        positions = self._positions(n, (f, h, w), frame_rate)
        prefix = 0
        if ref_tokens is not None:  # reference and target share one grid, as in reference-video training
            positions = torch.cat([positions, positions], dim=2)
            prefix = ref_tokens.shape[1]
        dtype = next(self.transformer.parameters()).dtype
        for t in scheduler.timesteps:
            timesteps = t.to(device, torch.float32).expand(n, seq_len).clone()
            timesteps[:, :clean] = 0.0
            tokens = latents
            if ref_tokens is not None:
                tokens = torch.cat([ref_tokens, latents], dim=1)
                timesteps = torch.cat([torch.zeros(n, prefix, device=device), timesteps], dim=1)
            inputs = self._inputs(
                tokens=tokens.expand(n, -1, -1),
                timesteps=timesteps,
                prompt_embeds=embeds,
                prompt_attention_mask=mask,
                latent_shape=(f, h, w),
                fps=float(frame_rate),
                positions=positions,
            )
            pred = family.predict(self.transformer, inputs, device=device, dtype=dtype)[:, prefix:].float()
            if guided:
                uncond, cond = pred.chunk(2)
                pred = uncond + cfg.guidance_scale * (cond - uncond)
            latents = scheduler.step(pred, t, latents, return_dict=False)[0]
            if clean:
                latents[:, :clean] = first  # conditioning tokens are never updated
        return latents

    # ------------------------------------------------------------------ parts
    def _latent_shape(self, cfg) -> tuple[int, int, int]:
        width, height, frames = cfg.video_dims
        return self.family.geometry.latent_shape(width, height, frames)

    def _positions(self, n: int, latent_shape: tuple[int, int, int], fps: float) -> torch.Tensor:
        return self.family.token_positions(n, latent_shape, fps, causal=self.causal).to(self.device)

    def _inputs(self, **fields: Any) -> ForwardInputs:
        return ForwardInputs(**fields, causal_temporal_positioning=self.causal)

    def _encode(self, vae, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[3, F, H, W] pixels -> packed latents [1, L, C] in float32 on the device (no bf16 cache rounding)."""
        tokens, _ = encode_tokens(vae, pixels[None], [generator], dtype=torch.float32)
        return tokens.to(self.device, torch.float32)


