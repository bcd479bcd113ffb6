"""Turning a loaded transformer into the trainable model: frozen base (optionally quantized), LoRA adapter or full
fine-tune, initial weights, gradient checkpointing, per-block compile, block swapping, and the optimizer with its
schedule."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ltx_train_lib.errors import ConfigError, TrainingError
from ltx_train_lib.training import checkpoint as ckpt
from ltx_train_lib.training.quantization import quantize_frozen_base
from ltx_train_lib.training.schedule import lr_factor

if TYPE_CHECKING:
    from ltx_train_lib.config import OptimizationConfig, TrainerConfig
    from ltx_train_lib.models.family import ModelFamily

log = logging.getLogger("ltx_train_lib.trainer")

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
        # The trainer resolves a null target list for the run's modalities; callers without one get the family's.
        targets = list(cfg.lora.target_modules or family.lora_targets_for(cfg.model.modalities))
        lora_config = LoraConfig(
            r=cfg.lora.rank,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=targets,
            init_lora_weights=True,
        )
        # Before the adapter exists: an absurd rank would allocate rank x (in + out) weights per module first.
        check_lora_rank(cfg.lora.rank, targets, matched_linears(transformer, lora_config))
        with warnings.catch_warnings():
            # peft's torchao LoRA layers warn that they cannot merge into a quantized base; the LoRA is never merged
            # here (it is exported on its own), so the warning would only alarm.
            warnings.filterwarnings("ignore", message=".*TorchaoLoraLinear was instantiated without.*")
            transformer.add_adapter(lora_config)
        params = [p for n, p in transformer.named_parameters() if "lora_" in n]
        for p in params:
            p.requires_grad_(True)
            p.data = p.data.float()  # adapter weights train in fp32 even over a bf16 base
    else:
        transformer.requires_grad_(True)
        params = list(transformer.parameters())
    if cfg.model.load_checkpoint:
        load_weights_only(transformer, ckpt.find_weights_file(cfg.model.load_checkpoint), cfg.model.training_mode, family)
    if cfg.optimization.enable_gradient_checkpointing:
        # On the unwrapped model, before DDP wraps it (the reference crashed calling it on the DDP wrapper).
        transformer.enable_gradient_checkpointing()
    if cfg.acceleration.compile_with_inductor:
        # On the CPU too (inductor's C++ backend): the tiny model's step ran 1.4x faster compiled (bench/README.md).
        # One graph per bucket shape, hence the larger cache; the first step of each shape pays the compile.
        torch._dynamo.config.cache_size_limit = 128
        compile_blocks(family, transformer, mode=cfg.acceleration.compilation_mode)
    if cfg.memory.blocks_to_swap:
        # Last: the hooks go on the blocks as they will run; the object lives as long as the transformer.
        from ltx_train_lib.training.block_swap import install_block_swap

        transformer._ltx_block_swap = install_block_swap(
            family.blocks(transformer), cfg.memory.blocks_to_swap, device,
            checkpointing=cfg.optimization.enable_gradient_checkpointing,
        )
    transformer.train()
    return transformer, params


def matched_linears(transformer: torch.nn.Module, lora_config) -> dict[str, tuple[int, int]]:
    """The modules peft will adapt for ``lora_config`` (its own matching rule), as name -> (in_features, out_features)."""
    from peft.tuners.tuners_utils import check_target_module_exists

    found = {}
    for name, module in transformer.named_modules():
        in_f, out_f = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if not (isinstance(in_f, int) and isinstance(out_f, int)):
            continue
        hit = check_target_module_exists(lora_config, name)
        if hit and type(hit).__name__ != "_ExcludedModule":
            found[name] = (in_f, out_f)
    return found


def check_lora_rank(rank: int, targets: list[str], matched: dict[str, tuple[int, int]]) -> None:
    """``lora.rank`` may not exceed min(in_features, out_features) of any adapted module: beyond that a LoRA is no
    longer low-rank, only bigger (a rank of 100000 once wrote 4.6 GB in 6 steps)."""
    if not matched:
        raise ConfigError(
            f"lora.target_modules {list(targets)} matched no Linear module of the transformer; use names such as "
            "to_q, to_k, to_v, to_out.0, ff.net.0.proj, ff.net.2"
        )
    name, (in_f, out_f) = min(matched.items(), key=lambda item: min(item[1]))
    limit = min(in_f, out_f)
    if rank > limit:
        raise ConfigError(
            f"lora.rank {rank} is larger than the limit of {limit} for these lora.target_modules: module '{name}' is "
            f"{in_f} -> {out_f} features, and a LoRA's rank cannot exceed the smaller of the two; set lora.rank to "
            f"{limit} or less (typical: 16-128), or remove that module from lora.target_modules"
        )


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
        _check_lora_file_fits(transformer, sd, path)
        result = set_peft_model_state_dict(transformer, sd)
        if result.unexpected_keys:
            raise TrainingError(
                f"model.load_checkpoint: '{path}' has {len(result.unexpected_keys)} keys this LoRA does not have "
                f"(e.g. {result.unexpected_keys[0]}); {_file_lora_settings(path, sd)}"
            )
        # The result lists every weight the file did not set, the frozen base included; only LoRA weights count.
        missing = [k.replace(".default.", ".") for k in result.missing_keys if "lora_" in k]
        if missing:
            shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            raise TrainingError(
                f"model.load_checkpoint: '{path}' has no weights for {len(missing)} of this run's "
                f"{_count_lora_weights(transformer)} LoRA weights ({shown}), so they would start from scratch; "
                f"{_file_lora_settings(path, sd)}"
            )
    else:
        if layout == "comfy_full":
            sd = export.full_comfy_to_diffusers(sd, family)
        sd = {k.removeprefix(family.diffusers_prefix).replace("_orig_mod.", ""): v for k, v in sd.items()}
        missing, unexpected = transformer.load_state_dict(sd, strict=False)
        if unexpected or missing:
            raise TrainingError(f"model.load_checkpoint: '{path}' does not match the transformer ({len(missing)} missing, {len(unexpected)} unexpected keys)")


def _count_lora_weights(transformer: torch.nn.Module) -> int:
    return sum(1 for n, _ in transformer.named_parameters() if "lora_" in n)


def _file_lora_settings(path: Path, sd: dict[str, torch.Tensor]) -> str:
    """'use the file's settings' in words: its rank and target modules (from its metadata, else from its keys)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata() or {}
    ranks = sorted({int(v.shape[0]) for k, v in sd.items() if ".lora_A." in k and v.ndim == 2})
    rank = meta.get("rank") or (str(ranks[0]) if len(ranks) == 1 else None)
    targets = meta.get("target_modules")
    if not targets:
        names = set()
        for k in sd:
            if ".lora_A." in k:
                parts = k.split(".lora_A.")[0].split(".")
                names.add(".".join(parts[-2:]) if parts[-1].isdigit() else parts[-1])
        targets = ",".join(sorted(names))
    settings = []
    if rank:
        settings.append(f"lora.rank {rank}")
    if targets:
        settings.append("lora.target_modules [" + ", ".join(t for t in targets.split(",") if t) + "]")
    if not settings:
        return "set lora.rank and lora.target_modules to those the file was trained with"
    return "the file was trained with " + " and ".join(settings) + ": set the same, or drop model.load_checkpoint"


