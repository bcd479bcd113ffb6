"""Tensor names of the LTX-2 components other than the transformer: Lightricks' original / ComfyUI names <-> diffusers.

ComfyUI users keep LTX-2 as Lightricks ships it: one checkpoint (``models/checkpoints``) whose tensors are prefixed by
component, or the same components as separate files (``models/vae``, ``models/text_encoders``):

=========================  ====================================================  ==========================
component                  original prefix (all-in-one checkpoint)               separate file
=========================  ====================================================  ==========================
transformer                ``model.diffusion_model.``                             ``models/diffusion_models``
text connectors            ``model.diffusion_model.{video,audio}_embeddings_connector.``  (with the transformer)
text projection            ``text_embedding_projection.``                        (with the transformer)
video VAE                  ``vae.``                                              ``models/vae``, no prefix
audio VAE                  ``audio_vae.``                                        ``models/vae``: ``audio_vae.``
vocoder                    ``vocoder.``                                          ``models/vae``: ``vocoder.``
Gemma 3 12B                (never in the checkpoint)                             ``models/text_encoders``
=========================  ====================================================  ==========================

Video and audio VAE names are turned into diffusers names by diffusers' own single-file converters
(``convert_ltx2_vae_to_diffusers`` / ``convert_ltx2_audio_vae_to_diffusers``). diffusers has none for the vocoder, the
connectors or a ComfyUI Gemma file, so those maps are here, per path segment (a name is never renamed inside
another). The ``to_original_*`` functions are the inverses: tests use them to write files as ComfyUI users have them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

TRANSFORMER_PREFIX = "model.diffusion_model."
VAE_PREFIX = "vae."
AUDIO_VAE_PREFIX = "audio_vae."
VOCODER_PREFIX = "vocoder."
PROJECTION_PREFIX = "text_embedding_projection."
CONNECTOR_MODULES = ("video_embeddings_connector.", "audio_embeddings_connector.")

# ------------------------------------------------------------------------------------------------ segment maps
_VOCODER_TO_DIFFUSERS = {"conv_pre": "conv_in", "conv_post": "conv_out", "ups": "upsamplers", "resblocks": "resnets"}
_CONNECTOR_TO_DIFFUSERS = {
    "video_embeddings_connector": "video_connector",
    "audio_embeddings_connector": "audio_connector",
    "transformer_1d_blocks": "transformer_blocks",
    "q_norm": "norm_q",
    "k_norm": "norm_k",
}
# The text projection: one shared Linear in LTX-2, one per modality from LTX-2.3 on.
_PROJECTION_TO_DIFFUSERS = {
    "text_embedding_projection.aggregate_embed.": "text_proj_in.",
    "text_embedding_projection.video_aggregate_embed.": "video_text_proj_in.",
    "text_embedding_projection.audio_aggregate_embed.": "audio_text_proj_in.",
}


def _segments(name: str, table: Mapping[str, str]) -> str:
    return ".".join(table.get(part, part) for part in name.split("."))


def _inverse(table: Mapping[str, str]) -> dict[str, str]:
    return {v: k for k, v in table.items()}


def select(tensors: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The tensors under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


# ------------------------------------------------------------------------------------------------ to diffusers
def vocoder_to_diffusers(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """Vocoder tensors without their ``vocoder.`` prefix -> ``LTX2Vocoder`` names."""
    return {_segments(k, _VOCODER_TO_DIFFUSERS): v for k, v in tensors.items()}


def connectors_to_diffusers(connectors: Mapping[str, Any], projection: Mapping[str, Any]) -> dict[str, Any]:
    """``{video,audio}_embeddings_connector.*`` (transformer prefix removed) and ``text_embedding_projection.*``
    (with that prefix) -> ``LTX2TextConnectors`` names."""
    out = {_segments(k, _CONNECTOR_TO_DIFFUSERS): v for k, v in connectors.items()}
    for key, value in projection.items():
        for old, new in _PROJECTION_TO_DIFFUSERS.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            raise KeyError(f"unknown text projection tensor '{key}'")
    return out


def video_vae_to_diffusers(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """Video VAE tensors (no prefix) -> ``AutoencoderKLLTX2Video`` names, by diffusers' single-file converter."""
    from diffusers.loaders.single_file_utils import convert_ltx2_vae_to_diffusers

    return convert_ltx2_vae_to_diffusers(dict(tensors))


