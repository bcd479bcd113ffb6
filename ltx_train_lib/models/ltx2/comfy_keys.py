"""LTX-2 module names in diffusers and in ComfyUI's ``LTXAV`` model (= Lightricks' original checkpoints).

The table is the inverse of diffusers' ``_convert_non_diffusers_ltx2_lora_to_diffusers`` (which maps ComfyUI/
original LoRA keys to diffusers names), applied per path segment so that no name is renamed inside another
(``audio_patchify_proj`` is not ``audio_`` + ``patchify_proj``). Top-level time embeddings are renamed only as the
first segment, as diffusers does.
"""

from __future__ import annotations

# diffusers segment -> ComfyUI segment (anywhere in a path).
SEGMENTS_TO_COMFY = {
    "proj_in": "patchify_proj",
    "audio_proj_in": "audio_patchify_proj",
    "av_cross_attn_video_scale_shift": "av_ca_video_scale_shift_adaln_single",
    "av_cross_attn_video_a2v_gate": "av_ca_a2v_gate_adaln_single",
    "av_cross_attn_audio_scale_shift": "av_ca_audio_scale_shift_adaln_single",
    "av_cross_attn_audio_v2a_gate": "av_ca_v2a_gate_adaln_single",
    "video_a2v_cross_attn_scale_shift_table": "scale_shift_table_a2v_ca_video",
    "audio_a2v_cross_attn_scale_shift_table": "scale_shift_table_a2v_ca_audio",
    "norm_q": "q_norm",
    "norm_k": "k_norm",
    "prompt_adaln": "prompt_adaln_single",
    "audio_prompt_adaln": "audio_prompt_adaln_single",
}
# diffusers first segment -> ComfyUI first segment.
TOP_LEVEL_TO_COMFY = {"time_embed": "adaln_single", "audio_time_embed": "audio_adaln_single"}

SEGMENTS_TO_DIFFUSERS = {v: k for k, v in SEGMENTS_TO_COMFY.items()}
TOP_LEVEL_TO_DIFFUSERS = {v: k for k, v in TOP_LEVEL_TO_COMFY.items()}


def _map(name: str, top: dict[str, str], segments: dict[str, str]) -> str:
    parts = name.split(".")
    if parts and parts[0] in top:
        parts[0] = top[parts[0]]
        rest = parts[1:]
        return ".".join([parts[0], *(segments.get(p, p) for p in rest)])
    return ".".join(segments.get(p, p) for p in parts)


def to_comfy_path(name: str) -> str:
    """diffusers module/parameter path (no prefix) -> ComfyUI LTXAV path (no prefix)."""
    return _map(name, TOP_LEVEL_TO_COMFY, SEGMENTS_TO_COMFY)


def to_diffusers_path(name: str) -> str:
    """ComfyUI LTXAV module/parameter path (no prefix) -> diffusers path (no prefix)."""
    return _map(name, TOP_LEVEL_TO_DIFFUSERS, SEGMENTS_TO_DIFFUSERS)
