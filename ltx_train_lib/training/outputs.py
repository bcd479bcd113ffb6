"""The weights a run writes: the LoRA pair (diffusers + ComfyUI keys) or the full model, with header metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ltx_train_lib.config import TrainerConfig
    from ltx_train_lib.lora_health import LoraHealth
    from ltx_train_lib.models.family import ModelComponents, ModelFamily

# Header keys: the frame rate the weights were trained at (sample at it: ComfyUI's LTXVConditioning frame_rate), and
# when the dataset had several, how many video clips were at each (JSON {"24": 10, "30": 2}, most common first).
FRAME_RATE_KEY = "frame_rate"
FRAME_RATES_KEY = "frame_rates"


def _fps_text(fps: float) -> str:
    return f"{round(fps, 3):g}"


def frame_rate_metadata(frame_rates: Mapping[float, int] | None) -> dict[str, str]:
    """``frame_rate``: the dataset's fps, the most common one (ties: the lower) when it has several, which
    ``frame_rates`` then lists; nothing when no sample has a time axis (images only)."""
    counts = {float(k): int(v) for k, v in (frame_rates or {}).items() if int(v) > 0}
    if not counts:
        return {}
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    meta = {FRAME_RATE_KEY: _fps_text(ordered[0][0])}
    if len(ordered) > 1:
        meta[FRAME_RATES_KEY] = json.dumps({_fps_text(fps): n for fps, n in ordered})
    return meta


def weights_metadata(cfg: TrainerConfig, model_label: str, step: int, family: ModelFamily,
                     frame_rates: Mapping[float, int] | None = None) -> dict[str, str]:
    """What the safetensors header says about the weights (read by the model card, the nodes and ComfyUI users).
    ``frame_rates``: video clips per fps in the training data (``PrecomputedDataset.fps_counts``)."""
    meta = {
        "base_model": model_label,
        "model_family": family.name,
        "training_mode": cfg.model.training_mode,
        "training_steps": str(step),
        "learning_rate": str(cfg.optimization.learning_rate),
        "trainer": "ltx_train_lib",
    }
    if cfg.lora:
        targets = cfg.lora.target_modules or family.lora_targets_for(cfg.model.modalities)
        meta.update(rank=str(cfg.lora.rank), alpha=str(cfg.lora.alpha), target_modules=",".join(targets))
    if len(family.modalities) > 1 and cfg.model.modalities != "auto":  # what an audio-video model learnt
        meta["modalities"] = cfg.model.modalities
    meta.update(family.weights_metadata())
    if cfg.data.trigger_word:
        meta["trigger_word"] = cfg.data.trigger_word
    meta.update(frame_rate_metadata(frame_rates))
    return meta


def lora_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The adapter's weights as saved: peft keys, float32 on the CPU. ``state_dict``: the model's weights gathered
    elsewhere (under FSDP the model holds only this rank's shard), else read from ``model``."""
    from peft import get_peft_model_state_dict

    sd = get_peft_model_state_dict(model, state_dict=dict(state_dict) if state_dict is not None else None)
    return {k: v.detach().float().cpu().contiguous() for k, v in sd.items()}


def lora_health(cfg: TrainerConfig, model: torch.nn.Module, step: int, *, final: bool,
                state_dict: Mapping[str, torch.Tensor] | None = None) -> LoraHealth | None:
    """The health scan of the adapter as it would be saved at ``step`` (None for a full fine-tune). ``final``: the
    run's last weights, which must change the model (see :mod:`ltx_train_lib.lora_health`); ``state_dict``: the
    weights gathered elsewhere (FSDP), as for :func:`lora_state_dict`."""
    if cfg.model.training_mode != "lora":
        return None
    from peft import get_peft_model_state_dict

    from ltx_train_lib.lora_health import scan_state_dict

    # Scanned where the weights are (no copy to the CPU): the same values save_weights writes, before the cast to
    # float32, which keeps NaN/Inf and zeros as they are.
    sd = get_peft_model_state_dict(model, state_dict=dict(state_dict) if state_dict is not None else None)
    return scan_state_dict({k: v.detach() for k, v in sd.items()}, step=step, require_update=final)


def save_weights(
    cfg: TrainerConfig, family: ModelFamily, model: torch.nn.Module, folder: Path, *, model_label: str,
    suffix: str = "", step: int = 0, components: ModelComponents | None = None,
    frame_rates: Mapping[float, int] | None = None, health: LoraHealth | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, str]:
    """Write the weights of ``model`` into ``folder``; returns {"lora", "lora_comfy"} or {"model"} -> path.
    ``components``: the loaded base (a full model's header states its position rules); ``frame_rates``: see
    :func:`weights_metadata`; ``health``: the LoRA's scan when the caller made it (else it is made here), written
    into both headers; ``state_dict``: the weights to write when ``model`` holds only a shard of them (FSDP: the
    consolidated full state dict), else ``model``'s own."""
    from ltx_train_lib import export

    meta = weights_metadata(cfg, model_label, step, family, frame_rates)
    if cfg.model.training_mode == "lora":
        from ltx_train_lib.lora_health import HEALTH_KEY, scan_state_dict

        assert cfg.lora is not None
        sd = lora_state_dict(model, state_dict)
        meta[HEALTH_KEY] = (health or scan_state_dict(sd, step=step)).to_metadata()
        d, c = export.save_lora_pair(
            sd,
            folder,
            rank=cfg.lora.rank,
            alpha=cfg.lora.alpha,
            metadata=meta,
            diffusers_name=f"lora_weights{suffix}.safetensors",
            comfy_name=f"lora_weights{suffix}_comfy.safetensors",
            family=family,
        )
        return {"lora": str(d), "lora_comfy": str(c)}
    weights = model.state_dict() if state_dict is None else state_dict
    sd = {k.replace("_orig_mod.", ""): v.detach().cpu().contiguous() for k, v in weights.items()}
    path = folder / f"model_weights{suffix}.safetensors"
    meta.update(family.full_model_metadata(model, components))
    export.save_full_model(sd, path, meta)
    return {"model": str(path)}


def save_size_estimate(cfg: TrainerConfig, params: list[torch.nn.Parameter]) -> int:
    """Bytes one checkpoint save writes, roughly: the state checkpoint (the trainable weights and AdamW's two moments,
    ~3x their size) plus the weight files written beside it (the LoRA pair, or the full model)."""
    weights = sum(p.numel() * (4 if cfg.model.training_mode == "lora" else p.element_size()) for p in params)
    files = 2 if cfg.model.training_mode == "lora" else 1
    return 3 * weights + files * weights
