"""T5 prompt conditions for LTX-Video, in the reference trainer's cache schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

TEXT_MAX_TOKENS = 256  # T5 sequence length used by the reference for conditions


def encode_prompts(tokenizer, text_encoder, prompts: Sequence[str]) -> list[dict[str, torch.Tensor]]:
    """T5 embeddings as the reference computes them: 256 tokens, padded to max length, mask as bool.

    The encoder is called without the attention mask, as the reference and diffusers' LTX pipelines do, so the
    embeddings match what they produce at inference time.
    """
    import torch

    inputs = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=TEXT_MAX_TOKENS,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    device = next(text_encoder.parameters()).device
    with torch.inference_mode():
        embeds = text_encoder(inputs.input_ids.to(device))[0]
    mask = inputs.attention_mask.bool()
    # clone(): a row of the batch tensor would otherwise be saved with the whole batch's storage.
    return [
        {
            "prompt_embeds": embeds[i].to("cpu", torch.bfloat16).clone(),
            "prompt_attention_mask": mask[i].clone(),
        }
        for i in range(len(prompts))
    ]
