"""Cancelling a job: SIGTERM to its whole process group, the one way a job is stopped (on Windows CTRL_BREAK_EVENT
to the group and ``taskkill /T /F`` as the last resort: :mod:`ltx_train_lib.platform_compat`).

The trainer answers SIGTERM at the next optimizer step with a resumable checkpoint and a ``cancelled`` event, then
exits; the supervisor exits last (see :mod:`.supervise`). The node, which owns the child, waits for that and sends
SIGKILL after a timeout (:func:`stop_group`); the web panel's route only sends the signal and returns
(:func:`cancel_job`), since the node or the next poll sees the end.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from ltx_train_lib.events import read_events
from ltx_train_lib.platform_compat import kill_group, own_group_id, terminate_group

from .errors import CancelError
from .groups import group_alive
from .layout import events_path, job_dir, read_job_meta
from .status import RUNNING, current_status

# After SIGKILL a process group normally vanishes at once; this bounds the wait for the kernel to tear it down.
_KILL_WAIT_S = 10.0
_POLL_S = 0.1


def _ours(pgid: object) -> bool:
    """Whether ``pgid`` is this process's own group: ComfyUI itself, never to be signalled."""
    return isinstance(pgid, int) and pgid == own_group_id()


def signal_group(pgid: int, sig: int = signal.SIGTERM) -> bool:
    """Ask process group ``pgid`` to stop (``sig`` SIGTERM) or kill it (any other signal: SIGKILL where it exists);
    False when the group is already gone."""
    try:
        return terminate_group(pgid) if sig == signal.SIGTERM else kill_group(pgid)
    except PermissionError as exc:
        raise CancelError(f"process group {pgid} belongs to another user; it can only be stopped by that user") from exc


def stop_group(pgid: int, running: Callable[[], bool], timeout: float) -> None:
    """SIGTERM the group, wait while ``running()`` says it runs, SIGKILL after ``timeout`` seconds, wait again.

    ``running`` is the caller's check because a parent must also reap its child for the group to end.
    """
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running() and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    if running():
        kill_group(pgid)
        deadline = time.monotonic() + _KILL_WAIT_S
        while running() and time.monotonic() < deadline:
            time.sleep(_POLL_S)


def cancel_job(root: str | Path, job_id: str) -> bool:
    """SIGTERM the job's process group, for the web panel: returns at once (the trainer needs a step to stop).

    Returns True when a signal was sent, False when the job is not running (already ended, or its process is gone).
    Raises :class:`CancelError` where the job has no group of its own.
    """
    folder = job_dir(root, job_id)
    try:
        meta = read_job_meta(folder)
    except ValueError as exc:
        raise CancelError(str(exc)) from exc
    pgid = meta.get("pgid")
    no_group = CancelError(f"job {job_id!r} has no process group of its own to signal (pgid={pgid!r})")
    if _ours(pgid):
        # Checked first: whatever the job's state, our own group is ComfyUI itself and is never signalled.
        raise no_group
    status, _ = current_status(meta, read_events(events_path(folder, meta)))
    if status != RUNNING:
        return False
    if not isinstance(pgid, int) or isinstance(pgid, bool) or pgid <= 1 or _ours(pgid):
        raise no_group  # running by its events, but job.json recorded no group (e.g. a CLI run)
    if not group_alive(pgid, meta.get("created")):
        return False
    return signal_group(pgid)
