"""How a run's weights and optimizer reach disk and come back, chosen once per run: :class:`PlainIO` (one process,
or DDP, where every rank holds the whole model) or :class:`ShardedIO` (FSDP2, where each rank holds a shard).

Both write the same checkpoint folder (``checkpoints/training_state_step_NNNNN/``, temp + rename, see
:mod:`ltx_train_lib.training.checkpoint`) with ``state.pt`` (scheduler, data position, every rank's RNG, losses)
and ``meta.json``; they differ in where the trainable weights and the optimizer state go:

- plain: ``trainable.safetensors`` and the optimizer inside ``state.pt``, written by rank 0 (the format since the
  first release);
- sharded: ``sharded/`` holds torch.distributed.checkpoint (DCP) files, one per rank plus ``.metadata``, written by
  every rank collectively; ``meta.json`` says ``checkpoint_format: "sharded"``.

Under FSDP every gather of weights (the weight files, the LoRA health scan, the final digests) is a collective call
that every rank makes in the same order; rank 0 alone writes. The consolidated full model comes from torch's
``get_model_state_dict(full_state_dict=True, cpu_offload=True)``: the full tensors land on rank 0's CPU only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ltx_train_lib.errors import ConfigError, TrainingError
from ltx_train_lib.fileio import atomic_dir
from ltx_train_lib.training import checkpoint as ckpt

if TYPE_CHECKING:
    from accelerate import Accelerator

    from ltx_train_lib.config import TrainerConfig

SHARDED_FORMAT = "sharded"
PLAIN_FORMAT = "plain"
SHARDED_DIR = "sharded"  # the DCP folder inside a sharded checkpoint


def make_accelerator(mixed_precision: str, cpu: bool, **kwargs: Any) -> Accelerator:
    """The run's Accelerator. ``accelerate launch --use_fsdp`` on a machine without a GPU would silently train
    unsharded: accelerate 1.15 turns FSDP on only for GPU-like process groups, never for gloo (MULTI_CPU). torch's
    FSDP2 (``fully_shard``) works over gloo, so there the FSDP plugin the launcher described is switched on here; the
    model is then sharded by accelerate's own ``prepare`` exactly as on GPUs (and the tests run that path).
    ``kwargs``: passed to Accelerator (e.g. ``kwargs_handlers``)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    acc = Accelerator(mixed_precision=mixed_precision, cpu=cpu, **kwargs)
    if acc.distributed_type == DistributedType.MULTI_CPU and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        plugin = FullyShardedDataParallelPlugin()  # from the launcher's FSDP_* environment
        if plugin.fsdp_version != 2:
            raise ConfigError("FSDP on the CPU (gloo) needs FSDP2: launch with --fsdp_version 2 (train_distributed.py "
                              "--fsdp does)")
        acc.state.distributed_type = DistributedType.FSDP
        acc.state.fsdp_plugin = plugin
    return acc


def checkpoint_io_for(acc: Accelerator, cfg: TrainerConfig) -> PlainIO | ShardedIO:
    """PlainIO, or ShardedIO when ``acc`` shards the model (FSDP); FSDP1 is refused (its state-dict modes are the
    ones that hung), and so is what a sharded model cannot do yet."""
    from accelerate.utils import DistributedType

    if acc.distributed_type != DistributedType.FSDP:
        return PlainIO(acc)
    if not acc.is_fsdp2:
        raise ConfigError("FSDP1 is not supported: launch with --fsdp_version 2 (train_distributed.py --fsdp and the "
                          "TrainLoRA node do)")
    if cfg.validation.prompts and cfg.validation.interval is not None:
        raise ConfigError("validation samples cannot be generated under FSDP yet (the sampler runs on rank 0 alone, "
                          "a sharded model needs every rank): set validation.interval: null, or train without --fsdp")
    if cfg.memory.blocks_to_swap:
        raise ConfigError("memory.blocks_to_swap cannot be combined with FSDP (both decide where the weights live): "
                          "set memory.blocks_to_swap: 0, or train without --fsdp")
    return ShardedIO(acc)


