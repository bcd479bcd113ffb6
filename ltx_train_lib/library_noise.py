"""Filters for warnings that libraries log at import and that nobody can act on, installed when the package loads.

With torchao installed (requirements.txt: the quantized base), importing diffusers, peft or torchao itself logs
  - torch >= 2.14: "<enum 'KernelPreference'> is an Enum subclass and is now natively supported by torch.compile
    ..." once per Enum torchao registers (torch.utils._pytree), and
  - diffusers 0.42 with torchao 0.18: "Unable to import `torchao` Tensor objects. This may affect loading
    checkpoints serialized with `torchao`" (it looks for classes torchao 0.18 moved; we never load such checkpoints).
They would greet every training run and every ComfyUI start. Only these messages are dropped; nothing else from
those loggers is touched, and no torch is imported here.
"""

from __future__ import annotations

import logging

_DROPPED = {
    "torch.utils._pytree": "is an Enum subclass and is now natively supported by torch.compile",
    "diffusers.quantizers.torchao.torchao_quantizer": "Unable to import `torchao` Tensor objects",
}


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in str(record.msg)


def install() -> None:
    """Add the filters (once: a logger keeps one filter of each)."""
    for name, fragment in _DROPPED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.fragment == fragment for f in logger.filters):
            logger.addFilter(_DropMessage(fragment))