def _check_lora_file_fits(transformer: torch.nn.Module, sd: dict[str, torch.Tensor], path: Path) -> None:
    """Same-named LoRA weights of another rank would fail deep inside torch's load_state_dict: name the rank."""
    own = {n.replace(".default.", "."): p for n, p in transformer.named_parameters() if "lora_" in n}
    for key, value in sd.items():
        mine = own.get(key)
        if mine is not None and tuple(mine.shape) != tuple(value.shape):
            raise TrainingError(
                f"model.load_checkpoint: '{path}' does not fit this LoRA: {key} is {tuple(value.shape)} in the file "
                f"but {tuple(mine.shape)} here (another lora.rank); {_file_lora_settings(path, sd)}"
            )


def check_optimizer(optimizer_type: str, *, cuda: bool) -> None:
    """Refuse, before anything loads, an optimizer this machine cannot run: 8-bit AdamW is bitsandbytes' CUDA kernel."""
    if optimizer_type != "adamw8bit":
        return
    if not cuda:
        raise ConfigError("optimization.optimizer_type 'adamw8bit' needs a CUDA GPU (bitsandbytes' 8-bit AdamW runs "
                          "only there), and this machine has none; set optimization.optimizer_type to 'adamw'")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("optimization.optimizer_type 'adamw8bit' needs the bitsandbytes package, which is not "
                          "installed; pip install bitsandbytes, or set optimization.optimizer_type to 'adamw'") from None


def adamw_implementation(requested: str, params: list[torch.nn.Parameter]) -> str:
    """``optimization.optimizer_implementation`` made concrete for these parameters: 'auto' is 'fused' where torch has a
    fused AdamW kernel for every parameter's device and dtype (CUDA, and CPU since torch 2.4), else 'foreach' (torch's
    own CPU default is the per-parameter loop, 14 ms of a 115 ms tiny-model step); an explicit 'fused' that torch
    cannot run is refused naming the parameters' device and dtype."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    devices = set(_get_fused_kernels_supported_devices())
    fusable = all(p.device.type in devices and p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in params)
    if requested == "auto":
        return "fused" if fusable else "foreach"
    if requested == "fused" and not fusable:
        kinds = sorted({f"{p.device.type}/{p.dtype}".replace("torch.", "") for p in params})
        raise ConfigError(f"optimization.optimizer_implementation 'fused': torch has no fused AdamW for parameters on "
                          f"{', '.join(kinds)}; use 'auto' or 'foreach'")
    return requested


def build_optimizer(opt: OptimizationConfig, params: list[torch.nn.Parameter]):
    """AdamW (or 8-bit AdamW) and a LambdaLR of the reference's schedules plus warmup, a pure function of the step."""
    if opt.optimizer_type == "adamw8bit":
        import bitsandbytes as bnb

        optimizer = bnb.optim.AdamW8bit(params, lr=opt.learning_rate, weight_decay=opt.weight_decay)
    else:
        impl = adamw_implementation(opt.optimizer_implementation, params)
        optimizer = torch.optim.AdamW(params, lr=opt.learning_rate, weight_decay=opt.weight_decay,
                                      fused=impl == "fused", foreach=impl == "foreach")
    lr_factor(opt.scheduler_type, opt.scheduler_params, 0, opt.steps, opt.learning_rate)  # validate params early
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(opt.scheduler_type, opt.scheduler_params, s, opt.steps, opt.learning_rate, opt.warmup_steps),
    )
    return optimizer, scheduler
