"""Block swapping (``memory.blocks_to_swap``): the frozen weights of N transformer blocks live in CPU memory and
visit the device one block at a time, for the block's forward and again for its backward.

How it works, per swapped block (the family's ``blocks(...)``, the first N of them):

- At install the block's frozen parameters and buffers move to CPU "masters" (pinned on CUDA, so copies are
  asynchronous); in the module each is replaced by an empty placeholder. Frozen weights never change, so the
  masters are never copied back: "returning" a block just drops its device copy. Trainable parameters (the LoRA
  inside the block) stay on the device, untouched: the optimizer, gradients and checkpoints see nothing unusual.
- A forward pre-hook brings the block (waiting for its prefetch) and starts prefetching the next swapped block on
  a side CUDA stream; the forward hook returns it, unless the call is the recompute of gradient checkpointing,
  which runs inside backward.
- Backward needs the weights again: a Linear keeps its (transposed) weight for the gradient of its input. Without
  gradient checkpointing, what a swapped block saves for backward goes through saved-tensor hooks pushed for its
  forward: a tensor that views one of its device copies is kept as a reference (which weight, which view) and
  rebuilt from the weight's device copy of the moment when backward unpacks it, so the graph holds no device copy
  and dropping it frees the memory. With checkpointing the block saves nothing (the checkpoint recomputes it).
- A gradient hook on the block's outputs fires when its backward starts: it returns the block after it (whose
  backward is done, since this block's output is that block's input), brings this one and prefetches the one
  before. Whatever is still on the device when backward ends is returned by a callback the autograd engine runs
  then.

So at most two swapped blocks are on the device at any time: the one running and the one being prefetched.
:attr:`BlockSwap.max_resident` records the most seen (tests check it). Without CUDA the device is the CPU: a
"visit" is a copy of the masters, which keeps the mechanism (and its bookkeeping) exercised in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

log = logging.getLogger("ltx_train_lib.trainer")


@dataclass
class _Slot:
    """One frozen tensor of a swapped block: where it lives in the module, its CPU master, its device copy."""

    module: torch.nn.Module
    name: str
    is_param: bool
    master: torch.Tensor
    placeholder: torch.Tensor
    current: torch.Tensor | None = None  # the device copy while the block is resident

    def set(self, value: torch.Tensor) -> None:
        self.current = value if value is not self.placeholder else None
        if self.is_param:
            getattr(self.module, self.name).data = value
        else:
            self.module._buffers[self.name] = value


@dataclass
class _Block:
    index: int  # position among the swapped blocks, in forward order
    module: torch.nn.Module
    slots: list[_Slot] = field(default_factory=list)
    resident: bool = False
    ready: torch.cuda.Event | None = None  # set when a prefetch was issued on the side stream
    saving: Any = None  # the saved-tensor hooks pushed for the block's forward


class BlockSwap:
    """Swaps the frozen weights of ``blocks[:count]`` between CPU masters and ``device`` around each use."""

    def __init__(self, blocks: Sequence[torch.nn.Module], count: int, device: torch.device | str, *,
                 checkpointing: bool = False) -> None:
        self.device = torch.device(device)
        self.checkpointing = checkpointing  # the blocks run under gradient checkpointing: they save nothing
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.blocks: list[_Block] = []
        self.resident = 0  # swapped blocks on the device now
        self.max_resident = 0  # the most at once so far
        self.transfers = 0  # block visits (copies to the device)
        self._handles: list = []
        self._callback_queued = False
        for i, module in enumerate(list(blocks)[:count]):
            block = _Block(i, module)
            for mod in module.modules():
                for name, p in list(mod._parameters.items()):
                    if p is not None and not p.requires_grad:
                        block.slots.append(self._offload(mod, name, p.data, is_param=True))
                for name, b in list(mod._buffers.items()):
                    if b is not None:
                        block.slots.append(self._offload(mod, name, b, is_param=False))
            self.blocks.append(block)
            self._handles.append(module.register_forward_pre_hook(self._pre_forward(block)))
            self._handles.append(module.register_forward_hook(self._post_forward(block), always_call=True))
        log.info("block swap: %d of %d blocks keep their frozen weights in %s CPU memory", len(self.blocks), len(blocks),
                 "pinned" if self.cuda else "plain")

    # ------------------------------------------------------------------ install / remove
    def _offload(self, module: torch.nn.Module, name: str, tensor: torch.Tensor, *, is_param: bool) -> _Slot:
        master = tensor.detach().to("cpu")  # the loaded tensor itself when it is in RAM already: no copy
        if self.cuda:
            try:
                master = master.pin_memory()  # a copy in page-locked memory: transfers run asynchronously
            except (RuntimeError, NotImplementedError) as exc:  # pinned memory exhausted or unsupported (WSL, subclasses)
                log.warning("block swap: pinning %s failed (%s); copies from pageable memory are slower", name, exc)
        placeholder = torch.empty(0, dtype=tensor.dtype, device=self.device)
        slot = _Slot(module, name, is_param, master, placeholder)
        slot.set(placeholder)
        return slot

    def remove(self) -> None:
        """Put every block back on the device for good (its masters copied there) and remove the hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for block in self.blocks:
            for slot in block.slots:
                slot.set(slot.master.to(self.device, copy=True))
            block.resident = False
        self.resident = 0

    # ------------------------------------------------------------------ moving
    def _bring(self, block: _Block) -> None:
        if block.resident:
            if block.ready is not None:
                torch.cuda.current_stream(self.device).wait_event(block.ready)
                block.ready = None
            return
        for slot in block.slots:
            copy = slot.master.to(self.device, non_blocking=self.cuda, copy=True)
            slot.set(copy)
        self._resident(block)

    def _prefetch(self, block: _Block | None) -> None:
        if block is None or block.resident:
            return
        if not self.cuda:
            self._bring(block)
            return
        # The copy overlaps the main stream's compute: the masters never change, and memory the side stream allocates
        # comes from its own pool; record_stream keeps it from reuse until the main stream is done with it.
        main = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.stream):
            for slot in block.slots:
                copy = slot.master.to(self.device, non_blocking=True, copy=True)
                copy.record_stream(main)  # used on the main stream: not reused before that work is done
                slot.set(copy)
            block.ready = torch.cuda.Event()
            block.ready.record(self.stream)
        self._resident(block)

    def _resident(self, block: _Block) -> None:
        block.resident = True
        self.resident += 1
        self.transfers += 1
        self.max_resident = max(self.max_resident, self.resident)

    def _return(self, block: _Block | None) -> None:
        if block is None or not block.resident:
            return
        if block.ready is not None:  # prefetched but never used: let the copy finish before its memory is dropped
            torch.cuda.current_stream(self.device).wait_event(block.ready)
            block.ready = None
        for slot in block.slots:
            slot.set(slot.placeholder)
        block.resident = False
        self.resident -= 1

    def _neighbour(self, block: _Block, step: int) -> _Block | None:
        j = block.index + step
        return self.blocks[j] if 0 <= j < len(self.blocks) else None

    # ------------------------------------------------------------------ hooks
    def _pre_forward(self, block: _Block):
        def hook(module, args):
            self._bring(block)
            if _in_backward():  # the recompute of gradient checkpointing: this block's backward comes next
                return
            self._prefetch(self._neighbour(block, +1))
            if torch.is_grad_enabled() and not self.checkpointing:
                block.saving = torch.autograd.graph.saved_tensors_hooks(*self._saved_by(block))
                block.saving.__enter__()

        return hook

    def _post_forward(self, block: _Block):
        def hook(module, args, output):
            if block.saving is not None:
                block.saving.__exit__(None, None, None)
                block.saving = None
            if _in_backward():
                return  # recomputed for this block's backward, which runs next: keep it
            outputs = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor) and t.requires_grad]
            if outputs and torch.is_grad_enabled():
                torch.autograd.graph.register_multi_grad_hook(outputs, self._backward_starts(block), mode="any")
            self._return(block)

        return hook

    def _saved_by(self, block: _Block):
        """Pack/unpack hooks for the block's forward: views of its weights' device copies are kept as references."""
        by_storage = {slot.current.untyped_storage()._cdata: slot for slot in block.slots if slot.current is not None}

        def pack(t: torch.Tensor) -> Any:
            slot = by_storage.get(t.untyped_storage()._cdata) if t.device == self.device else None
            if slot is None:
                return t
            return _WeightView(slot, tuple(t.shape), tuple(t.stride()), t.storage_offset())

        def unpack(saved: Any) -> torch.Tensor:
            if not isinstance(saved, _WeightView):
                return saved
            if saved.slot.current is None:  # backward reached the block another way than through its outputs
                self._bring(block)
            return saved.slot.current.as_strided(saved.size, saved.stride, saved.offset)

        return pack, unpack

    def _backward_starts(self, block: _Block):
        def hook(grad):
            self._return(self._neighbour(block, +1))  # its backward is done: this block's output was its input
            self._bring(block)
            self._prefetch(self._neighbour(block, -1))
            if not self._callback_queued:
                self._callback_queued = True
                torch.autograd.Variable._execution_engine.queue_callback(self._backward_done)

        return hook

    def _backward_done(self) -> None:
        self._callback_queued = False
        for block in self.blocks:
            self._return(block)


@dataclass(frozen=True)
class _WeightView:
    """A saved tensor that viewed a swapped weight: rebuilt from the weight's device copy when backward needs it."""

    slot: _Slot
    size: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int


def _in_backward() -> bool:
    return torch._C._current_graph_task_id() != -1


def install_block_swap(blocks: Sequence[torch.nn.Module], count: int, device: torch.device | str, *,
                       checkpointing: bool = False) -> BlockSwap:
    """Swap the first ``count`` of ``blocks`` (see the module docstring); the returned object keeps the hooks.
    ``checkpointing``: the blocks run under gradient checkpointing (enabled before this is called)."""
    from ltx_train_lib.errors import ConfigError

    if count > len(blocks):
        raise ConfigError(f"memory.blocks_to_swap is {count} but the transformer has {len(blocks)} blocks; set it to "
                          f"{len(blocks)} or less")
    return BlockSwap(blocks, count, device, checkpointing=checkpointing)
