"""What a finished training output folder holds for the Hub: the final weights, their safetensors header and the
training config. Reading only; nothing here knows about cards or uploads."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ltx_train_lib.hub.errors import HubError

logger = logging.getLogger(__name__)

# (diffusers/peft keys, ComfyUI keys): export.py writes these pairs.
LORA_FILES = ("lora_weights.safetensors", "lora_weights_comfy.safetensors")
FULL_FILES = ("model_weights.safetensors", "model_weights_comfy.safetensors")
CONFIG_FILE = "training_config.yaml"

WeightsKind = Literal["lora", "full"]


def find_weight_files(output_dir: Path) -> tuple[WeightsKind, list[Path]]:
    """('lora' | 'full', files present); LoRA wins when both kinds are there (the usual case is one kind)."""
    kinds: tuple[tuple[WeightsKind, tuple[str, str]], ...] = (("lora", LORA_FILES), ("full", FULL_FILES))
    for kind, names in kinds:
        found = [output_dir / n for n in names if (output_dir / n).is_file()]
        if found:
            return kind, found
    present = sorted(p.name for p in output_dir.glob("*.safetensors"))
    raise HubError(
        f"{output_dir}: no final weights to upload (looked for {', '.join(LORA_FILES + FULL_FILES)}; "
        f"found {', '.join(present) if present else 'no .safetensors files'}); let training finish, "
        "or pass the folder that holds lora_weights.safetensors"
    )


def weights_metadata(path: Path) -> dict[str, str]:
    """The safetensors header metadata (rank, alpha, base model, trigger word, ...), or {} when it is unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # a damaged header only costs the card some details
        logger.warning("%s: cannot read the safetensors header (%s); the model card will lack its details", path, exc)
        return {}


def config_dict(output_dir: Path, config: Any) -> dict[str, Any]:
    """The run's config as plain JSON-like data: the one passed in (a TrainerConfig or dict) or the folder's copy."""
    if config is not None:
        if hasattr(config, "model_dump"):
            return config.model_dump(mode="json")
        if isinstance(config, Mapping):
            return dict(config)
        raise HubError(f"config: expected a TrainerConfig or a dict, got {type(config).__name__}")
    path = output_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        logger.warning("%s: unreadable (%s); the model card will lack training settings", path, exc)
        return {}
    return data if isinstance(data, dict) else {}
