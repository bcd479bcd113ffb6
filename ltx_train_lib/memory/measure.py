"""Measuring what a training step really keeps, on any device (CPU in tests), to check and calibrate the plan.

- :func:`saved_tensor_bytes`: the bytes autograd keeps for backward, counted exactly with torch's saved-tensor hooks
  (``torch.autograd.graph.saved_tensors_hooks``): every tensor an op saves passes the pack hook, and its storage is
  counted once however many ops save it or views of it (a view keeps its whole storage alive). Parameters are left
  out (they are the weights, counted on their own). Each storage is attributed to the block whose forward saved it;
  one saved by several blocks (rotary tables, the text states) or outside the blocks is ``shared``/``outside``.
  With gradient checkpointing the blocks' own saves go to the checkpoint's hooks instead (they are recomputed in
  backward); what a checkpointed block keeps is its inputs, which :func:`saved_tensor_bytes` records separately.
- :func:`state_bytes`: the bytes of parameters, gradients and optimizer state after an optimizer step.
- :class:`LiveTensors`: the peak of the bytes of live tensors created while it is active (a dispatch mode that
  follows every op's outputs until they are freed). It also runs on the ``meta`` device, where nothing is allocated:
  the memory plan uses it for inference phases (the VAE decode) at any resolution.

These are measuring tools: nothing in training imports them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

_OUTSIDE = -1


def _storage_key(t: torch.Tensor) -> int:
    """One key per allocation: the StorageImpl's address (works on meta tensors too, whose data pointers are 0)."""
    return t.untyped_storage()._cdata


@dataclass
class SavedBytes:
    """Bytes autograd keeps after one forward, split by where they were saved."""

    per_block: list[int]
    shared: int = 0  # saved by more than one block, or by a block and outside (rotary tables, text states, temb)
    outside: int = 0  # saved only outside the blocks (input/output projections, timestep embedding, the loss)
    checkpoint_inputs: int = 0  # with gradient checkpointing: the blocks' inputs the checkpoints keep (not in shared)
    details: dict[int, tuple[tuple[int, ...], str, int]] = field(default_factory=dict, repr=False)

    @property
    def total(self) -> int:
        return sum(self.per_block) + self.shared + self.outside + self.checkpoint_inputs


def saved_tensor_bytes(
    blocks: Iterable[torch.nn.Module], run: Callable[[], Any], *, exclude: Iterable[torch.Tensor] = (), checkpointing: bool = False
) -> tuple[SavedBytes, Any]:
    """Run ``run()`` (a forward, with its loss) and count what autograd saved for backward; returns the counts and
    ``run``'s result (keep it alive: the saved tensors die with the graph). ``exclude``: tensors not to count (the
    model's parameters and buffers). ``checkpointing``: the blocks run under gradient checkpointing, so their inputs
    are kept by the checkpoints (counted in ``checkpoint_inputs``)."""
    blocks = list(blocks)
    excluded = {_storage_key(t) for t in exclude}
    where: dict[int, set[int]] = {}
    size: dict[int, int] = {}
    inputs: dict[int, int] = {}
    current = [_OUTSIDE]
    handles = []

    def enter(index: int):
        def hook(module, args, kwargs):
            current[0] = index
            if checkpointing and torch.is_grad_enabled() and torch._C._current_graph_task_id() == -1:
                # What checkpointing keeps are the block's inputs (recorded on the first call, not the recompute).
                for t in tree_flatten((args, kwargs))[0]:
                    if isinstance(t, torch.Tensor) and _storage_key(t) not in excluded:
                        inputs[_storage_key(t)] = t.untyped_storage().nbytes()

        return hook

    def leave(module, args, output):
        current[0] = _OUTSIDE

    for i, block in enumerate(blocks):
        handles.append(block.register_forward_pre_hook(enter(i), with_kwargs=True))
        handles.append(block.register_forward_hook(leave))

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in excluded:
            where.setdefault(key, set()).add(current[0])
            size[key] = t.untyped_storage().nbytes()
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            result = run()
    finally:
        for h in handles:
            h.remove()
    out = SavedBytes(per_block=[0] * len(blocks))
    for key, places in where.items():
        if len(places) > 1:
            out.shared += size[key]
        elif _OUTSIDE in places:
            out.outside += size[key]
        else:
            out.per_block[next(iter(places))] += size[key]
    # Inputs only the checkpoints hold (the hidden states between blocks); those autograd also saved are counted above.
    out.checkpoint_inputs = sum(n for key, n in inputs.items() if key not in where)
    return out, result


def tensor_bytes(t: torch.Tensor) -> int:
    """What a tensor stores: its nbytes, or for a wrapper subclass (torchao's and optimum-quanto's quantized weights) the sum over
    the tensors it is made of (``__tensor_flatten__``)."""
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is not None and type(t) is not torch.nn.Parameter:
        names, _ctx = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.nbytes


def state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Bytes of frozen weights and buffers, trainable weights, their gradients and the optimizer state (all its
    tensors), as stored (quantized weights by their parts)."""
    frozen = trainable = grads = 0
    for p in model.parameters():
        if p.requires_grad:
            trainable += tensor_bytes(p.data)
            grads += p.grad.nbytes if p.grad is not None else 0
        else:
            frozen += tensor_bytes(p.data)
    frozen += sum(tensor_bytes(b) for b in model.buffers())
    opt = 0
    if optimizer is not None:
        for state in optimizer.state.values():
            opt += sum(v.nbytes for v in state.values() if isinstance(v, torch.Tensor))
    return {"frozen": frozen, "trainable": trainable, "gradients": grads, "optimizer": opt}


class LiveTensors(TorchDispatchMode):
    """Peak bytes of the tensors created inside the mode that are alive at once (storages, each counted once).

    Follows the outputs of every op through to their release (a finalizer on the storage). Memory an op uses only
    internally (kernel workspaces) is not seen. On the ``meta`` device this costs no memory at all."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: set[int] = set()

    def _release(self, key: int, nbytes: int) -> None:
        if key in self._live:
            self._live.discard(key)
            self.current -= nbytes

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self._live:
            return
        nbytes = storage.nbytes()
        self._live.add(key)
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._release, key, nbytes)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # Views and in-place results share an input's storage: nothing new was allocated (a view of a weight that
        # existed before the mode must not count as a new tensor).
        inputs = {_storage_key(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor) and not t.is_sparse}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and not t.is_sparse and _storage_key(t) not in inputs:
                self._track(t)
        return out
