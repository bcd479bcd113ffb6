"""The LTX-Video (0.9.x: 2B and 13B) family behind the :class:`~ltx_train_lib.models.family.ModelFamily` interface."""

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
from ltx_train_lib.models.ltxv import comfy_keys, geometry
from ltx_train_lib.models.ltxv.loading import COMFY_CONFIG_METADATA  # the header key ComfyUI's detection reads
from ltx_train_lib.models.ltxv.text import TEXT_MAX_TOKENS
from ltx_train_lib.models.ltxv.versions import FAMILY, HF_MAIN_REPO, MODEL_VERSIONS, OLD_VAE_VERSIONS, VAE_REPO_095

TINY_SOURCE = "tiny"
_VERSION_LIKE = re.compile(r"^LTXV?_\d", re.IGNORECASE)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# The metadata key our full-model exports carry: the diffusers config JSON of the transformer (our loader reads it).
TRANSFORMER_CONFIG_METADATA = "transformer_config"
# diffusers' LTX-Video rotary embedding: theta and base sizes (frames, height, width); ComfyUI's
# positional_embedding_theta / positional_embedding_max_pos, which the export states explicitly.
_ROPE_THETA = 10000.0
_ROPE_MAX_POS = [20, 2048, 2048]


class LtxvFamily(ModelFamily):
    name = FAMILY
    display_name = "LTX-Video"
    tiny_source = TINY_SOURCE
    geometry = LatentGeometry(spatial=geometry.SPATIAL_COMPRESSION, temporal=geometry.TEMPORAL_COMPRESSION)
    default_lora_targets = ("to_k", "to_q", "to_v", "to_out.0")
    # As the reference: patch/caption projections, timestep embedding, RoPE, norms and the output stay full precision.
    quantization_exclusions = ("proj_in", "time_embed.*", "caption_projection.*", "rope", "*norm*", "proj_out")
    fsdp_block_class = "LTXVideoTransformerBlock"
    text_max_tokens = TEXT_MAX_TOKENS
    # Key prefixes of full-model state dicts, used to recognise a file's layout (see export.detect_layout).
    diffusers_full_markers = ("proj_in.", "time_embed.", "transformer_blocks.")
    comfy_full_markers = ("patchify_proj.", "adaln_single.")

    # ---------------------------------------------------------------- sources
    def versions(self) -> Mapping[str, ModelVersion]:
        return MODEL_VERSIONS

    def claims(self, source: str) -> bool:
        # The fallback family: anything no other family claims is tried as LTX-Video (as before LTX-2 existed).
        return source == TINY_SOURCE or source.upper() in {k.upper() for k in MODEL_VERSIONS}

    def check_source(self, source: str) -> str:
        if source in MODEL_VERSIONS or source == TINY_SOURCE:
            return source
        upper = {k.upper(): k for k in MODEL_VERSIONS}
        if source.upper() in upper:
            return upper[source.upper()]
        if _VERSION_LIKE.match(source) and not Path(source).exists():
            from ltx_train_lib.models.registry import all_versions

            known = ", ".join(all_versions())
            raise ValueError(f"unknown model version '{source}'; known versions: {known}; or give a path / Hugging Face repo id")
        return source

    def resolve(self, source: str) -> ResolvedSource:
        if source == TINY_SOURCE:
            return ResolvedSource("tiny", source, family=self.name)
        if source in MODEL_VERSIONS:
            return ResolvedSource("version", source, MODEL_VERSIONS[source], family=self.name)
        path = Path(source).expanduser()
        if path.is_dir():
            return ResolvedSource("folder", str(path.resolve()), family=self.name)
        if path.suffix in (".safetensors", ".sft", ".ckpt", ".pt"):
            if not path.is_file():
                raise ConfigError(f"model.model_source: file '{source}' does not exist; check the path")
            return ResolvedSource("single_file", str(path.resolve()), family=self.name)
        if _REPO_ID.match(source) and not source.startswith((".", "/", "~")):
            return ResolvedSource("hub", source, family=self.name)
        raise ConfigError(
            f"model.model_source: '{source}' is neither a named version, an existing folder or .safetensors file, "
            "nor a Hugging Face repo id ('owner/name')"
        )

    # ---------------------------------------------------------------- loading
    def load_components(self, source, components, *, dtypes, overrides) -> ModelComponents:
        from ltx_train_lib.models.ltxv.loading import load_components

        return load_components(source, components, dtypes=dtypes, overrides=overrides)

    def load_text_encoder_8bit(self, source: ResolvedSource, device: Any, overrides: Mapping[str, str | None]):
        from ltx_train_lib.models.ltxv.loading import load_text_encoder_8bit

        return load_text_encoder_8bit(source, device, overrides)

    def build_random_transformer(self, size: str, dtype: Any = None):
        from ltx_train_lib.models.ltxv.loading import build_random_transformer

        return build_random_transformer(size, dtype)

    def cache_identities(self, source: ResolvedSource, *, load_text_encoder_in_8bit: bool) -> tuple[str, str]:
        # Named versions share components (every 0.9.5+ version has the same VAE; T5 always comes from the
        # reference's repo), so switching between them keeps whatever cache is still valid.
        if source.kind == "tiny":
            from ltx_train_lib.models.ltxv.tiny import TINY_VERSION

            vae_id = text_id = f"tiny:{TINY_VERSION}"
        elif source.kind == "version":
            assert source.version is not None
            old = source.version.name in OLD_VAE_VERSIONS
            vae_id = f"hub:{source.version.hf_repo if old else VAE_REPO_095}"
            text_id = f"hub:{HF_MAIN_REPO}"
        elif source.kind == "single_file":
            vae_id, text_id = f"file:{source.location}", f"hub:{HF_MAIN_REPO}"
        else:
            vae_id = text_id = f"{source.kind}:{source.location}"
        return vae_id, text_id + (":8bit" if load_text_encoder_in_8bit else "")

    # ---------------------------------------------------------------- text and latents
    def encode_prompts(self, tokenizer, text_encoder, prompts: Sequence[str], *, encoding: str = "comfyui"):
        from ltx_train_lib.models.ltxv.text import encode_prompts

        return encode_prompts(tokenizer, text_encoder, prompts, encoding=encoding)

    def encode_latents(self, vae, pixels, generators):
        from ltx_train_lib.models.ltxv.latents import encode_latents

        return encode_latents(vae, pixels, generators)

    def decode_latents(self, vae, latents, num_frames: int, height: int, width: int):
        from ltx_train_lib.models.ltxv.latents import decode_latents

        return decode_latents(vae, latents, num_frames, height, width)

    # ---------------------------------------------------------------- training
    def predict(self, model, inputs: ForwardInputs, *, device, dtype):
        from ltx_train_lib.models.ltxv.transformer import predict

        return predict(model, inputs, device=device, dtype=dtype)

    def token_positions(self, batch_size: int, latent_shape: tuple[int, int, int], fps: float, *, causal: bool = False):
        from ltx_train_lib.models.ltxv.transformer import video_coords

        return video_coords(batch_size, *latent_shape, fps, causal=causal)

    def sigma_shift(self, num_tokens: int) -> float:
        return geometry.shift_for_tokens(num_tokens)

    def blocks(self, transformer):
        return transformer.transformer_blocks

    # ---------------------------------------------------------------- export
    def to_comfy_path(self, name: str) -> str:
        return comfy_keys.to_comfy_path(name)

    def to_diffusers_path(self, name: str) -> str:
        return comfy_keys.to_diffusers_path(name)

    def full_model_metadata(self, transformer, components: ModelComponents | None = None) -> dict[str, str]:
        # The architecture travels with the weights, so the file loads as a single-file model_source of any size
        # (transformer_config, diffusers' names) and through ComfyUI's loaders (config, ComfyUI's names).
        config = {k: v for k, v in dict(transformer.config).items() if not k.startswith("_")}
        causal = components.causal_temporal_positioning if components is not None else False
        return {
            TRANSFORMER_CONFIG_METADATA: json.dumps(config),
            COMFY_CONFIG_METADATA: json.dumps({"transformer": comfy_transformer_config(config, causal)}, sort_keys=True),
        }

    # ---------------------------------------------------------------- memory plan
    def memory_profile(self, source: ResolvedSource, *, vae_path: str | None = None):
        from ltx_train_lib.models.ltxv.memory import memory_profile

        return memory_profile(source, vae_path=vae_path, text_tokens=self.text_max_tokens)

    # ---------------------------------------------------------------- validation and the model card
    def validation_sampler(self, components, transformer, device, *, image_to_video: bool = False):
        from ltx_train_lib.models.ltxv.validation import LtxvSampler

        return LtxvSampler(components, transformer, device, image_to_video=image_to_video, family=self)

    def card_text(self, facts: Any):
        from ltx_train_lib.models.ltxv.card import card_text

        return card_text(facts)


