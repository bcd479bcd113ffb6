"""What exact resume needs, captured and restored: trainable weights, optimizer, schedule, scaler, data position,
every rank's RNG state, the step and the loss history (files: :mod:`ltx_train_lib.training.checkpoint`); and what
must still hold for a checkpoint to be resumed (same settings, processes and dataset; not past the wanted steps)."""

from __future__ import annotations

import hashlib
import random
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ltx_train_lib.config import TrainerConfig
from ltx_train_lib.errors import TrainingError

if TYPE_CHECKING:
    from ltx_train_lib.data import PrecomputedDataset


def config_fingerprint(cfg: TrainerConfig) -> str:
    """What must not change between a checkpoint and its resume (the math of training, not logging or steps)."""
    data = cfg.model_dump(mode="json")
    # memory: the budget and block swapping change where weights live, not the math (the settings a budget picks
    # that do change it, such as the optimizer, are in their own sections).
    # distributed: timeouts of a multi-process run, not its math.
    for key in ("validation", "checkpoints", "hub", "wandb", "tensorboard", "output_dir", "memory", "distributed"):
        data.pop(key, None)
    data["optimization"].pop("steps", None)
    data["optimization"].pop("optimizer_implementation", None)  # how AdamW runs, not what it computes
    data["data"].pop("num_dataloader_workers", None)
    data["data"].pop("trigger_word", None)  # metadata only
    if data["model"].get("audio_vae_path") is None:
        data["model"].pop("audio_vae_path", None)  # came later: unset, a checkpoint written before it still resumes
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


def training_state(step: int, scheduler, plan, rng_states: list[dict[str, Any]], scaler, losses: list[float],
                   schedule: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``state.pt`` payload of a checkpoint (every rank's RNG; the schedule's clock), without the optimizer,
    which :mod:`ltx_train_lib.training.checkpoint_io` stores (in state.pt, or sharded beside it under FSDP)."""
    return {
        "step": step,
        "scheduler": scheduler.state_dict(),
        "schedule": schedule,
        "plan": plan.state_dict(),
        "rng": rng_states,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "losses": losses,
    }


def _file_signature(path: Path) -> str:
    """What a file holds, without reading it: ``torch.save`` writes a zip whose central directory (at the end of the
    file) lists every record's size and CRC-32, so the signature follows the content (a copied dataset keeps it, a
    re-encoded sample changes it); any other file is known by its size and modification time."""
    try:
        with zipfile.ZipFile(path) as zf:
            records = sorted(f"{i.filename.split('/', 1)[-1]}:{i.CRC:08x}:{i.file_size}" for i in zf.infolist())
        if records:
            return ";".join(records)
    except (zipfile.BadZipFile, OSError, ValueError):
        pass
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def dataset_signature(dataset: PrecomputedDataset) -> dict[str, Any]:
    """The dataset a run trains on, as recorded in checkpoint meta: each sample's key (its path under ``latents/``)
    with a short digest of its latent shape and its files' signatures, plus one digest of them all."""
    from ltx_train_lib.data import LATENTS_DIR

    latents_root = dataset.root / LATENTS_DIR
    samples: dict[str, str] = {}
    for s in dataset.samples:
        rel = s.latents_path.relative_to(latents_root)
        parts = ["x".join(map(str, s.shape)), _file_signature(s.latents_path), _file_signature(s.conditions_path)]
        if dataset.reference_dir is not None:
            parts.append(_file_signature(dataset.reference_dir / rel))
        samples[rel.as_posix()] = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    digest = hashlib.sha256(repr(sorted(samples.items())).encode()).hexdigest()[:16]
    return {"digest": digest, "samples": samples}


def _dataset_changes(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """'2 sample(s) added, 1 removed, 0 changed (e.g. ...)' or None when the datasets are the same."""
    if saved.get("digest") == current["digest"]:
        return None
    old, new = saved.get("samples") or {}, current["samples"]
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    examples = [f"+{k}" for k in added[:2]] + [f"-{k}" for k in removed[:2]] + [f"~{k}" for k in changed[:2]]
    return (f"{len(added)} sample(s) added, {len(removed)} removed, {len(changed)} changed"
            + (f" (e.g. {', '.join(examples)})" if examples else ""))


def check_resumable(meta: dict[str, Any], where: str, fingerprint: str, world_size: int, *,
                    dataset: dict[str, Any] | None = None, data_root: str = "", steps: int | None = None) -> None:
    """Refuse, naming what changed, to resume ``where`` (a checkpoint's folder, ``meta`` its meta.json) with other
    settings, another process count, another dataset (``dataset``: :func:`dataset_signature` of the current one; a
    checkpoint written before signatures were recorded is not compared) or fewer ``steps`` than it already holds."""
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
    if dataset is not None and meta.get("dataset"):
        changes = _dataset_changes(meta["dataset"], dataset)
        if changes:
            raise TrainingError(
                f"'{where}' was trained on another version of the dataset in data.preprocessed_data_root "
                f"'{data_root}': {changes} since; its saved batch order no longer means the same samples. To train on "
                "the dataset as it is now, start over with a new output_dir or set checkpoints.resume: false (existing "
                "checkpoints are kept); to continue this run, restore the dataset it was trained on"
            )
    done = int(meta.get("step", 0))
    if steps is not None and done > steps:
        raise TrainingError(
            f"'{where}' is already at step {done}, past optimization.steps {steps}: a run cannot be trained back. "
            f"Set optimization.steps to {done} or more to finish this run (its weights at each kept checkpoint are in "
            f"'{Path(where).parent}'), or train a {steps}-step run with a new output_dir or checkpoints.resume: false "
            "(existing checkpoints are kept)"
        )


def restore_trainable(model: torch.nn.Module, trainable: dict[str, torch.Tensor], where: str) -> None:
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in trainable.items():
            if name not in named:
                raise TrainingError(f"checkpoint '{where}' has a weight '{name}' the model does not have")
            named[name].copy_(value.to(named[name].dtype))
