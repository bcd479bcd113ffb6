"""The ``tiny-omni`` captioner: a small random-weight Qwen2.5-Omni (thinker only) built offline.

Captions that hear need a model that takes a clip's frames and its sound together; Qwen2.5-Omni does, through
transformers' own ``Qwen2_5OmniProcessor`` (video frames, plus 16 kHz audio turned into Whisper log-mel features
and interleaved with the video tokens every 2 seconds) and ``Qwen2_5OmniForConditionalGeneration``. Tests need that
code path without a 20 GB download: this module builds a folder that loads exactly like ``Qwen/Qwen2.5-Omni-7B``
(``from_pretrained`` of processor and model, ``spk_dict.pt`` included) with a byte-level BPE tokenizer trained on the
spot with Qwen-Omni's special tokens, the real image/video processors and Whisper feature extractor, and a
~70k-parameter thinker without the speech-output talker. Its captions are word salad: a marker file labels the
folder as random weights.
"""

from __future__ import annotations

from pathlib import Path

from ltx_train_lib.fileio import atomic_dir
from ltx_train_lib.models.tiny_qwen import MARKER_FILE, tiny_cache_root

TINY_OMNI_VERSION = "tiny-qwen-omni-v1"
TINY_OMNI_ALIAS = "tiny-omni"

# Qwen2.5-Omni's special tokens (the names its processor looks up on the tokenizer), at the low ids 0..9.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
)
TOKEN_NAMES = {
    "image_token": "<|IMAGE|>",
    "audio_token": "<|AUDIO|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}

# Qwen2.5-Omni's chat template for text answers: media placeholders in a user turn, as the real template writes them.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Caption-like sentences about pictures and sound: the BPE merges become whole words, so random weights emit words.
_CORPUS = (
    "A yellow square moves across a red background while a steady low tone hums.",
    "A woman says hello and a dog barks in the distance.",
    "Blue stripes scroll sideways over a pulsing tone and soft hiss.",
    "Music plays as the camera pans over trees and a calm lake.",
    "A man speaks to the camera; traffic noise and wind are heard.",
    "Short beeps sound while a white disc bounces over a gradient.",
    "Rain falls on a car roof and thunder rumbles far away.",
    "An orange checkerboard slides diagonally with a high fluttering tone.",
)

# num_mel_bins must match the Whisper feature extractor (128 bins, as Qwen2.5-Omni-7B uses).
AUDIO_CONFIG = dict(
    num_mel_bins=128,
    encoder_layers=1,
    encoder_attention_heads=2,
    encoder_ffn_dim=16,
    d_model=16,
    output_dim=32,
    n_window=100,
    max_source_positions=1500,
)
VISION_CONFIG = dict(
    depth=1,
    hidden_size=16,
    intermediate_size=16,
    num_heads=2,
    out_hidden_size=32,
    # The real patching (14 px, 2x2 merge, 2-frame tubelets): token counts and the audio interleave match real inputs.
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[0],
)
TEXT_CONFIG = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
)

_MARKER_TEXT = (
    "This folder holds a TINY Qwen2.5-Omni thinker with RANDOM WEIGHTS ({version}), built offline by\n"
    "ltx_train_lib.tiny_omni for tests and demos. Its captions are meaningless word salad.\n"
    "For real captions that hear use Qwen/Qwen2.5-Omni-7B (or -3B).\n"
)


def is_tiny_omni_folder(folder: str | Path) -> bool:
    marker = Path(folder) / MARKER_FILE
    return marker.is_file() and TINY_OMNI_VERSION in marker.read_text(encoding="utf-8")


def tiny_omni_dir() -> Path:
    """The cached tiny Omni captioner folder, built on first use (what ``model="tiny-omni"`` resolves to)."""
    return build_tiny_omni(tiny_cache_root() / TINY_OMNI_VERSION)


def _tokenizer():
    from ltx_train_lib.models.tiny_qwen import train_qwen_tokenizer

    return train_qwen_tokenizer(SPECIAL_TOKENS, _CORPUS, CHAT_TEMPLATE, extra_special_tokens=TOKEN_NAMES)


def _unreadable_token_ids(tokenizer) -> list[int]:
    """Special tokens other than the end token, and tokens that are not printable ASCII: suppressed in generation so
    random-weight captions stay readable and non-empty (generation itself stays greedy decoding)."""
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    bad = []
    for token_id in range(len(tokenizer)):
        if token_id == eos:
            continue
        text = tokenizer.decode([token_id])
        if token_id < len(SPECIAL_TOKENS) or not text.strip() or not (text.isascii() and text.isprintable()):
            bad.append(token_id)
    return bad


def build_tiny_omni(folder: str | Path, seed: int = 0, *, force: bool = False) -> Path:
    """Build the tiny Qwen2.5-Omni into ``folder`` (skipped when already built, unless ``force``); returns it.

    Deterministic for a seed; atomic (the folder appears complete, marker included, or not at all).
    """
    folder = Path(folder)
    if is_tiny_omni_folder(folder) and not force:
        return folder

    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5OmniConfig,
        Qwen2_5OmniForConditionalGeneration,
        Qwen2_5OmniProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    tokenizer = _tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    token_ids = dict(
        audio_token_index=ids["<|AUDIO|>"],
        image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"],
        vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"],
    )
    thinker = dict(
        audio_config=AUDIO_CONFIG,
        vision_config=VISION_CONFIG,
        text_config=dict(
            TEXT_CONFIG,
            vocab_size=len(tokenizer),
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        user_token_id=ids["<|im_start|>"],
        **token_ids,
    )
    # No talker (speech output) is built or saved; its config only needs ids inside its vocabulary.
    talker = dict(
        token_ids,
        vocab_size=16,
        tts_text_start_token_id=0,
        tts_text_end_token_id=1,
        tts_text_pad_token_id=2,
        tts_codec_start_token_id=3,
        tts_codec_end_token_id=4,
        tts_codec_pad_token_id=5,
        tts_codec_mask_token_id=6,
        embedding_size=32,
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
    )
    config = Qwen2_5OmniConfig(thinker_config=thinker, talker_config=talker, enable_audio_output=False)
    torch.manual_seed(seed)
    model = Qwen2_5OmniForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        suppress_tokens=_unreadable_token_ids(tokenizer),
    )
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(),
        video_processor=Qwen2VLVideoProcessor(),
        feature_extractor=WhisperFeatureExtractor(feature_size=AUDIO_CONFIG["num_mel_bins"]),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    try:
        with atomic_dir(folder) as tmp:
            model.save_pretrained(tmp)
            processor.save_pretrained(tmp)
            # Qwen2_5OmniForConditionalGeneration.from_pretrained insists on the speaker file of the real repo.
            torch.save({}, tmp / "spk_dict.pt")
            (tmp / MARKER_FILE).write_text(_MARKER_TEXT.format(version=TINY_OMNI_VERSION), encoding="utf-8")
    except OSError:
        if not is_tiny_omni_folder(folder):
            raise
    return folder
