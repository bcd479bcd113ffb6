"""The supervisor: the process that leads a job's process group and exits only after every training process.

Process tree: ``python -m ltx_train_lib.jobs supervise -- accelerate launch ...`` in a new session. The supervisor is
the process-group leader and a child subreaper: ``accelerate launch`` exits on SIGTERM before its workers do, and on
machines whose init does not reap orphans (containers) the workers would linger as zombies and keep the group
"alive". The supervisor reaps every descendant and exits last, so "the process group is gone" really means every
training process has ended. Cancel = SIGTERM to the group (see :mod:`.cancel`).

On Windows (:mod:`ltx_train_lib.platform_compat`) the group is made with ``CREATE_NEW_PROCESS_GROUP``, a cancel is
CTRL_BREAK_EVENT (SIGBREAK) and there are no zombies or subreapers: the supervisor waits for the launcher, then for
its remaining descendants (psutil), and kills stragglers after the same grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ltx_train_lib.platform_compat import (
    child_pids,
    is_windows,
    kill_process,
    new_group_popen_kwargs,
    supervisor_signals,
)

from .groups import group_members
from .layout import RUN_HEADER

# After the launcher has exited, stragglers (dataloader workers, compile pools) get this long before SIGKILL.
SUPERVISOR_GRACE_S = 30.0
_USAGE = "usage: python -m ltx_train_lib.jobs supervise -- COMMAND [ARGS...]"


def _become_subreaper() -> None:
    """Linux PR_SET_CHILD_SUBREAPER: orphaned descendants are re-parented to us, so we can reap them."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def supervise(cmd: list[str]) -> int:
    """Run ``cmd`` and exit only once every descendant has ended; returns ``cmd``'s exit code.

    SIGTERM/SIGINT are not acted on here: they reach the whole group (that is how jobs are cancelled), the trainer
    saves its checkpoint and exits, and the supervisor must outlive it to reap it.
    """
    _become_subreaper()
    for sig in supervisor_signals():
        # A Python handler, not SIG_IGN: handlers reset to default in the exec'd child, SIG_IGN would be inherited.
        signal.signal(sig, lambda *_: None)
    child = subprocess.Popen(cmd)
    if is_windows():
        return _wait_windows(child)
    code: int | None = None
    deadline: float | None = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG if deadline is not None else 0)
        except ChildProcessError:
            break
        if pid == 0:  # stragglers still running after the launcher ended
            if time.monotonic() > deadline:
                for straggler in group_members(os.getpgrp()) or []:
                    if straggler != os.getpid():
                        kill_process(straggler)
                deadline = float("inf")
            time.sleep(0.1)
            continue
        if pid == child.pid:
            code = os.waitstatus_to_exitcode(status)
            child.returncode = code
            deadline = time.monotonic() + SUPERVISOR_GRACE_S
    if code is None:
        return 1
    return code if code >= 0 else 128 - code  # killed by signal N -> 128 + N, as shells report it


def _wait_windows(child: subprocess.Popen, poll_s: float = 0.1) -> int:
    """Windows: the launcher's exit code, returned once its remaining descendants (dataloader workers...) have ended
    or, after SUPERVISOR_GRACE_S, been killed. Without psutil the descendants cannot be listed: the launcher's end
    is the job's end."""
    code = child.wait()
    deadline = time.monotonic() + SUPERVISOR_GRACE_S
    while (left := child_pids()) and time.monotonic() < deadline:
        time.sleep(poll_s)
    for straggler in left or []:
        kill_process(straggler)
    return code


def supervisor_command(launch_command: list[str]) -> list[str]:
    """The command line that runs ``launch_command`` under the supervisor."""
    return [sys.executable, "-m", "ltx_train_lib.jobs", "supervise", "--", *launch_command]


def spawn_supervised(
    launch_command: list[str], folder: Path, log_path: Path, env: Mapping[str, str]
) -> subprocess.Popen:
    """Start the supervisor for ``launch_command`` in ``folder``, in a session of its own, output appended to the log
    after a RUN_HEADER line (so this run's own lines can be told from earlier runs').

    Its pid is the job's process group id. Raises OSError when the log cannot be written or the process not started.
    """
    with open(log_path, "ab") as log:
        log.write(f"\n{RUN_HEADER} {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(launch_command)}\n".encode())
        log.flush()
        return subprocess.Popen(
            supervisor_command(launch_command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(folder),
            env=dict(env),
            **new_group_popen_kwargs(),  # its own process group: Cancel signals the whole tree, nothing else
        )


def main(argv: list[str]) -> int:
    """``supervise -- COMMAND [ARGS...]``: the entry point of ``python -m ltx_train_lib.jobs``."""
    if len(argv) >= 2 and argv[0] == "supervise" and argv[1] == "--" and len(argv) > 2:
        try:
            return supervise(argv[2:])
        except OSError as exc:  # e.g. the launcher's executable is missing: one line in train.log, not a traceback
            print(f"error: cannot start {argv[2]!r}: {exc.strerror or exc}", file=sys.stderr)
            return 127
    print(_USAGE, file=sys.stderr)
    return 2