def _trainable_names(model: torch.nn.Module) -> list[str]:
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def _digest(tensors: Iterator[torch.Tensor]) -> str:
    """sha256 over the float32 bytes of ``tensors`` in order (what run_state.trainable_digest hashes)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class PlainIO:
    """Every rank holds the whole model (one process, DDP): rank 0 writes; nothing here is collective."""

    format = PLAIN_FORMAT

    def __init__(self, acc: Accelerator) -> None:
        self.acc = acc

    def check_format(self, meta: dict[str, Any], where: str) -> None:
        _check_format(meta, where, self.format)

    def weights(self, model: torch.nn.Module, *, lora: bool) -> dict[str, torch.Tensor] | None:
        """None: the weight writers read ``model`` itself (see :class:`ShardedIO` for the gathered case)."""
        return None

    def digest(self, model: torch.nn.Module) -> str:
        from ltx_train_lib.training import state as run_state

        return run_state.trainable_digest(model)

    def save(self, output_dir: Path, step: int, model: torch.nn.Module, optimizer, state: dict[str, Any],
             meta: dict[str, Any]) -> Path | None:
        if not self.acc.is_main_process:
            return None
        from ltx_train_lib.training import state as run_state

        return ckpt.save_state_checkpoint(output_dir, step, run_state.trainable_state(model),
                                          {**state, "optimizer": optimizer.state_dict()}, meta)

    def load(self, latest: ckpt.StateCheckpoint, model: torch.nn.Module, optimizer) -> dict[str, Any]:
        from ltx_train_lib.training import state as run_state

        trainable, state = ckpt.load_state_checkpoint(latest)
        run_state.restore_trainable(model, trainable, str(latest.path))
        optimizer.load_state_dict(state["optimizer"])
        return state


class ShardedIO:
    """FSDP2: each rank holds a shard of every parameter and of the optimizer state. Checkpoints are DCP folders
    written and read by every rank (its own shard; a different process count could reshard them, but the data
    order and noise streams are per process, so resume keeps the count: run_state.check_resumable)."""

    format = SHARDED_FORMAT

    def __init__(self, acc: Accelerator) -> None:
        self.acc = acc

    def check_format(self, meta: dict[str, Any], where: str) -> None:
        _check_format(meta, where, self.format)

    def weights(self, model: torch.nn.Module, *, lora: bool) -> dict[str, torch.Tensor]:
        """The full weights to write, gathered collectively (call on every rank). LoRA: the trainable tensors on
        every rank (small; the health scan runs on every rank). Full fine-tune: the whole model's state dict on rank
        0's CPU, one tensor at a time (``cpu_offload``), empty elsewhere."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        if lora:
            named = dict(model.named_parameters())
            return {n: _full(named[n]).detach().float().cpu() for n in _trainable_names(model)}
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def digest(self, model: torch.nn.Module) -> str:
        """The digest PlainIO would give of the full weights, each parameter gathered in turn (every rank)."""
        named = dict(model.named_parameters())
        return _digest(_full(named[n]).detach().float().cpu() for n in _trainable_names(model))

    def _state_dicts(self, model: torch.nn.Module, optimizer) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(model, _inner(optimizer))
        keep = set(_trainable_names(model))  # the frozen base comes back from the model source
        return {"model": {k: v for k, v in model_sd.items() if k in keep}, "optimizer": optim_sd}

    def save(self, output_dir: Path, step: int, model: torch.nn.Module, optimizer, state: dict[str, Any],
             meta: dict[str, Any]) -> Path | None:
        """Collective: rank 0 makes the temporary folder and tells the others; every rank writes its shard into it
        with DCP; rank 0 adds state.pt and meta.json and renames the folder into place. Returns the path on rank 0."""
        import torch.distributed.checkpoint as dcp
        from accelerate.utils import broadcast_object_list

        acc = self.acc
        target = ckpt.checkpoints_dir(output_dir) / f"training_state_step_{step:05d}"
        sds = self._state_dicts(model, optimizer)
        if not acc.is_main_process:
            where = broadcast_object_list([None])[0]
            dcp.save(sds, checkpoint_id=where)
            acc.wait_for_everyone()  # rank 0 renames after this
            return None
        with atomic_dir(target) as tmp:
            where = str(tmp / SHARDED_DIR)
            broadcast_object_list([where])
            dcp.save(sds, checkpoint_id=where)
            acc.wait_for_everyone()
            torch.save(state, tmp / "state.pt")
            (tmp / "meta.json").write_text(json.dumps({**meta, "step": step, "checkpoint_format": self.format}, indent=2))
        return target

    def load(self, latest: ckpt.StateCheckpoint, model: torch.nn.Module, optimizer) -> dict[str, Any]:
        """Collective: every rank reads its shard of the weights and optimizer state back into place."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        sds = self._state_dicts(model, optimizer)
        try:
            dcp.load(sds, checkpoint_id=str(latest.path / SHARDED_DIR))
            state = torch.load(latest.path / "state.pt", map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001
            raise TrainingError(
                f"checkpoint '{latest.path}' cannot be read ({type(exc).__name__}: {exc}); delete that folder to resume "
                "from an earlier checkpoint, or set checkpoints.resume: false"
            ) from exc
        set_state_dict(model, _inner(optimizer), model_state_dict=sds["model"], optim_state_dict=sds["optimizer"],
                       options=StateDictOptions(strict=False))  # strict=False: the frozen base is not in the file
        return state


def _check_format(meta: dict[str, Any], where: str, wanted: str) -> None:
    found = meta.get("checkpoint_format", PLAIN_FORMAT)
    if found != wanted:
        how = {SHARDED_FORMAT: "with FSDP (--fsdp)", PLAIN_FORMAT: "without FSDP"}
        raise TrainingError(
            f"'{where}' was written {how.get(found, found)} but this run is launched {how.get(wanted, wanted)}; "
            "resume it the way it was launched, or start over with a new output_dir or checkpoints.resume: false "
            "(existing checkpoints are kept)"
        )


def _full(p: torch.Tensor) -> torch.Tensor:
    """A parameter's full value: a DTensor (an FSDP2 shard) is gathered (collective), a plain tensor is itself."""
    full_tensor = getattr(p, "full_tensor", None)
    return full_tensor() if full_tensor is not None else p


def _inner(optimizer):
    """torch's state-dict helpers want the torch optimizer, not accelerate's wrapper around it."""
    return getattr(optimizer, "optimizer", optimizer)
