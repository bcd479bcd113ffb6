"""Turning a loaded transformer into the trainable model: frozen base (optionally quantized), LoRA adapter or full
fine-tune, initial weights, gradient checkpointing, per-block compile, and the optimizer with its schedule."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ltx_train_lib.errors import ConfigError, TrainingError
from ltx_train_lib.training import checkpoint as ckpt
from ltx_train_lib.training.schedule import lr_factor

if TYPE_CHECKING:
    from ltx_train_lib.config import OptimizationConfig, TrainerConfig
    from ltx_train_lib.models.family import ModelFamily

log = logging.getLogger("ltx_train_lib.trainer")

_QUANTO_TYPES = {"int8-quanto": "qint8", "int4-quanto": "qint4", "int2-quanto": "qint2", "fp8-quanto": "qfloat8",
                 "fp8uz-quanto": "qfloat8_e4m3fnuz"}


def build_trainable_model(
    cfg: TrainerConfig, family: ModelFamily, transformer: torch.nn.Module, device: torch.device
) -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
    """Freeze the base, add what trains, and return the model with its trainable parameters."""
    transformer.requires_grad_(False)
    if cfg.acceleration.quantization not in (None, "no_change"):
        quantize_frozen_base(transformer, cfg.acceleration.quantization, family.quantization_exclusions)
    if cfg.model.training_mode == "lora":
        from peft import LoraConfig

        assert cfg.lora is not None
        transformer.add_adapter(
            LoraConfig(
                r=cfg.lora.rank,
                lora_alpha=cfg.lora.alpha,
                lora_dropout=cfg.lora.dropout,
                target_modules=list(cfg.lora.target_modules),
                init_lora_weights=True,
            )
        )
        params = [p for n, p in transformer.named_parameters() if "lora_" in n]
        for p in params:
            p.requires_grad_(True)
            p.data = p.data.float()  # adapter weights train in fp32 even over a bf16 base
        if not params:
            raise ConfigError(f"lora.target_modules {cfg.lora.target_modules} matched no module of the transformer")
    else:
        transformer.requires_grad_(True)
        params = list(transformer.parameters())
    if cfg.model.load_checkpoint:
        load_weights_only(transformer, ckpt.find_weights_file(cfg.model.load_checkpoint), cfg.model.training_mode, family)
    if cfg.optimization.enable_gradient_checkpointing:
        # On the unwrapped model, before DDP wraps it (the reference crashed calling it on the DDP wrapper).
        transformer.enable_gradient_checkpointing()
    if cfg.acceleration.compile_with_inductor:
        if device.type == "cuda":
            torch._dynamo.config.cache_size_limit = 128
            compile_blocks(family, transformer, mode=cfg.acceleration.compilation_mode)
        else:
            log.info("acceleration.compile_with_inductor: skipped on CPU")
    transformer.train()
    return transformer, params


def compile_blocks(family: ModelFamily, transformer: torch.nn.Module, **compile_kwargs) -> None:
    """Replace each of the family's blocks by ``torch.compile(block, **compile_kwargs)``; the compiled wrapper keeps
    the eager block (``_orig_mod``, same parameters), which :func:`eager_blocks` puts back for validation."""
    blocks = family.blocks(transformer)
    for i, block in enumerate(blocks):
        blocks[i] = torch.compile(block, **compile_kwargs)


def _is_compiled(module: torch.nn.Module) -> bool:
    from torch._dynamo.eval_frame import OptimizedModule

    return isinstance(module, OptimizedModule)


@contextlib.contextmanager
def eager_blocks(family: ModelFamily, transformer: torch.nn.Module) -> Iterator[None]:
    """Inside the block, ``transformer`` runs its original eager blocks instead of the compiled ones.

    Validation differs from a training step in shapes, grad mode and train/eval mode: compiled blocks would
    recompile (or replay CUDA graphs captured for training under ``reduce-overhead``), as the reference trainer
    avoided by forcing eager sampling. The compiled wrappers come back afterwards, also on failure.
    """
    blocks = family.blocks(transformer)
    swapped = []
    for i, block in enumerate(blocks):
        if _is_compiled(block):
            swapped.append((i, block))
            blocks[i] = block._orig_mod
    try:
        yield
    finally:
        for i, block in swapped:
            blocks[i] = block


def quantize_frozen_base(transformer: torch.nn.Module, mode: str, exclusions: tuple[str, ...]) -> None:
    """Quantize the frozen base weights with optimum-quanto (as the reference), keeping the family's sensitive
    layers in full precision."""
    from optimum import quanto

    quanto.quantize(transformer, weights=getattr(quanto, _QUANTO_TYPES[mode]), exclude=list(exclusions))
    quanto.freeze(transformer)


def load_weights_only(transformer: torch.nn.Module, path: Path, training_mode: str, family: ModelFamily) -> None:
    """``model.load_checkpoint``: initial weights from a LoRA or full-model file in either layout (no optimizer)."""
    from safetensors.torch import load_file

    from ltx_train_lib import export

    sd = load_file(str(path))
    layout = export.detect_layout(sd, family)
    if training_mode == "lora":
        from peft import set_peft_model_state_dict

        if layout == "comfy_lora":
            sd = export.comfy_lora_to_diffusers(sd, family)
        elif layout not in ("diffusers_lora", "peft_lora"):
            raise TrainingError(f"model.load_checkpoint: '{path}' is not a LoRA file (layout: {layout}); give a LoRA .safetensors")
        sd = {k.removeprefix(family.diffusers_prefix): v for k, v in sd.items()}
        result = set_peft_model_state_dict(transformer, sd)
        if result.unexpected_keys:
            raise TrainingError(
                f"model.load_checkpoint: '{path}' has {len(result.unexpected_keys)} keys this LoRA does not have "
                f"(e.g. {result.unexpected_keys[0]}); check lora.rank and lora.target_modules match the file"
            )
    else:
        if layout == "comfy_full":
            sd = export.full_comfy_to_diffusers(sd, family)
        sd = {k.removeprefix(family.diffusers_prefix).replace("_orig_mod.", ""): v for k, v in sd.items()}
        missing, unexpected = transformer.load_state_dict(sd, strict=False)
        if unexpected or missing:
            raise TrainingError(f"model.load_checkpoint: '{path}' does not match the transformer ({len(missing)} missing, {len(unexpected)} unexpected keys)")


def build_optimizer(opt: OptimizationConfig, params: list[torch.nn.Parameter]):
    """AdamW (or 8-bit AdamW) and a LambdaLR of the reference's schedules plus warmup, a pure function of the step."""
    if opt.optimizer_type == "adamw8bit":
        import bitsandbytes as bnb

        optimizer = bnb.optim.AdamW8bit(params, lr=opt.learning_rate, weight_decay=opt.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=opt.learning_rate, weight_decay=opt.weight_decay)
    lr_factor(opt.scheduler_type, opt.scheduler_params, 0, opt.steps, opt.learning_rate)  # validate params early
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(opt.scheduler_type, opt.scheduler_params, s, opt.steps, opt.learning_rate, opt.warmup_steps),
    )
    return optimizer, scheduler
