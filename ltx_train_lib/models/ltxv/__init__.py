"""The LTX-Video 0.9.x family (2B, 13B): versions, loading, T5 conditions, latents, the transformer forward, ComfyUI
key names, validation sampling, the model card and the offline ``tiny`` model.

Only this package names LTX-Video's diffusers/transformers classes; everything else reaches it through
:class:`~ltx_train_lib.models.ltxv.family.LtxvFamily` (``ltx_train_lib.models.registry.family_for_source``).
"""

from ltx_train_lib.models.ltxv.comfy_keys import to_comfy_module_name, to_diffusers_module_name
from ltx_train_lib.models.ltxv.geometry import (
    SPATIAL_COMPRESSION,
    TEMPORAL_COMPRESSION,
    denormalize_latents,
    latent_frames,
    normalize_latents,
    pack_latents,
    rope_interpolation_scale,
    shift_for_tokens,
    token_count,
    unpack_latents,
)
from ltx_train_lib.models.ltxv.text import TEXT_MAX_TOKENS
from ltx_train_lib.models.ltxv.versions import FAMILY

__all__ = [
    "FAMILY",
    "SPATIAL_COMPRESSION",
    "TEMPORAL_COMPRESSION",
    "TEXT_MAX_TOKENS",
    "denormalize_latents",
    "latent_frames",
    "normalize_latents",
    "pack_latents",
    "rope_interpolation_scale",
    "shift_for_tokens",
    "to_comfy_module_name",
    "to_diffusers_module_name",
    "token_count",
    "unpack_latents",
]
