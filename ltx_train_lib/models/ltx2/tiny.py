"""The ``tiny-ltx2`` model source: small random-weight LTX-2 components built offline.

A normal diffusers ``LTX2Pipeline`` folder (transformer, connectors, both VAEs, vocoder, a Gemma 3 text encoder
with a tokenizer trained on the spot, scheduler), so it loads through exactly the code path of a real local LTX-2.
The video VAE keeps the real compression (32x spatial, 8x temporal) and the audio side the real rates (16 kHz,
hop 160, 4x latent downsampling = 25 audio latents per second), so bucket rules and audio lengths behave as with
the real model; everything else is shrunk. Built for tests, the demo and benchmarks; labelled random weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from ltx_train_lib.fileio import atomic_dir
from ltx_train_lib.models.ltxv.tiny import MARKER_FILE, tiny_cache_root

TINY_VERSION = "tiny-ltx2-v1"
TINY_SOURCE = "tiny-ltx2"

# Latent channels of the tiny video VAE = the transformer's video token width (patch size 1).
VIDEO_LATENT_CHANNELS = 8
# Audio: 2 latent channels x (8 mel bins / 4) = 4 features per audio token.
AUDIO_LATENT_CHANNELS = 2
MEL_BINS = 8
TEXT_HIDDEN = 32
TEXT_LAYERS = 2  # hidden states = layers + embeddings = 3 = the connectors' text_proj_in_factor
TEXT_MAX_TOKENS = 128  # tokenizer.model_max_length: prompts pad to this (the real model: 1024)

TRANSFORMER_CONFIG = dict(
    in_channels=VIDEO_LATENT_CHANNELS,
    out_channels=VIDEO_LATENT_CHANNELS,
    patch_size=1,
    patch_size_t=1,
    num_attention_heads=2,
    attention_head_dim=8,
    cross_attention_dim=16,
    audio_in_channels=AUDIO_LATENT_CHANNELS * MEL_BINS // 4,
    audio_out_channels=AUDIO_LATENT_CHANNELS * MEL_BINS // 4,
    audio_num_attention_heads=2,
    audio_attention_head_dim=4,
    audio_cross_attention_dim=8,
    num_layers=2,
    qk_norm="rms_norm_across_heads",
    caption_channels=TEXT_HIDDEN,
    rope_double_precision=False,
    rope_type="split",
)
CONNECTORS_CONFIG = dict(
    caption_channels=TEXT_HIDDEN,
    text_proj_in_factor=TEXT_LAYERS + 1,
    video_connector_num_attention_heads=4,
    video_connector_attention_head_dim=8,
    video_connector_num_layers=1,
    video_connector_num_learnable_registers=16,
    audio_connector_num_attention_heads=4,
    audio_connector_attention_head_dim=8,
    audio_connector_num_layers=1,
    audio_connector_num_learnable_registers=16,
    connector_rope_base_seq_len=32,
    rope_theta=10000.0,
    rope_double_precision=False,
    causal_temporal_positioning=False,
    rope_type="split",
)
VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=VIDEO_LATENT_CHANNELS,
    block_out_channels=(8, 8, 8, 8),
    decoder_block_out_channels=(8, 16, 32),  # each decoder up block halves channels again
    layers_per_block=(1, 1, 1, 1, 1),
    decoder_layers_per_block=(1, 1, 1, 1),
    patch_size=4,
    patch_size_t=1,
    encoder_causal=True,
    decoder_causal=False,
    # diffusers derives the ratios from the block count (64/16 here); the encoder really compresses 32x/8x.
    spatial_compression_ratio=32,
    temporal_compression_ratio=8,
)
AUDIO_VAE_CONFIG = dict(
    base_channels=4,
    output_channels=2,
    ch_mult=(1, 2, 4),  # two downsamples: 4x in time and in mel bins, as the real audio VAE
    num_res_blocks=1,
    in_channels=2,
    resolution=32,
    latent_channels=AUDIO_LATENT_CHANNELS,
    norm_type="pixel",
    causality_axis="height",
    sample_rate=16000,
    mel_hop_length=160,
    is_causal=True,
    mel_bins=MEL_BINS,
)
VOCODER_CONFIG = dict(
    in_channels=2 * MEL_BINS,  # stereo mel (2 channels x mel bins) in
    hidden_channels=32,
    out_channels=2,
    upsample_kernel_sizes=[8, 8, 4, 10],
    upsample_factors=[4, 4, 2, 5],  # 160 = the mel hop: one mel frame -> 160 samples
    resnet_kernel_sizes=[3],
    resnet_dilations=[[1, 3]],
    output_sampling_rate=16000,
)
# Non-trivial latent statistics so normalisation is exercised (the real VAEs have them too).
VIDEO_LATENTS_MEAN = (-0.4, 0.25, -0.1, 0.5, 0.15, -0.3, 0.05, -0.2)
VIDEO_LATENTS_STD = (0.6, 1.6, 0.9, 1.9, 1.2, 0.7, 1.3, 0.8)
AUDIO_LATENTS_MEAN = (0.2, -0.3, 0.1, -0.05)  # per audio-token feature (channels x latent mel bins)
AUDIO_LATENTS_STD = (1.5, 0.7, 1.1, 0.9)
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    shift=1.0,
    use_dynamic_shifting=True,
    base_shift=0.95,
    max_shift=2.05,
    base_image_seq_len=1024,
    max_image_seq_len=4096,
    shift_terminal=0.1,
)

_WORDS = (
    "a the of and in on with is are to from at by for as it its this that video clip scene shows person man woman "
    "dog cat car tree sky water red green blue white black square stripes moving noise camera slowly fast light "
    "dark day night walks runs sits looks turns close up wide shot background tone beep hum sound music speech "
    "says voice loud quiet high low pitch audio"
).split()


def tiny_ltx2_dir() -> Path:
    """The tiny LTX-2 pipeline folder, built on first use."""
    folder = tiny_cache_root() / TINY_VERSION
    if not (folder / MARKER_FILE).is_file():
        build_tiny_ltx2(folder)
    return folder


def _tokenizer():
    """A Gemma tokenizer (left padding, <bos>/<eos>/<pad>) trained on the spot: no download."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import GemmaTokenizerFast

    chars = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()"))
    vocab = [("<pad>", 0.0), ("<eos>", 0.0), ("<bos>", 0.0), ("<unk>", 0.0), ("<mask>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -3.0) for w in _WORDS]
    vocab += [(c, -8.0) for c in chars] + [("\u2581" + c, -7.0) for c in chars]
    tok = Tokenizer(Unigram(vocab, unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single=["<bos>", "$A"], special_tokens=[("<bos>", 2)])
    tokenizer = GemmaTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>", padding_side="left", model_max_length=TEXT_MAX_TOKENS,
    )
    return tokenizer


def _text_encoder(vocab_size: int):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    config = Gemma3Config(
        text_config=dict(
            vocab_size=vocab_size, hidden_size=TEXT_HIDDEN, intermediate_size=64, num_hidden_layers=TEXT_LAYERS,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=TEXT_MAX_TOKENS * 2,
            sliding_window=TEXT_MAX_TOKENS, pad_token_id=0, eos_token_id=1, bos_token_id=2,
        ),
        vision_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28,
            patch_size=14,
        ),
        mm_tokens_per_image=4,
        image_token_index=vocab_size - 1,
        boi_token_index=vocab_size - 2,
        eoi_token_index=vocab_size - 3,
    )
    return Gemma3ForConditionalGeneration(config)


def build_tiny_ltx2(folder: str | Path, seed: int = 0) -> Path:
    """Build and save the tiny LTX-2 pipeline (deterministic for a seed). Atomic: the folder is complete or absent."""
    import torch
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2Pipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        tokenizer = _tokenizer()
        torch.manual_seed(seed)
        transformer = LTX2VideoTransformer3DModel(**TRANSFORMER_CONFIG)
        torch.manual_seed(seed + 1)
        vae = AutoencoderKLLTX2Video(**VAE_CONFIG)
        vae.use_framewise_encoding = False
        vae.use_framewise_decoding = False
        vae.latents_mean.copy_(torch.tensor(VIDEO_LATENTS_MEAN))
        vae.latents_std.copy_(torch.tensor(VIDEO_LATENTS_STD))
        torch.manual_seed(seed + 2)
        audio_vae = AutoencoderKLLTX2Audio(**AUDIO_VAE_CONFIG)
        # The audio VAE's statistics are per packed feature (channels x latent mel bins), registered with
        # base_channels entries; the tiny one has exactly 4 of each.
        audio_vae.latents_mean.copy_(torch.tensor(AUDIO_LATENTS_MEAN))
        audio_vae.latents_std.copy_(torch.tensor(AUDIO_LATENTS_STD))
        torch.manual_seed(seed + 3)
        connectors = LTX2TextConnectors(**CONNECTORS_CONFIG)
        torch.manual_seed(seed + 4)
        vocoder = LTX2Vocoder(**VOCODER_CONFIG)
        torch.manual_seed(seed + 5)
        text_encoder = _text_encoder(len(tokenizer))
        scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
        pipe = LTX2Pipeline(
            scheduler=scheduler, vae=vae, audio_vae=audio_vae, text_encoder=text_encoder, tokenizer=tokenizer,
            connectors=connectors, transformer=transformer, vocoder=vocoder,
        )
        pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / MARKER_FILE).write_text(
            "This folder holds a TINY LTX-2 pipeline with RANDOM WEIGHTS, built offline by ltx_train_lib for tests, "
            "the demo and benchmarks. It generates noise, not video or sound.\n"
        )
        (tmp / "ltx_train_lib.json").write_text(
            json.dumps({"source": TINY_SOURCE, "version": TINY_VERSION, "seed": seed})
        )
    return folder
