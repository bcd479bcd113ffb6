"""LTX-2 prompt conditions: Gemma's hidden states through the frozen text connectors, cached as their output.

What the cache holds, and why that representation: the transformer reads the *connectors'* outputs (one sequence
for the video stream, one for the audio stream), and both the Gemma text encoder and the connectors are frozen
during LoRA and full fine-tunes of the transformer. Caching the connectors' outputs means training keeps neither
resident (for the 12B Gemma that is ~24 GB, for the connectors ~1.4 GB in bf16) and runs neither per step. Nothing
smaller is equivalent: the stacked Gemma states are 49x larger (all 49 layers), and the connectors fill every padded
position with learned registers and attend over the whole sequence, so no position of their output can be dropped.
Per sample that is ``tokens x (video width + audio width) x 2`` bytes in bf16: 1024 x (3840 + 3840) x 2 = 15.7 MB
for LTX-2, 1024 x (4096 + 2048) x 2 = 12.6 MB for 2.3/2.5 (``tiny-ltx2``: 128 x (32 + 32) x 2 = 16 KB);
preprocessing prints the figure.

The prompt path is diffusers' ``LTX2Pipeline`` (``_get_gemma_prompt_embeds`` + ``connectors``): left padding to the
sequence length (1024, or the tokenizer's ``model_max_length`` when smaller), every hidden state stacked, the
connectors run with the attention mask. ``encoding`` ``comfyui`` and ``reference`` are the same here (there is no
older LTX-2 trainer cache to match); both names are accepted so one config works for both families.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

TEXT_MAX_TOKENS = 1024
TEXT_ENCODINGS = ("comfyui", "reference")


def _text_stack_class():
    import torch

    class Ltx2TextStack(torch.nn.Module):
        """Gemma and the text connectors as one module: what ``ModelComponents.text_encoder`` holds for LTX-2, so
        generic code moves and frees them together."""

        def __init__(self, gemma: Any, connectors: Any) -> None:
            super().__init__()
            self.gemma = gemma
            self.connectors = connectors

        @property
        def dtype(self):
            return next(self.gemma.parameters()).dtype

    return Ltx2TextStack


def text_stack(gemma: Any, connectors: Any):
    return _text_stack_class()(gemma, connectors)


def sequence_length(tokenizer) -> int:
    limit = getattr(tokenizer, "model_max_length", TEXT_MAX_TOKENS) or TEXT_MAX_TOKENS
    return int(min(TEXT_MAX_TOKENS, limit))


def encode_prompts(tokenizer, text_encoder, prompts: Sequence[str], *, encoding: str = "comfyui") -> list[dict[str, torch.Tensor]]:
    """One condition per prompt: ``prompt_embeds`` (video stream) [T, Dv], ``audio_prompt_embeds`` [T, Da] (bf16)
    and ``prompt_attention_mask`` [T] (bool)."""
    import torch

    if encoding not in TEXT_ENCODINGS:
        raise ValueError(f"unknown text encoding {encoding!r}; use one of {', '.join(TEXT_ENCODINGS)}")
    gemma, connectors = text_encoder.gemma, text_encoder.connectors
    tokenizer.padding_side = "left"  # what the connectors' register fill and LTX2Pipeline assume
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    inputs = tokenizer(
        [p.strip() for p in prompts],
        padding="max_length",
        max_length=sequence_length(tokenizer),
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    param = next(gemma.parameters())
    ids, mask = inputs.input_ids.to(param.device), inputs.attention_mask.to(param.device)
    with torch.inference_mode():
        states = gemma(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        stacked = torch.stack(states, dim=-1).flatten(2, 3)  # [B, T, D x layers]
        cparam = next(connectors.parameters())
        video, audio, out_mask = connectors(stacked.to(cparam.dtype), mask, padding_side="left")
    return [
        {
            "prompt_embeds": video[i].to("cpu", torch.bfloat16).clone(),
            "audio_prompt_embeds": audio[i].to("cpu", torch.bfloat16).clone(),
            "prompt_attention_mask": out_mask[i].bool().cpu().clone(),
        }
        for i in range(len(prompts))
    ]
