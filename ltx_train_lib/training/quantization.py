"""Weight quantization of the frozen base (``acceleration.quantization``, LoRA only): which library each mode
needs, whether this machine can run it, and the quantizing itself.

Two backends:

- torchao (``int8-torchao``, ``fp8-torchao``): PyTorch's own quantization library, maintained with torch. Weight-only
  int8 (one int8 value per weight, a float32 scale and an int8 zero point per output row) runs on every device;
  weight-only float8 (e4m3, a float32 scale per row) is offered only on GPUs with float8 support (CUDA compute
  capability 8.9 or newer: Ada, Hopper, Blackwell). peft wraps torchao's quantized Linear layers in its
  ``TorchaoLoraLinear``, so the LoRA trains on top in full precision.
- optimum-quanto (``*-quanto``): what the reference trainer used; kept so existing configs keep working, but its last
  release is from March 2025, so new configs should use the torchao modes.

Both quantize the family's Linear layers except its ``quantization_exclusions`` (fnmatch patterns on module names,
the rule optimum-quanto applies), so the memory plan counts the same layers for either backend.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import logging

import torch

from ltx_train_lib.errors import ConfigError

log = logging.getLogger("ltx_train_lib.trainer")

# acceleration.quantization -> optimum-quanto's weight type
QUANTO_TYPES = {"int8-quanto": "qint8", "int4-quanto": "qint4", "int2-quanto": "qint2", "fp8-quanto": "qfloat8",
                "fp8uz-quanto": "qfloat8_e4m3fnuz"}
TORCHAO_MODES = ("int8-torchao", "fp8-torchao")
FLOAT8_MIN_CAPABILITY = (8, 9)  # CUDA compute capability with float8 (e4m3) support: Ada Lovelace and newer


def backend_of(mode: str) -> str:
    """'torchao' or 'quanto' for a quantization mode of the config."""
    if mode in TORCHAO_MODES:
        return "torchao"
    if mode in QUANTO_TYPES:
        return "quanto"
    raise ValueError(f"unknown quantization mode {mode!r}")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_quantization(mode: str | None, cuda_capability: tuple[int, int] | None) -> None:
    """Refuse, before anything loads, a mode whose library is missing or that this device cannot run.

    ``cuda_capability`` is the training GPU's compute capability, None on a machine without CUDA.
    """
    if mode in (None, "no_change"):
        return
    field = f"acceleration.quantization '{mode}'"
    if backend_of(mode) == "torchao":
        if not _installed("torchao"):
            raise ConfigError(f"{field} needs the torchao package, which is not installed; pip install torchao, or set "
                              "acceleration.quantization to null")
        if mode == "fp8-torchao" and (cuda_capability is None or tuple(cuda_capability) < FLOAT8_MIN_CAPABILITY):
            where = ("this machine has no CUDA GPU" if cuda_capability is None else
                     f"this GPU has compute capability {cuda_capability[0]}.{cuda_capability[1]}")
            raise ConfigError(f"{field} needs a GPU with float8 support (CUDA compute capability 8.9 or newer: Ada, "
                              f"Hopper, Blackwell), but {where}; use 'int8-torchao' instead")
    elif not _installed("optimum.quanto"):
        raise ConfigError(f"{field} needs optimum-quanto, which is not installed; pip install optimum-quanto, or use "
                          f"'int8-torchao' (pip install torchao)")


def training_cuda_capability() -> tuple[int, int] | None:
    """Compute capability of the GPU this process trains on (the current CUDA device), None without CUDA."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability(torch.cuda.current_device())


def is_quantized_module(name: str, module: torch.nn.Module, exclusions: tuple[str, ...]) -> bool:
    """Whether ``module`` (named ``name`` in the transformer) gets quantized: a Linear outside the exclusions."""
    return isinstance(module, torch.nn.Linear) and not any(fnmatch.fnmatch(name, p) for p in exclusions)


def quantize_frozen_base(transformer: torch.nn.Module, mode: str, exclusions: tuple[str, ...]) -> None:
    """Quantize the frozen base weights in place, keeping the family's sensitive layers in full precision."""
    if backend_of(mode) == "torchao":
        _quantize_torchao(transformer, mode, exclusions)
    else:
        from optimum import quanto

        quanto.quantize(transformer, weights=getattr(quanto, QUANTO_TYPES[mode]), exclude=list(exclusions))
        quanto.freeze(transformer)


def _quantize_torchao(transformer: torch.nn.Module, mode: str, exclusions: tuple[str, ...]) -> None:
    from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig, quantize_

    config = Int8WeightOnlyConfig() if mode == "int8-torchao" else Float8WeightOnlyConfig()
    quantize_(transformer, config, filter_fn=lambda module, fqn: is_quantized_module(fqn, module, exclusions))
    log.info("acceleration.quantization %s: Linear layers quantized with torchao %s", mode, _version("torchao"))


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"
