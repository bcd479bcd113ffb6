"""Bytes of the transformer's weights, the trainable parameters, their gradients and the optimizer state, counted on
the meta-device transformer (exact: the same tensors the trainer makes, without making them).

- frozen base: every parameter and buffer in the load dtype (bf16 for a bf16 LoRA, else fp32), Linear weights of
  a quantized base as the library stores them, except the family's ``quantization_exclusions``: torchao int8
  weight-only 1 byte per value with a float32 scale and an int8 zero point per output row, torchao float8 1 byte
  and a float32 scale per row; optimum-quanto int8/fp8 1 byte and a per-row scale in the load dtype, int4/int2
  packed with a scale and a shift per group of 128, plus an input and an output scale per layer;
- LoRA: A (r x in) and B (out x r) in fp32 for every module peft adapts (its own matching rule); a full fine-tune
  trains every parameter in fp32;
- gradients: fp32, one per trainable parameter;
- AdamW: two fp32 moments per parameter, and a 4-byte step count per tensor that torch keeps on the CPU; 8-bit
  AdamW (bitsandbytes): two uint8 moments with an fp32 absmax per block of 256 values and two 256-entry maps per
  tensor, tensors under 4096 values in 32-bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ltx_train_lib.memory.plan import PlanSettings
    from ltx_train_lib.models.family import ModelFamily

# optimum-quanto's storage per weight value and per-group/row extras, by acceleration.quantization
_QUANTO_BITS = {"int8-quanto": 8, "fp8-quanto": 8, "fp8uz-quanto": 8, "int4-quanto": 4, "int2-quanto": 2}
_QUANTO_GROUP = 128  # values per (scale, shift) pair of the 4- and 2-bit types
_BNB_BLOCK = 256  # values per absmax of bitsandbytes' blockwise 8-bit optimizer state
_BNB_MIN_8BIT = 4096  # smaller tensors keep 32-bit state


@dataclass
class WeightBytes:
    frozen: int  # base weights and buffers, as stored
    per_block: list[int]  # frozen bytes of each of the family's blocks (what block swapping moves)
    trainable: list[int] = field(default_factory=list)  # numel of each trainable tensor (fp32)

    @property
    def trainable_bytes(self) -> int:
        return 4 * sum(self.trainable)

    @property
    def trainable_count(self) -> int:
        return sum(self.trainable)


def _quantized_weight_bytes(weight: torch.Tensor, mode: str, scale_bytes: int) -> int:
    out_features = weight.shape[0]
    if mode == "int8-torchao":  # torchao Int8Tensor: qdata int8, scale float32 and zero_point int8 per row
        return weight.numel() + out_features * (4 + 1)
    if mode == "fp8-torchao":  # torchao Float8Tensor: qdata float8_e4m3fn, scale float32 per row
        return weight.numel() + out_features * 4
    bits = _QUANTO_BITS[mode]
    if bits == 8:
        return weight.numel() + out_features * scale_bytes
    groups = math.ceil(weight.numel() / _QUANTO_GROUP)
    return weight.numel() * bits // 8 + 2 * groups * scale_bytes


def weight_bytes(transformer: torch.nn.Module, family: ModelFamily, settings: PlanSettings) -> WeightBytes:
    """Frozen, per-block and trainable bytes of ``transformer`` (on the meta device) trained with ``settings``."""
    import torch

    from ltx_train_lib.training.quantization import is_quantized_module

    base = 2 if settings.base_dtype == "bf16" else 4
    blocks = family.blocks(transformer)
    block_of = {}
    for i, block in enumerate(blocks):
        for t in (*block.parameters(), *block.buffers()):
            block_of[id(t)] = i
    per_block = [0] * len(blocks)
    frozen = 0
    full = settings.training_mode == "full"
    quantized_weights: dict[int, int] = {}
    if settings.quantization and not full:
        for name, module in transformer.named_modules():
            if is_quantized_module(name, module, family.quantization_exclusions):
                quantized_weights[id(module.weight)] = _quantized_weight_bytes(module.weight, settings.quantization, base)
                if settings.quantization in _QUANTO_BITS:
                    frozen += 2 * base  # quanto's QLinear adds an input and an output scale (scalars, load dtype)
    trainable: list[int] = []
    for t in (*transformer.parameters(), *transformer.buffers()):
        is_param = isinstance(t, torch.nn.Parameter)
        if full and is_param:
            trainable.append(t.numel())
            continue
        nbytes = quantized_weights.get(id(t), t.numel() * (base if t.is_floating_point() else t.element_size()))
        frozen += nbytes
        if id(t) in block_of:
            per_block[block_of[id(t)]] += nbytes
    if not full:
        trainable = lora_tensor_sizes(transformer, settings)
    return WeightBytes(frozen, per_block, trainable)


def lora_tensor_sizes(transformer: torch.nn.Module, settings: PlanSettings) -> list[int]:
    """numel of every LoRA tensor peft adds (A: r x in, B: out x r), in the modules it adapts."""
    from peft import LoraConfig

    from ltx_train_lib.training.model_setup import matched_linears

    matched = matched_linears(transformer, LoraConfig(r=settings.lora_rank, target_modules=list(settings.lora_targets)))
    sizes = []
    for in_f, out_f in matched.values():
        sizes += [settings.lora_rank * in_f, out_f * settings.lora_rank]
    return sizes


def optimizer_bytes(sizes: list[int], optimizer: str, *, device: str) -> int:
    """Optimizer state on ``device`` for trainable tensors of ``sizes`` (numel each)."""
    if optimizer == "adamw8bit":
        total = 0
        for n in sizes:
            if n >= _BNB_MIN_8BIT:
                total += 2 * n + 2 * 4 * math.ceil(n / _BNB_BLOCK) + 2 * 256 * 4
            else:
                total += 8 * n
        return total
    steps = 4 * len(sizes) if device == "cpu" else 0  # torch keeps AdamW's step counts on the CPU
    return 8 * sum(sizes) + steps


def optimizer_step_temporary(sizes: list[int], optimizer: str, *, device: str) -> int:
    """What the optimizer step allocates on top of the state: torch's foreach AdamW on CUDA (its default there)
    makes one fp32 tensor per parameter for the denominator; the single-tensor path on CPU one at a time."""
    if optimizer == "adamw8bit" or not sizes:
        return 0
    return 4 * (sum(sizes) if device == "cuda" else max(sizes))
