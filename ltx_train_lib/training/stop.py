"""Stopping a run cleanly: SIGTERM/SIGINT and the death of a watched parent set a flag that the training loop checks at
optimizer-step boundaries (it then writes a resumable checkpoint), and the peak memory figure the step event reports."""

from __future__ import annotations

import os
import signal
from typing import Any

import torch

from ltx_train_lib.platform_compat import peak_rss_mb, pid_alive, stop_signals

PARENT_PID_ENV = "LTX_TRAIN_PARENT_PID"


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak_rss_mb()


class StopFlag:
    """Set by SIGTERM/SIGINT (and SIGBREAK on Windows: ``platform_compat.stop_signals``); checked at optimizer-step
    boundaries."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in stop_signals():
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a ComfyUI worker): no handlers
                pass

    def uninstall(self) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        self.reason = signal.Signals(signum).name

    def check_parent(self) -> None:
        pid = os.environ.get(PARENT_PID_ENV)
        if pid and self.reason is None:
            try:
                alive = pid_alive(int(pid))  # never os.kill(pid, 0): on Windows that would end the parent
            except ValueError:
                return
            if alive is False:
                self.reason = "parent process exited"