def audio_vae_to_diffusers(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """Audio VAE tensors (no prefix) -> ``AutoencoderKLLTX2Audio`` names, by diffusers' single-file converter."""
    from diffusers.loaders.single_file_utils import convert_ltx2_audio_vae_to_diffusers

    return convert_ltx2_audio_vae_to_diffusers(dict(tensors))


# Gemma 3: ComfyUI files name the language model ``model.*`` (vision ``vision_model.*``, projector
# ``multi_modal_projector.*``, tokenizer ``spiece_model``); transformers' own files ``language_model.model.*`` or
# ``model.language_model.*``. Only the language model is needed to encode prompts.
_GEMMA_LANGUAGE_PREFIXES = ("model.language_model.", "language_model.model.", "model.")
_GEMMA_OTHER = re.compile(r"^(model\.)?(vision_tower|vision_model|multi_modal_projector|lm_head)\.|^lm_head\.")


def gemma_language_model(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """The Gemma language model's tensors with ``Gemma3TextModel`` names (``embed_tokens``, ``layers.N``, ``norm``)."""
    out: dict[str, Any] = {}
    for key, value in tensors.items():
        if _GEMMA_OTHER.match(key):
            continue
        for prefix in _GEMMA_LANGUAGE_PREFIXES:
            if key.startswith(prefix):
                out[key[len(prefix):]] = value
                break
    return out


# ------------------------------------------------------------------------------------------------ to original
def vocoder_to_original(state: Mapping[str, Any]) -> dict[str, Any]:
    return {VOCODER_PREFIX + _segments(k, _inverse(_VOCODER_TO_DIFFUSERS)): v for k, v in state.items()}


def connectors_to_original(state: Mapping[str, Any]) -> dict[str, Any]:
    """``LTX2TextConnectors`` names -> the checkpoint's (connectors under the transformer prefix, projection top-level)."""
    out: dict[str, Any] = {}
    inverse = _inverse(_CONNECTOR_TO_DIFFUSERS)
    for key, value in state.items():
        for old, new in _inverse(_PROJECTION_TO_DIFFUSERS).items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            out[TRANSFORMER_PREFIX + _segments(key, inverse)] = value
    return out


def video_vae_to_original(state: Mapping[str, Any], prefix: str = VAE_PREFIX) -> dict[str, Any]:
    """``AutoencoderKLLTX2Video`` names -> Lightricks' (its encoder lists each stage and its downsampler as
    consecutive ``down_blocks``, the mid block last; the decoder the mid block first, each upsampler before its
    stage)."""
    enc_stages = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.down_blocks\.(\d+)\.", k)))
    out: dict[str, Any] = {}
    for key, value in state.items():
        name = key
        if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", name):
            name = f"encoder.down_blocks.{2 * int(m.group(1)) + 1}.{m.group(2)}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", name):
            name = f"encoder.down_blocks.{2 * int(m.group(1))}.{m.group(2)}"
        elif name.startswith("encoder.mid_block."):
            name = f"encoder.down_blocks.{2 * enc_stages}." + name[len("encoder.mid_block."):]
        elif name.startswith("decoder.mid_block."):
            name = "decoder.up_blocks.0." + name[len("decoder.mid_block."):]
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", name):
            name = f"decoder.up_blocks.{2 * int(m.group(1)) + 1}.{m.group(2)}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.(.*)", name):
            name = f"decoder.up_blocks.{2 * int(m.group(1)) + 2}.{m.group(2)}"
        name = name.replace(".resnets.", ".res_blocks.")
        name = {"latents_mean": "per_channel_statistics.mean-of-means",
                "latents_std": "per_channel_statistics.std-of-means"}.get(name, name)
        out[prefix + name] = value
    return out


def audio_vae_to_original(state: Mapping[str, Any]) -> dict[str, Any]:
    names = {"latents_mean": "per_channel_statistics.mean-of-means", "latents_std": "per_channel_statistics.std-of-means"}
    return {AUDIO_VAE_PREFIX + names.get(k, k): v for k, v in state.items()}


def gemma_to_comfy(language_model_state: Mapping[str, Any]) -> dict[str, Any]:
    """``Gemma3TextModel`` names -> a ComfyUI ``text_encoders`` file's (``model.*``)."""
    return {"model." + k: v for k, v in language_model_state.items()}
