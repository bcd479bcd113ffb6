"""The ``tiny`` captioner: a small random-weight Qwen2.5-VL built offline.

Tests and demos need a captioner that loads through exactly the code path of the real
``Qwen/Qwen2.5-VL-7B-Instruct`` (``AutoProcessor.from_pretrained`` + ``Qwen2_5_VLForConditionalGeneration
.from_pretrained`` on a folder) without a 16 GB download. This module builds such a folder: a byte-level BPE
tokenizer trained on the spot with Qwen's special tokens, Qwen2.5-VL's chat template, the real image and video
processors, and a ~120k-parameter model. Its captions are word salad: it is labelled as random weights in a marker
file and must never be mistaken for a real model.
"""

from __future__ import annotations

import os
from pathlib import Path

from ltx_train_lib.fileio import atomic_dir

TINY_QWEN_VERSION = "tiny-qwen-vl-v1"
TINY_QWEN_ALIAS = "tiny"
MARKER_FILE = "TINY_RANDOM_WEIGHTS.txt"

# Qwen2.5-VL's special tokens, given the low ids 0..6 so the config below can name them.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2.5-VL-7B-Instruct's chat template (the same text as its chat_template.json), so prompts are built the same way.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Caption-like sentences: the tokenizer's merges become whole words, so even random weights emit readable words.
_CORPUS = (
    "The video shows a red square moving slowly across a blue background.",
    "A person walks a dog along a quiet street at night.",
    "The camera pans over green trees and a calm lake under a bright sky.",
    "A white cat sits on a wooden table and looks at the camera.",
    "This scene depicts a car driving fast on a wet road in the rain.",
    "Close up shot of hands slicing a cake on a plate.",
    "A woman in a black coat turns and smiles in the sunlight.",
    "Scrolling stripes and a bouncing disc fill the frame with colour.",
    "Wide shot of mountains, clouds and a river in the evening light.",
    "The image shows a checkerboard pattern with drifting noise.",
)

TEXT_CONFIG = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    # mrope_section must sum to head_dim / 2 (32 / 4 / 2 = 4): temporal, height, width rotary sections.
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
    tie_word_embeddings=False,
)
VISION_CONFIG = dict(
    depth=2,
    hidden_size=32,
    intermediate_size=32,
    num_heads=4,
    out_hidden_size=32,
    # The real model's patching (14 px patches, 2x2 merge, 2-frame tubelets), so token counts match real inputs.
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[1],
)

_MARKER_TEXT = (
    "This folder holds a TINY Qwen2.5-VL with RANDOM WEIGHTS ({version}), built offline by\n"
    "ltx_train_lib.models.tiny_qwen for tests and demos. Its captions are meaningless word salad.\n"
    "For real captions use Qwen/Qwen2.5-VL-7B-Instruct or another Qwen2.5-VL checkpoint.\n"
)


def tiny_cache_root() -> Path:
    """Where tiny models are cached: $LTX_TRAIN_CACHE, else ~/.cache/ltx_train_lib (same root as the tiny LTX-Video)."""
    return Path(os.environ.get("LTX_TRAIN_CACHE", Path.home() / ".cache" / "ltx_train_lib"))


def is_tiny_qwen_folder(folder: str | Path) -> bool:
    return (Path(folder) / MARKER_FILE).is_file()


def tiny_qwen_vl_dir() -> Path:
    """The cached tiny captioner folder, built on first use (what ``model="tiny"`` resolves to)."""
    return build_tiny_qwen_vl(tiny_cache_root() / TINY_QWEN_VERSION)


def _tokenizer():
    return train_qwen_tokenizer(SPECIAL_TOKENS, _CORPUS, CHAT_TEMPLATE)


def train_qwen_tokenizer(special_tokens, corpus, chat_template: str, **extra):
    """A byte-level BPE tokenizer trained on ``corpus`` with Qwen's special tokens, as a ``Qwen2TokenizerFast``
    (the tiny Qwen2.5-VL and Qwen2.5-Omni captioners share it; ``extra``: more tokenizer arguments)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # The full byte alphabet keeps any instruction encodable (no unknown tokens), as in Qwen's real tokenizer.
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer)
    return Qwen2TokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=chat_template,
        **extra,
    )


def _unreadable_token_ids(tokenizer) -> list[int]:
    """Special tokens other than the end token, and tokens that do not decode to printable ASCII (lone bytes).

    Suppressing them in the generation config keeps random-weight captions readable and non-empty while
    generation itself stays the library's greedy decoding.
    """
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    bad = []
    for token_id in range(len(tokenizer)):
        if token_id == eos:
            continue
        text = tokenizer.decode([token_id])
        if token_id < len(SPECIAL_TOKENS) or not text.strip() or not (text.isascii() and text.isprintable()):
            bad.append(token_id)
    return bad


def build_tiny_qwen_vl(folder: str | Path, seed: int = 0, *, force: bool = False) -> Path:
    """Build the tiny Qwen2.5-VL into ``folder`` (skipped when already built, unless ``force``); returns the folder.

    Deterministic for a given seed. Atomic: the folder appears complete (marker file included) or not at all, so a
    crash mid-build never leaves a folder that looks usable.
    """
    folder = Path(folder)
    if is_tiny_qwen_folder(folder) and not force:
        return folder

    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = _tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config=dict(
            TEXT_CONFIG,
            vocab_size=len(tokenizer),
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=VISION_CONFIG,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        suppress_tokens=_unreadable_token_ids(tokenizer),
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    try:
        with atomic_dir(folder) as tmp:
            model.save_pretrained(tmp)
            processor.save_pretrained(tmp)
            (tmp / MARKER_FILE).write_text(_MARKER_TEXT.format(version=TINY_QWEN_VERSION), encoding="utf-8")
    except OSError:
        # Another process may have finished the same build first (the rename then finds a full folder).
        if not is_tiny_qwen_folder(folder):
            raise
    return folder
