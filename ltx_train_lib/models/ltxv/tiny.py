"""The ``tiny`` model source: small random-weight LTX-Video components built offline.

Used by tests, the demo and benchmarks. The VAE keeps the real compression ratios (32x spatial, 8x temporal) so
bucket rules and latent shapes behave exactly as with real models; everything else is shrunk. The folder is a
normal diffusers pipeline folder, so it loads through the same code path as a real local model. Every output
made from it is labelled as random weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ltx_train_lib.fileio import atomic_dir

# v2: the VAE's latents_mean / latents_std are non-trivial (v1 had 0 / 1, so normalisation was the identity).
TINY_VERSION = "tiny-ltxv-v2"
MARKER_FILE = "TINY_RANDOM_WEIGHTS.txt"

TRANSFORMER_CONFIG = dict(
    in_channels=8,
    out_channels=8,
    patch_size=1,
    patch_size_t=1,
    num_attention_heads=4,
    attention_head_dim=8,
    cross_attention_dim=32,
    num_layers=2,
    caption_channels=32,
)
VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=8,
    block_out_channels=(8, 8, 8, 8),
    decoder_block_out_channels=(8, 8, 8, 8),
    spatio_temporal_scaling=(True, True, True, False),
    decoder_spatio_temporal_scaling=(True, True, True, False),
    layers_per_block=(1, 1, 1, 1, 1),
    decoder_layers_per_block=(1, 1, 1, 1, 1),
    patch_size=4,
    patch_size_t=1,
    encoder_causal=True,
    decoder_causal=False,
)
# Per-channel latent statistics of the tiny VAE (diffusers' registered buffers ``latents_mean`` / ``latents_std``;
# real LTX VAEs have non-trivial ones too): fixed values, so latent normalisation is exercised wherever the tiny model
# is used. Mean in [-0.5, 0.5], std in [0.5, 2], in no channel order.
LATENTS_MEAN = (-0.5, 0.3, -0.1, 0.45, 0.2, -0.35, 0.05, -0.25)
LATENTS_STD = (0.5, 1.7, 0.8, 2.0, 1.1, 0.6, 1.4, 0.9)
T5_CONFIG = dict(
    d_model=32,
    d_ff=37,
    d_kv=8,
    num_heads=4,
    num_layers=2,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=32,
    dropout_rate=0.0,
    feed_forward_proj="gated-gelu",
    is_encoder_decoder=False,
    use_cache=False,
)
# The LTX-Video scheduler settings (dynamic shift between 0.95 and 2.05 over 1024..4096 tokens).
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
    "dark day night walks runs sits looks turns close up wide shot background foreground cake squish cakeify"
).split()


def tiny_cache_root() -> Path:
    return Path(os.environ.get("LTX_TRAIN_CACHE", Path.home() / ".cache" / "ltx_train_lib"))


def tiny_model_dir() -> Path:
    """The tiny pipeline folder, built on first use."""
    folder = tiny_cache_root() / TINY_VERSION
    if not (folder / MARKER_FILE).is_file():
        build_tiny_pipeline(folder)
    return folder


def _tokenizer():
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import T5TokenizerFast

    chars = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()"))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -3.0) for w in _WORDS]
    vocab += [(c, -8.0) for c in chars] + [("\u2581" + c, -7.0) for c in chars]
    tok = Tokenizer(Unigram(vocab, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single=["$A", "</s>"], special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, extra_ids=0, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def build_tiny_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """Build and save the tiny pipeline (deterministic for a given seed). Atomic: the folder is complete or absent."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        tokenizer = _tokenizer()
        torch.manual_seed(seed)
        transformer = LTXVideoTransformer3DModel(**TRANSFORMER_CONFIG)
        torch.manual_seed(seed + 1)
        vae = AutoencoderKLLTXVideo(**VAE_CONFIG)
        vae.use_framewise_encoding = False
        vae.use_framewise_decoding = False
        vae.latents_mean.copy_(torch.tensor(LATENTS_MEAN))
        vae.latents_std.copy_(torch.tensor(LATENTS_STD))
        torch.manual_seed(seed + 2)
        text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), **T5_CONFIG))
        scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
        pipe = LTXPipeline(
            transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler
        )
        pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / MARKER_FILE).write_text(
            "This folder holds a TINY LTX-Video pipeline with RANDOM WEIGHTS, built offline by ltx_train_lib for "
            "tests, the demo and benchmarks. It generates noise, not video.\n"
        )
        (tmp / "ltx_train_lib.json").write_text(json.dumps({"source": "tiny", "version": TINY_VERSION, "seed": seed}))
    return folder


def is_tiny_folder(folder: str | Path) -> bool:
    return (Path(folder) / MARKER_FILE).is_file()
