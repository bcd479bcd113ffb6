"""LTX-Video validation sampling with diffusers' pipelines: text-to-video (``LTXPipeline``), image-to-video
(``LTXImageToVideoPipeline``), and IC-LoRA (reference video) from a small sampler loop over the same components."""

from __future__ import annotations

import copy

import numpy as np
import torch

from ltx_train_lib.models.ltxv.geometry import rope_interpolation_scale
from ltx_train_lib.models.ltxv.latents import decode_latents, encode_latents
from ltx_train_lib.models.ltxv.text import TEXT_MAX_TOKENS
from ltx_train_lib.models.ltxv.transformer import video_coords


class LtxvSampler:
    """Samples validation videos from the training transformer and the loaded VAE / T5 / scheduler.

    The VAE and text encoder are moved to the device for the duration of a validation and back by ``close``.
    """

    def __init__(self, components, transformer, device, *, image_to_video: bool) -> None:
        from diffusers import LTXImageToVideoPipeline, LTXPipeline

        self.components, self.transformer, self.device = components, transformer, device
        parts = dict(
            transformer=transformer,
            vae=components.vae.to(device),
            text_encoder=components.text_encoder.to(device),
            tokenizer=components.tokenizer,
            scheduler=components.scheduler,
        )
        self.t2v = LTXPipeline(**parts)
        self.i2v = LTXImageToVideoPipeline(**parts) if image_to_video else None
        for pipe in (self.t2v, self.i2v):
            if pipe is not None:
                pipe.set_progress_bar_config(disable=True)

    def close(self) -> None:
        self.components.vae.to("cpu")
        self.components.text_encoder.to("cpu")

    @torch.no_grad()
    def generate(self, cfg, prompt: str, generator: torch.Generator, image=None) -> np.ndarray:
        """Text-to-video, or image-to-video when ``image`` is given: float frames [F, H, W, 3] in [0, 1]."""
        width, height, frames = cfg.video_dims
        kwargs = dict(
            prompt=prompt,
            negative_prompt=cfg.negative_prompt,
            width=width,
            height=height,
            num_frames=frames,
            frame_rate=cfg.frame_rate,
            num_inference_steps=cfg.inference_steps,
            guidance_scale=cfg.guidance_scale,
            generator=generator,
            max_sequence_length=TEXT_MAX_TOKENS,  # the T5 length the model was trained with (pipeline default 128)
            output_type="np",
        )
        pipe = self.t2v
        if image is not None:
            assert self.i2v is not None, "LtxvSampler was built without image_to_video"
            pipe = self.i2v
            kwargs["image"] = image
        pipe.scheduler = self._scheduler(cfg.inference_steps)
        return pipe(**kwargs).frames[0]

    def _scheduler(self, steps: int):
        """A fresh scheduler for ``steps`` steps (set_timesteps/step keep state: never reuse the shared one).

        With one step the terminal-shift stretch (shift_terminal) divides 0 by 0 and every sigma becomes NaN; a
        single Euler step from sigma 1 needs no stretch, so it is dropped there.
        """
        base = self.components.scheduler
        if steps == 1 and base.config.get("shift_terminal"):
            return type(base).from_config(base.config, shift_terminal=None)
        return copy.deepcopy(base)

    @torch.no_grad()
    def with_reference(self, cfg, prompt: str, reference: np.ndarray, generator: torch.Generator, image=None) -> np.ndarray:
        """IC-LoRA sampling: denoise the target tokens with the reference's latents prepended clean at timestep 0.

        Mirrors training (the reference-video strategy): sequence ``[reference | target]`` with one shared RoPE grid,
        and the diffusers LTX pipeline's schedule (sigmas linspace(1, 1/N, N), token-count shift) and
        classifier-free guidance with the negative prompt. ``image`` (optional) is fed clean as the target's first
        latent frame. Returns the decoded target as uint8 [F, H, W, 3].
        """
        from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

        from ltx_train_lib.media import frames_to_pixels

        vae = self.t2v.vae
        transformer = self.transformer
        device = self.device
        dtype = next(transformer.parameters()).dtype
        guided = cfg.guidance_scale > 1.0
        embeds, mask, neg_embeds, neg_mask = self.t2v.encode_prompt(
            prompt,
            cfg.negative_prompt,
            do_classifier_free_guidance=guided,
            max_sequence_length=TEXT_MAX_TOKENS,  # the T5 length the model was trained with
            device=device,
        )
        if guided:  # one batched call: [unconditional, conditional]
            embeds, mask = torch.cat([neg_embeds, embeds]), torch.cat([neg_mask, mask])
        n = embeds.shape[0]

        ref = encode_latents(vae, frames_to_pixels(reference)[None], [generator])[0]
        f, h, w = ref["num_frames"], ref["height"], ref["width"]
        ref_tokens = ref["latents"][None].to(device, torch.float32)
        seq_len = ref_tokens.shape[1]
        latents = torch.randn(ref_tokens.shape, generator=generator).to(device)
        clean = 0  # target tokens fed clean (the first latent frame when an image is given)
        if image is not None:
            first = encode_latents(vae, frames_to_pixels(np.array(image)[None])[None], [generator])[0]["latents"]
            clean = first.shape[0]
            first = first[None].to(device, torch.float32)
            latents[:, :clean] = first

        steps = cfg.inference_steps
        scheduler = self._scheduler(steps)
        mu = calculate_shift(
            seq_len,  # the target's token count, as the sigma sampler in training
            scheduler.config.get("base_image_seq_len", 256),
            scheduler.config.get("max_image_seq_len", 4096),
            scheduler.config.get("base_shift", 0.5),
            scheduler.config.get("max_shift", 1.15),
        )
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1.0 / steps, steps), mu=mu, device=device)
        coords = video_coords(n, f, h, w, cfg.frame_rate)
        coords = torch.cat([coords, coords], dim=2).to(device)
        rope_scale = rope_interpolation_scale(cfg.frame_rate)
        ref_timestep = torch.zeros(n, seq_len, device=device)
        for t in scheduler.timesteps:
            target_timestep = t.to(device, torch.float32).expand(n, seq_len).clone()
            target_timestep[:, :clean] = 0.0
            pred = transformer(
                hidden_states=torch.cat([ref_tokens, latents], dim=1).expand(n, -1, -1).to(dtype),
                encoder_hidden_states=embeds.to(dtype),
                timestep=torch.cat([ref_timestep, target_timestep], dim=1),
                encoder_attention_mask=mask,
                num_frames=f,
                height=h,
                width=w,
                rope_interpolation_scale=rope_scale,
                video_coords=coords,
                return_dict=False,
            )[0][:, seq_len:].float()
            if guided:
                uncond, cond = pred.chunk(2)
                pred = uncond + cfg.guidance_scale * (cond - uncond)
            latents = scheduler.step(pred, t, latents, return_dict=False)[0]
            if clean:
                latents[:, :clean] = first  # conditioning tokens are never updated
        return decode_latents(vae, latents[0], f, h, w)


