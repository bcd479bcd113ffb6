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


def comfy_transformer_config(config: dict) -> dict:
    """The ``config`` metadata entry (its ``"transformer"`` part) that makes ComfyUI build the same model as
    diffusers' ``LTX2VideoTransformer3DModel`` with ``config``.

    ComfyUI's model detection reads a few dims off the tensors and takes everything else from this entry, which
    LTX-2 checkpoints carry; without it ComfyUI falls back to defaults that differ from diffusers' model in more than
    dims: video RoPE without the causal first frame (``causal_temporal_positioning``), RoPE on token starts instead of
    token middles (``use_middle_indices_grid``) and the cross-modal gates fed sigma instead of sigma x 1000
    (``av_ca_timestep_scale_multiplier``). Measured on tiny-ltx2 (tests/test_ltx2.py): with these set, ComfyUI 0.33's
    LTXAV and diffusers give the same velocities (max difference ~1e-5) with either cross-modal attention alone or
    none; with both, ComfyUI 0.33's video-to-audio attention reads the video stream after the audio-to-video update
    (diffusers before it), which no config changes. The text connectors' sizes are not part of the transformer's
    config (diffusers keeps them in ``LTX2TextConnectors``); ComfyUI needs none of them when it is given the
    connectors' outputs (``LTXAVModel.preprocess_text_embeds`` passes a context of twice ``caption_channels`` as is).
    """
    c = config
    out = dict(
        num_layers=c["num_layers"], in_channels=c["in_channels"], audio_in_channels=c["audio_in_channels"],
        cross_attention_dim=c["cross_attention_dim"], audio_cross_attention_dim=c["audio_cross_attention_dim"],
        caption_channels=c["caption_channels"], num_attention_heads=c["num_attention_heads"],
        attention_head_dim=c["attention_head_dim"], audio_num_attention_heads=c["audio_num_attention_heads"],
        audio_attention_head_dim=c["audio_attention_head_dim"],
        positional_embedding_theta=float(c.get("rope_theta", 10000.0)),
        positional_embedding_max_pos=[c.get("pos_embed_max_pos", 20), c.get("base_height", 2048), c.get("base_width", 2048)],
        audio_positional_embedding_max_pos=[c.get("audio_pos_embed_max_pos", 20)],
        vae_scale_factors=list(c.get("vae_scale_factors", (8, 32, 32))),
        # diffusers places the first latent frame causally (its one pixel frame at t=0) and takes RoPE at the middle
        # of each token's [start, end) span; ComfyUI does either only when told.
        causal_temporal_positioning=c.get("causal_offset", 1) == 1,
        use_middle_indices_grid=True,
        timestep_scale_multiplier=float(c.get("timestep_scale_multiplier", 1000)),
        av_ca_timestep_scale_multiplier=float(c.get("cross_attn_timestep_scale_multiplier", 1000)),
        rope_type=c.get("rope_type", "interleaved"),
        frequencies_precision="float64" if c.get("rope_double_precision", True) else "float32",
        apply_gated_attention=bool(c.get("gated_attn") or c.get("audio_gated_attn")),
        cross_attention_adaln=bool(c.get("cross_attn_mod") or c.get("audio_cross_attn_mod")),
        ff_bias=c.get("ff_bias", True) is not False,
        audio_ff_bias=c.get("audio_ff_bias", True) is not False,
    )
    return out
