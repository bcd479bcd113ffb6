"""One writer per folder: an OS file lock that dies with its process, plus a note of who holds it.

The lock is ``fcntl.flock`` (``msvcrt.locking`` on Windows; :mod:`ltx_train_lib.platform_compat`) on a file that is never deleted. The operating system
releases it when the holder exits, however it exits (SIGKILL included), so a lock left by a dead process is simply
free: there is no stale-lock check and no check-then-unlink race between two processes taking over. The file's
content (pid, host, start time) only serves the message a second writer gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ltx_train_lib.platform_compat import try_lock, unlock

LOCK_NAME = ".ltx_train.lock"


class FolderBusy(Exception):
    """The folder is locked by a live process; ``owner`` describes it."""

    def __init__(self, folder: Path, owner: dict) -> None:
        self.folder, self.owner = folder, owner
        super().__init__(f"{folder} is locked by {describe_owner(owner)}")


def describe_owner(owner: dict) -> str:
    if not owner:
        return "another process"
    started = owner.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"{owner.get('what', 'a process')} (pid {owner.get('pid', '?')} on {owner.get('host', '?')}, since {when})"


def _read_owner(fh: IO[str]) -> dict:
    with contextlib.suppress(OSError, ValueError):
        fh.seek(0)
        data = json.loads(fh.read() or "{}")
        return data if isinstance(data, dict) else {}
    return {}


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if missing) for the ``with`` block; raises FolderBusy when a live process
    holds it. ``what`` names the holder in a second writer's message ("trainer", "preprocessing run")."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the lock's lifetime
    try:
        if not try_lock(fh):
            raise FolderBusy(folder, _read_owner(fh))
        # (On Windows the lock is mandatory, so a second writer may not read this note: it then says 'another process'.)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"what": what, "pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
        fh.flush()
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()  # a reader of a free lock finds no owner
                fh.flush()
            unlock(fh)
    finally:
        fh.close()
