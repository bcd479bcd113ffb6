"""What exact resume needs, captured and restored: trainable weights, optimizer, schedule, scaler, data position,
every rank's RNG state, the step and the loss history (files: :mod:`ltx_train_lib.training.checkpoint`)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch

from ltx_train_lib.config import TrainerConfig
from ltx_train_lib.errors import TrainingError


def config_fingerprint(cfg: TrainerConfig) -> str:
    """What must not change between a checkpoint and its resume (the math of training, not logging or steps)."""
    data = cfg.model_dump(mode="json")
    for key in ("validation", "checkpoints", "hub", "wandb", "tensorboard", "output_dir"):
        data.pop(key, None)
    data["optimization"].pop("steps", None)
    data["data"].pop("num_dataloader_workers", None)
    data["data"].pop("trigger_word", None)  # metadata only
    return hashlib.sha256(repr(sorted(_flatten(data).items())).encode()).hexdigest()[:16]


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def trainable_digest(model: torch.nn.Module) -> str:
    """sha256 of the trainable weights (ranks compare theirs at the end of a distributed run)."""
    return hashlib.sha256(b"".join(v.numpy().tobytes() for _, v in sorted(trainable_state(model).items()))).hexdigest()


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(generator: torch.Generator, state: dict[str, Any]) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(step: int, optimizer, scheduler, plan, rng_states: list[dict[str, Any]], scaler, losses: list[float]) -> dict[str, Any]:
    """The ``state.pt`` payload of a checkpoint (rank 0's optimizer; every rank's RNG)."""
    return {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "plan": plan.state_dict(),
        "rng": rng_states,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "losses": losses,
    }


def check_resumable(meta: dict[str, Any], where: str, fingerprint: str, world_size: int) -> None:
    if meta.get("fingerprint") != fingerprint:
        raise TrainingError(
            f"'{where}' was made with different training settings than this config; to start over use a new "
            "output_dir or set checkpoints.resume: false (existing checkpoints are kept)"
        )
    if int(meta.get("world_size", 1)) != world_size:
        raise TrainingError(
            f"'{where}' was made with {meta.get('world_size')} process(es) but this run has {world_size}; "
            "resume with the same --num_processes (the data order and noise streams are per process)"
        )


def restore_trainable(model: torch.nn.Module, trainable: dict[str, torch.Tensor], where: str) -> None:
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in trainable.items():
            if name not in named:
                raise TrainingError(f"checkpoint '{where}' has a weight '{name}' the model does not have")
            named[name].copy_(value.to(named[name].dtype))