def comfy_transformer_config(config: Mapping[str, Any], causal_temporal_positioning: bool) -> dict[str, Any]:
    """The ``"transformer"`` member of the ``config`` metadata, in the argument names of ComfyUI's ``LTXVModel``
    (comfy/ldm/lightricks/model.py) and Lightricks' checkpoints.

    ComfyUI's detection counts the blocks and guesses ``attention_head_dim`` as (inner dim) // 32 and
    ``cross_attention_dim`` from ``attn2.to_k``, leaving heads (32), ``in_channels`` (128) and ``caption_channels``
    (4096) at the 2B/13B defaults, then ``update``s the guess with this dict: so every dimension is stated here,
    which makes any size (the tiny model too) build with the right shapes, and ``causal_temporal_positioning`` is
    stated rather than left to the default (False).
    """
    return {
        "in_channels": int(config["in_channels"]),
        "out_channels": int(config.get("out_channels") or config["in_channels"]),
        "num_attention_heads": int(config["num_attention_heads"]),
        "attention_head_dim": int(config["attention_head_dim"]),
        "cross_attention_dim": int(config["cross_attention_dim"]),
        "caption_channels": int(config["caption_channels"]),
        "num_layers": int(config["num_layers"]),
        "positional_embedding_theta": _ROPE_THETA,
        "positional_embedding_max_pos": list(_ROPE_MAX_POS),
        "causal_temporal_positioning": bool(causal_temporal_positioning),
    }
