"""The LTX-2.x family (LTX-2 19B, 2.3 and 2.5 22B: joint audio + video) behind the ``ModelFamily`` interface."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import ConfigError
from ltx_train_lib.models.family import (
    ForwardInputs,
    LatentGeometry,
    ModelComponents,
    ModelFamily,
    ModelVersion,
    ResolvedSource,
)
from ltx_train_lib.models.ltx2 import comfy_keys
from ltx_train_lib.models.ltx2 import geometry as ltx2_geometry
from ltx_train_lib.models.ltx2.text import TEXT_MAX_TOKENS
from ltx_train_lib.models.ltx2.tiny import TINY_SOURCE, TINY_VERSION
from ltx_train_lib.models.ltx2.versions import FAMILY, LICENSE_NAME, MODEL_VERSIONS

_VERSION_LIKE = re.compile(r"^LTX-?2", re.IGNORECASE)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TRANSFORMER_CONFIG_METADATA = "transformer_config"
COMFY_CONFIG_METADATA = "config"  # the header entry ComfyUI's model detection reads (comfy/model_detection.py)

# LoRA targets per training mode (model.modalities): the video stream's attentions and feed-forward for video, the
# audio stream's for audio, and the cross-modal attentions whenever both streams learn together.
_VIDEO_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                  "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")
_AUDIO_TARGETS = ("audio_attn1.to_q", "audio_attn1.to_k", "audio_attn1.to_v", "audio_attn1.to_out.0",
                  "audio_attn2.to_q", "audio_attn2.to_k", "audio_attn2.to_v", "audio_attn2.to_out.0",
                  "audio_ff.net.0.proj", "audio_ff.net.2")
# LTX-2.3+ gate each attention's heads (``to_gate_logits``); on LTX-2 these names match nothing and are ignored.
_VIDEO_TARGETS += ("attn1.to_gate_logits", "attn2.to_gate_logits")
_AUDIO_TARGETS += ("audio_attn1.to_gate_logits", "audio_attn2.to_gate_logits")
_CROSS_TARGETS = tuple(f"{m}.{p}" for m in ("audio_to_video_attn", "video_to_audio_attn")
                       for p in ("to_q", "to_k", "to_v", "to_out.0"))
LORA_TARGETS_BY_MODE = {
    "video": _VIDEO_TARGETS,
    "audio_video": _VIDEO_TARGETS + _AUDIO_TARGETS + _CROSS_TARGETS,
    "audio": _AUDIO_TARGETS + _CROSS_TARGETS,
}


class Ltx2Family(ModelFamily):
    name = FAMILY
    display_name = "LTX-2"
    tiny_source = TINY_SOURCE
    geometry = LatentGeometry(spatial=ltx2_geometry.SPATIAL_COMPRESSION, temporal=ltx2_geometry.TEMPORAL_COMPRESSION)
    default_lora_targets = LORA_TARGETS_BY_MODE["audio_video"]
    quantization_exclusions = ("proj_in", "audio_proj_in", "time_embed.*", "audio_time_embed.*", "caption_projection.*",
                               "audio_caption_projection.*", "av_cross_attn_*", "prompt_adaln*", "audio_prompt_adaln*",
                               "rope", "*norm*", "proj_out", "audio_proj_out")
    fsdp_block_class = "LTX2VideoTransformerBlock"
    text_max_tokens = TEXT_MAX_TOKENS
    audio_sample_rate = ltx2_geometry.AUDIO_SAMPLE_RATE
    modalities = ("video", "audio_video", "audio")
    diffusers_full_markers = ("proj_in.", "audio_proj_in.", "time_embed.", "transformer_blocks.")
    comfy_full_markers = ("patchify_proj.", "audio_patchify_proj.", "adaln_single.")

    def lora_targets_for(self, mode: str) -> tuple[str, ...]:
        # 'auto' unresolved (no dataset at hand): the joint targets, the superset of the others.
        return LORA_TARGETS_BY_MODE.get(mode, LORA_TARGETS_BY_MODE["audio_video"])

    # ---------------------------------------------------------------- sources
    def versions(self) -> Mapping[str, ModelVersion]:
        return MODEL_VERSIONS

    def claims(self, source: str) -> bool:
        if source == TINY_SOURCE or source.upper() in {k.upper() for k in MODEL_VERSIONS} or _VERSION_LIKE.match(source):
            return True
        path = Path(source).expanduser()
        if path.is_dir():
            index = path / "model_index.json"
            if index.is_file():
                try:
                    return str(json.loads(index.read_text()).get("_class_name", "")).startswith("LTX2")
                except (OSError, json.JSONDecodeError):
                    return False
            config = path / "transformer" / "config.json"
            return config.is_file() and "LTX2" in config.read_text(errors="replace")
        if path.suffix in (".safetensors", ".sft") and path.is_file():
            from ltx_train_lib.models.ltx2.loading import is_ltx2_file

            return is_ltx2_file(path)
        return "ltx-2" in source.lower() and _REPO_ID.match(source) is not None

    def check_source(self, source: str) -> str:
        upper = {k.upper(): k for k in MODEL_VERSIONS}
        if source == TINY_SOURCE or source in MODEL_VERSIONS:
            return source
        if source.upper() in upper:
            return upper[source.upper()]
        if _VERSION_LIKE.match(source) and not Path(source).exists():
            from ltx_train_lib.models.registry import all_versions

            raise ValueError(f"unknown model version '{source}'; known versions: {', '.join(all_versions())}; or give a "
                             "path / Hugging Face repo id")
        return source

    def resolve(self, source: str) -> ResolvedSource:
        if source == TINY_SOURCE:
            return ResolvedSource("tiny", source, family=self.name)
        if source in MODEL_VERSIONS:
            return ResolvedSource("version", source, MODEL_VERSIONS[source], family=self.name)
        path = Path(source).expanduser()
        if path.is_dir():
            return ResolvedSource("folder", str(path.resolve()), family=self.name)
        if path.suffix in (".safetensors", ".sft"):
            if not path.is_file():
                raise ConfigError(f"model.model_source: file '{source}' does not exist; check the path")
            return ResolvedSource("single_file", str(path.resolve()), family=self.name)
        if _REPO_ID.match(source):
            return ResolvedSource("hub", source, family=self.name)
        raise ConfigError(f"model.model_source: '{source}' is neither an LTX-2 version, a folder, a .safetensors file "
                          "nor a Hugging Face repo id")

    # ---------------------------------------------------------------- loading
    def load_components(self, source, components, *, dtypes, overrides) -> ModelComponents:
        from ltx_train_lib.models.ltx2.loading import load_components

        return load_components(source, components, dtypes=dtypes, overrides=overrides)

    def build_random_transformer(self, size: str, dtype: Any = None):
        from ltx_train_lib.models.ltx2.loading import build_random_transformer

        return build_random_transformer(size, dtype)

    def cache_identities(self, source: ResolvedSource, *, load_text_encoder_in_8bit: bool) -> tuple[str, str]:
        if source.kind == "tiny":
            vae_id = text_id = f"tiny:{TINY_VERSION}"
        elif source.kind == "version":
            # LTX-2.3 rebuilt the VAE and 2.5 kept it: latents of 2.3 and 2.5 are one space, LTX-2's another.
            assert source.version is not None
            vae_id = f"ltx2-vae:{'2.0' if source.version.size == '19B' else '2.3'}"
            text_id = f"hub:{source.version.hf_repo}"
        else:
            vae_id = text_id = f"{source.kind}:{source.location}"
        return vae_id, text_id + (":8bit" if load_text_encoder_in_8bit else "")

    # ---------------------------------------------------------------- text and latents
    def encode_prompts(self, tokenizer, text_encoder, prompts: Sequence[str], *, encoding: str = "comfyui"):
        from ltx_train_lib.models.ltx2.text import encode_prompts

        return encode_prompts(tokenizer, text_encoder, prompts, encoding=encoding)

    def encode_latents(self, vae, pixels, generators):
        from ltx_train_lib.models.ltx2.latents import encode_latents

        return encode_latents(vae, pixels, generators)

    def decode_latents(self, vae, latents, num_frames: int, height: int, width: int):
        from ltx_train_lib.models.ltx2.latents import decode_latents

        return decode_latents(vae, latents, num_frames, height, width)

    def encode_audio(self, vae, waveforms, duration_s: float):
        from ltx_train_lib.models.ltx2.audio import encode_audio

        return encode_audio(vae.audio, waveforms, ltx2_geometry.audio_latent_frames(duration_s))

    # ---------------------------------------------------------------- training
    def predict(self, model, inputs: ForwardInputs, *, device, dtype):
        return self.predict_streams(model, inputs, device=device, dtype=dtype)[0]

    def predict_streams(self, model, inputs: ForwardInputs, *, device, dtype):
        from ltx_train_lib.models.ltx2.transformer import predict_streams

        return predict_streams(model, inputs, device=device, dtype=dtype)

    def audio_token_shape(self, model, latent_shape, fps):
        from ltx_train_lib.models.ltx2.transformer import audio_token_shape

        return audio_token_shape(model, latent_shape, fps)

    def token_positions(self, batch_size: int, latent_shape: tuple[int, int, int], fps: float, *, causal: bool = False):
        # LTX-2 always positions the first latent frame causally (the transformer's causal_offset): ``causal`` is
        # the rule of the model itself here, not a per-checkpoint flag.
        return ltx2_geometry.video_coords(batch_size, *latent_shape, fps)

    def sigma_shift(self, num_tokens: int) -> float:
        return ltx2_geometry.shift_for_tokens(num_tokens)

    def blocks(self, transformer):
        return transformer.transformer_blocks

    # ---------------------------------------------------------------- export
    def to_comfy_path(self, name: str) -> str:
        return comfy_keys.to_comfy_path(name)

    def to_diffusers_path(self, name: str) -> str:
        return comfy_keys.to_diffusers_path(name)

    def full_model_metadata(self, transformer, components: ModelComponents | None = None) -> dict[str, str]:
        # transformer_config (diffusers' names) loads the file back here; config (ComfyUI's, as LTX-2 checkpoints
        # carry it) makes ComfyUI's LTXAV build the same model once the file is converted to ComfyUI's layout.
        config = {k: v for k, v in dict(transformer.config).items() if not k.startswith("_")}
        comfy = {"transformer": comfy_keys.comfy_transformer_config(config)}
        return {TRANSFORMER_CONFIG_METADATA: json.dumps(config), COMFY_CONFIG_METADATA: json.dumps(comfy, sort_keys=True),
                "license": LICENSE_NAME}

    def weights_metadata(self) -> dict[str, str]:
        """Every LoRA and fine-tune of this family states the base model's licence (they are derivatives)."""
        return {"license": LICENSE_NAME,
                "license_note": "a derivative of an LTX-2.x model, distributed under the LTX-2.x Community License"}

    def memory_profile(self, source: ResolvedSource, *, vae_path: str | None = None):
        from ltx_train_lib.models.ltx2.memory import memory_profile

        return memory_profile(self, source, vae_path=vae_path)

    # ---------------------------------------------------------------- validation and the model card
    def validation_sampler(self, components, transformer, device, *, image_to_video: bool = False):
        from ltx_train_lib.models.ltx2.validation import Ltx2Sampler

        return Ltx2Sampler(components, transformer, device, family=self, image_to_video=image_to_video)

    def card_text(self, facts: Any):
        from ltx_train_lib.models.ltx2.card import card_text

        return card_text(facts)
