"""What the scripts run in ComfyUI's Python share (tests/comfyui_sample_ltxv.py, tests/comfyui_sample_ltx2.py):
ComfyUI imported from its checkout on the CPU with its log captured, and a call of one of its nodes."""

from __future__ import annotations

import logging
import os
import sys


class LogCapture(logging.Handler):
    """Every log message ComfyUI writes (its LoRA loader reports unplaced keys only there)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def start_comfyui(comfy_dir: str) -> tuple[LogCapture, str]:
    """Import ComfyUI from ``comfy_dir`` as its main.py would with ``--cpu``, one torch thread; returns the log
    capture (installed before any ComfyUI import) and ComfyUI's version."""
    capture = LogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    sys.path.insert(0, comfy_dir)
    os.chdir(comfy_dir)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    from comfy.cli_args import args

    args.cpu = True
    import torch

    try:
        from comfyui_version import __version__ as version
    except ImportError:
        version = "unknown"
    torch.set_num_threads(1)
    return capture, version


def call_node(cls, **kwargs) -> tuple:
    """Call a ComfyUI node: the v3 schema (``execute`` classmethod) or the classic (``FUNCTION``) interface."""
    if hasattr(cls, "FUNCTION"):
        out = getattr(cls(), cls.FUNCTION)(**kwargs)
    else:
        out = cls.execute(**kwargs)
    return tuple(getattr(out, "result", out))
