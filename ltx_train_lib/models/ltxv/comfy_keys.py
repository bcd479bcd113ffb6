"""LTX-Video module names in diffusers and in ComfyUI (= Lightricks' original checkpoints).

Names differ only at the top level (``proj_in``/``patchify_proj``, ``time_embed``/``adaln_single``) and in the
attention norms (``norm_q``/``q_norm``, ``norm_k``/``k_norm``); block-internal names are identical.
"""

from __future__ import annotations

# diffusers name -> ComfyUI / original Lightricks name.
COMFY_TOP_LEVEL_RENAMES = (("proj_in", "patchify_proj"), ("time_embed", "adaln_single"))
# Renamed path segments anywhere in a key.
SEGMENTS_TO_COMFY = {"norm_q": "q_norm", "norm_k": "k_norm"}
SEGMENTS_TO_DIFFUSERS = {v: k for k, v in SEGMENTS_TO_COMFY.items()}


def to_comfy_module_name(name: str) -> str:
    """diffusers module path (no prefix) -> ComfyUI module path (no prefix), top-level renames only."""
    for src, dst in COMFY_TOP_LEVEL_RENAMES:
        if name == src or name.startswith(src + "."):
            return dst + name[len(src) :]
    return name


def to_diffusers_module_name(name: str) -> str:
    for dst, src in COMFY_TOP_LEVEL_RENAMES:
        if name == src or name.startswith(src + "."):
            return dst + name[len(src) :]
    return name


def to_comfy_path(name: str) -> str:
    """diffusers module/parameter path (no prefix) -> ComfyUI path (no prefix)."""
    name = to_comfy_module_name(name)
    return ".".join(SEGMENTS_TO_COMFY.get(s, s) for s in name.split("."))


def to_diffusers_path(name: str) -> str:
    """ComfyUI module/parameter path (no prefix) -> diffusers path (no prefix)."""
    name = to_diffusers_module_name(name)
    return ".".join(SEGMENTS_TO_DIFFUSERS.get(s, s) for s in name.split("."))
