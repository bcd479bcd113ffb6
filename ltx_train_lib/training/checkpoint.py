"""Full-state checkpoints: weights, optimizer, scheduler, step, RNG states of every rank and the data position.

Layout under ``<output_dir>/checkpoints/``:

- ``lora_weights_step_00010.safetensors`` / ``model_weights_step_00010.safetensors``: the weights at that step in
  the reference's naming (diffusers keys), usable as ``model.load_checkpoint``.
- ``training_state_step_00010/``: what resume needs (``trainable.safetensors``, ``state.pt``, ``meta.json``; under
  FSDP a ``sharded/`` folder of per-rank DCP files instead of ``trainable.safetensors``, see
  :mod:`ltx_train_lib.training.checkpoint_io`).
  It is written into a temporary folder and renamed, so a run killed at any moment never leaves a state folder
  that resume would pick up half-written.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import TrainingError
from ltx_train_lib.fileio import atomic_dir

STATE_RE = re.compile(r"^training_state_step_(\d+)$")
WEIGHTS_RE = re.compile(r"^(lora|model)_weights_step_(\d+)(_comfy)?\.safetensors$")


@dataclass
class StateCheckpoint:
    step: int
    path: Path

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / "meta.json").read_text())


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_state_checkpoints(output_dir: str | Path) -> list[StateCheckpoint]:
    folder = checkpoints_dir(output_dir)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = STATE_RE.match(p.name)
        if m and p.is_dir() and (p / "meta.json").is_file() and (p / "state.pt").is_file():
            found.append(StateCheckpoint(int(m.group(1)), p))
    return sorted(found, key=lambda c: c.step)


def latest_state_checkpoint(output_dir: str | Path) -> StateCheckpoint | None:
    found = list_state_checkpoints(output_dir)
    return found[-1] if found else None


def save_state_checkpoint(
    output_dir: str | Path,
    step: int,
    trainable: dict[str, Any],
    state: dict[str, Any],
    meta: dict[str, Any],
) -> Path:
    import torch
    from safetensors.torch import save_file

    target = checkpoints_dir(output_dir) / f"training_state_step_{step:05d}"
    with atomic_dir(target) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in trainable.items()}, str(tmp / "trainable.safetensors"))
        torch.save(state, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=2))
    return target


def load_state_checkpoint(ckpt: StateCheckpoint) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch
    from safetensors.torch import load_file

    try:
        trainable = load_file(str(ckpt.path / "trainable.safetensors"))
        state = torch.load(ckpt.path / "state.pt", map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise TrainingError(
            f"checkpoint '{ckpt.path}' cannot be read ({type(exc).__name__}: {exc}); delete that folder to resume from an "
            "earlier checkpoint, or set checkpoints.resume: false"
        ) from exc
    return trainable, state


def prune_checkpoints(output_dir: str | Path, keep_last_n: int) -> list[Path]:
    """Keep the newest ``keep_last_n`` checkpoints (state folders and weight files); -1 keeps all."""
    if keep_last_n < 0:
        return []
    folder = checkpoints_dir(output_dir)
    removed: list[Path] = []
    states = list_state_checkpoints(output_dir)
    keep_steps = {c.step for c in states[-keep_last_n:]} if keep_last_n else set()
    for c in states:
        if c.step not in keep_steps:
            shutil.rmtree(c.path, ignore_errors=True)
            removed.append(c.path)
    weights = []
    for p in folder.iterdir() if folder.is_dir() else []:
        m = WEIGHTS_RE.match(p.name)
        if m:
            weights.append((int(m.group(2)), p))
    weight_steps = sorted({s for s, _ in weights})
    keep_w = set(weight_steps[-keep_last_n:]) if keep_last_n else set()
    for s, p in weights:
        if s not in keep_w:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


@dataclass(frozen=True)
class LoraCheckpoint:
    """The LoRA weights a checkpoint saved: one step, in one or both key layouts."""

    step: int
    comfy: Path | None  # ``lora_weights_step_NNNNN_comfy.safetensors`` (ComfyUI keys)
    diffusers: Path | None  # ``lora_weights_step_NNNNN.safetensors`` (diffusers keys)


def list_lora_checkpoints(output_dir: str | Path) -> list[LoraCheckpoint]:
    """The LoRA weight files under ``<output_dir>/checkpoints/``, one entry per step, in step order. Files being
    written (``.x.tmp``) and full-model weights are not listed; ``keep_last_n`` decides how many are left."""
    folder = checkpoints_dir(output_dir)
    found: dict[int, dict[str, Path]] = {}
    for p in folder.iterdir() if folder.is_dir() else []:
        m = WEIGHTS_RE.match(p.name)
        if m and m.group(1) == "lora" and p.is_file():
            found.setdefault(int(m.group(2)), {})["comfy" if m.group(3) else "diffusers"] = p
    return [LoraCheckpoint(step, files.get("comfy"), files.get("diffusers")) for step, files in sorted(found.items())]


def find_weights_file(path: str | Path) -> Path:
    """``model.load_checkpoint``: a file, or a folder whose highest-step weights file is used (never a _comfy file)."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        candidates = []
        for p in path.rglob("*.safetensors"):
            if "comfy" in p.name:
                continue  # the reference's directory resume wrongly picked ComfyUI-keyed copies
            m = re.search(r"step_(\d+)", p.name)
            if m:
                candidates.append((int(m.group(1)), p))
        if not candidates:
            raise TrainingError(f"model.load_checkpoint: no '*_step_N.safetensors' weights found in folder '{path}'; give a file path")
        return max(candidates)[1]
    raise TrainingError(f"model.load_checkpoint: '{path}' does not exist; give an existing .safetensors file or checkpoint folder")


def remove_interrupted_writes(output_dir: str | Path) -> list[Path]:
    """Delete the temporary files and folders (``.<name>.<random>.tmp``, see fileio.atomic_path/atomic_dir) that a run
    killed mid-write left in ``output_dir`` and its checkpoints folder. Call only while holding the folder's lock."""
    removed: list[Path] = []
    for folder in (Path(output_dir), checkpoints_dir(output_dir), Path(output_dir) / "validation_samples"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if not (entry.name.startswith(".") and ".tmp" in entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
