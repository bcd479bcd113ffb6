"""T5 prompt conditions for LTX-Video, in the reference trainer's cache schema, in one of two encodings.

``comfyui`` (the default): T5 runs with its attention mask, so the caption's tokens never attend to padding. This is
what ComfyUI's LTXV text encoder feeds the model (``CLIPLoader`` type ``ltxv``: ``comfy/text_encoders/lt.py`` ->
``genmo.py`` -> ``sd3_clip.T5XXLModel`` with ``attention_mask=True``), and what Lightricks' own pipeline and
diffusers' ``LTXConditionPipeline`` do. What ComfyUI does, and what the cache therefore holds:

- the token ids are the tokenizer's: the caption's tokens, then ``</s>``; padding is the pad token (id 0);
- the mask is 1 on the caption's tokens and ``</s>``, 0 on the padding (ComfyUI hands this mask to the model, which
  uses it for cross-attention, as the trainer does);
- the embeddings of padded positions are not zeroed (ComfyUI zeroes them only for Cosmos' T5, not for LTXV);
- ComfyUI pads to at least 128 tokens and never truncates. The cache keeps the reference's fixed 256 tokens: with
  the mask, the embedding of every caption token is independent of the padding length, and the padded positions are
  masked out of cross-attention, so what the model sees is the same. A caption longer than 255 tokens is truncated
  here (ComfyUI would encode all of it); a warning names it.
- ComfyUI reads ``(word:1.2)`` in a prompt as a weight; captions are encoded as the literal text (what ComfyUI does
  for ``\\(word\\)``).

``reference``: T5 runs without the mask (the padding takes part in self-attention), as the reference trainer and
diffusers' ``LTXPipeline`` / ``LTXImageToVideoPipeline`` do. The stored mask is the same in both encodings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

TEXT_MAX_TOKENS = 256  # T5 sequence length used by the reference for conditions
TEXT_ENCODINGS = ("comfyui", "reference")


def encode_prompts(
    tokenizer, text_encoder, prompts: Sequence[str], *, encoding: str = "comfyui"
) -> list[dict[str, torch.Tensor]]:
    """T5 embeddings in the reference's schema: 256 tokens, padded to max length, mask as bool; ``encoding`` says
    whether T5 sees the mask (``comfyui``) or not (``reference``), see the module docstring."""
    import torch

    if encoding not in TEXT_ENCODINGS:
        raise ValueError(f"unknown text encoding {encoding!r}; use one of {', '.join(TEXT_ENCODINGS)}")
    prompts = list(prompts)
    inputs = tokenizer(
        prompts,
        padding="max_length",
        max_length=TEXT_MAX_TOKENS,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    _warn_truncated(tokenizer, prompts, inputs.attention_mask)
    device = next(text_encoder.parameters()).device
    ids = inputs.input_ids.to(device)
    with torch.inference_mode():
        if encoding == "comfyui":
            embeds = text_encoder(ids, attention_mask=inputs.attention_mask.to(device))[0]
        else:
            embeds = text_encoder(ids)[0]
    mask = inputs.attention_mask.bool()
    # clone(): a row of the batch tensor would otherwise be saved with the whole batch's storage.
    return [
        {
            "prompt_embeds": embeds[i].to("cpu", torch.bfloat16).clone(),
            "prompt_attention_mask": mask[i].clone(),
        }
        for i in range(len(prompts))
    ]


def _warn_truncated(tokenizer, prompts: list[str], mask) -> None:
    """A caption cut at 256 tokens trains on less text than ComfyUI (which never truncates) would encode."""
    for i in (i for i, row in enumerate(mask) if bool(row[-1])):
        full = len(tokenizer(prompts[i], add_special_tokens=True).input_ids)
        if full > TEXT_MAX_TOKENS:
            logger.warning(
                "caption '%s...' has %d tokens: only the first %d are encoded (ComfyUI would encode all of them); "
                "shorten it to train on all of it",
                prompts[i][:40],
                full,
                TEXT_MAX_TOKENS,
            )
