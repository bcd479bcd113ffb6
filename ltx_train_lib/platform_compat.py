"""What differs between POSIX and Windows for processes, signals, memory and file locks: the one place that decides.

A job's training processes form a group led by the supervisor (:mod:`ltx_train_lib.jobs.supervise`); its pid names
the group on both systems.

=======================  =========================================  ================================================
                         POSIX                                      Windows
=======================  =========================================  ================================================
start a group            ``start_new_session=True``                 ``creationflags=CREATE_NEW_PROCESS_GROUP``
ask it to stop           ``killpg(pgid, SIGTERM)``                  ``os.kill(pgid, CTRL_BREAK_EVENT)`` (SIGBREAK)
kill the tree            ``killpg(pgid, SIGKILL)``                  ``taskkill /PID <pgid> /T /F``
does it run              ``killpg(pgid, 0)`` (+ /proc, no zombies)  the leader's pid exists (psutil), the leader
                                                                    outliving its tree
is a pid alive           ``os.kill(pid, 0)``, not a zombie (/proc)  ``psutil.pid_exists`` (``os.kill(pid, 0)``
                                                                    would *terminate* it there)
is my parent alive       ``os.getppid()`` unchanged (orphans are    the parent's pid exists (psutil); Windows
                         re-parented)                               never re-parents
told of parent's death   Linux: ``prctl(PR_SET_PDEATHSIG)``;        none (the trainer's watchdog polls)
                         others: none (the watchdog polls)
stop signals             SIGTERM, SIGINT                            SIGTERM, SIGINT, SIGBREAK
peak memory (CPU run)    ``getrusage`` ru_maxrss                    psutil ``peak_wset``
folder lock              ``fcntl.flock``                            ``msvcrt.locking`` (one byte)
=======================  =========================================  ================================================

Every function reads ``sys.platform`` when called, so the Windows branches are exercised on Linux by the tests
(monkeypatched ``sys.platform``, recorded commands); Windows itself does not run here. ``CTRL_BREAK_EVENT`` reaches
only processes attached to the caller's console: ComfyUI on Windows runs in one, and its children inherit it.
psutil is a dependency on Windows (ComfyUI's own requirements have it); without it liveness is "unknown" (None).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import IO, Any

# Windows values, restated so the Windows branches can be exercised (and their commands checked) on POSIX.
CREATE_NEW_PROCESS_GROUP = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x00000200)
CTRL_BREAK_EVENT = getattr(signal, "CTRL_BREAK_EVENT", 1)


def is_windows() -> bool:
    return sys.platform == "win32"


# --------------------------------------------------------------------------------------------------- processes


def new_group_popen_kwargs() -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments that make the child the leader of a new process group, so a cancel
    reaches the whole training tree and nothing else (its pid is the group id on both systems)."""
    if is_windows():
        return {"creationflags": CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def own_group_id() -> int | None:
    """This process's group (ComfyUI's, never to be signalled): the POSIX process group; on Windows our pid, the id
    a group we led would have."""
    if is_windows():
        return os.getpid()
    return os.getpgrp() if hasattr(os, "getpgrp") else None


def taskkill_command(pid: int, *, tree: bool = True) -> list[str]:
    """The Windows command that kills ``pid`` (and with ``tree`` all its descendants) at once."""
    return ["taskkill", "/PID", str(int(pid)), *(["/T"] if tree else []), "/F"]


def _taskkill(pid: int, *, tree: bool) -> bool:
    """Run taskkill; False when the process was already gone (taskkill exits 128 then)."""
    try:
        proc = subprocess.run(taskkill_command(pid, tree=tree), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def terminate_group(pgid: int) -> bool:
    """Ask every process of group ``pgid`` to stop cleanly (SIGTERM; on Windows CTRL_BREAK_EVENT, which Python
    delivers as SIGBREAK). False when the group is gone; PermissionError when it belongs to another user."""
    if is_windows():
        try:
            os.kill(pgid, CTRL_BREAK_EVENT)
        except PermissionError:
            raise
        except OSError:  # no such group (WinError 87) or it just ended
            return False
        return True
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def kill_group(pgid: int) -> bool:
    """Kill every process of group ``pgid`` now (SIGKILL; on Windows ``taskkill /T /F`` of its leader's tree)."""
    if is_windows():
        return _taskkill(pgid, tree=True)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def kill_process(pid: int) -> bool:
    """Kill one process now (a straggler the supervisor gave up waiting for)."""
    if is_windows():
        return _taskkill(pid, tree=False)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def group_exists(pgid: int) -> bool | None:
    """Whether group ``pgid`` has any process, zombies included (POSIX ``killpg(pgid, 0)``; the caller weeds out
    zombies). On Windows: whether its leader runs (the supervisor outlives its tree); None when unknown."""
    if is_windows():
        return pid_alive(pgid)
    if not hasattr(os, "killpg"):
        return None
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def _psutil() -> Any | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` exists, without disturbing it; None when this system cannot tell (Windows without
    psutil). Never ``os.kill(pid, 0)`` on Windows: there it terminates the process."""
    if is_windows():
        psutil = _psutil()
        return None if psutil is None else bool(psutil.pid_exists(pid))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Linux: whether ``pid`` has exited and waits to be reaped (``os.kill(pid, 0)`` still succeeds then: a
    SIGKILLed launcher whose parent has not reaped it yet is dead all the same). False where /proc cannot tell."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"  # the state follows the "(comm)" field
    except (OSError, IndexError):
        return False


def parent_alive(original_ppid: int) -> bool | None:
    """Whether the parent this process had at start (``original_ppid``, from ``os.getppid()`` then) still runs.
    POSIX re-parents an orphan (to init or a subreaper), so a changed ``getppid()`` means the parent died, whatever
    pid reuse does; Windows keeps the original pid, so there the pid must exist (psutil; None without it)."""
    if is_windows():
        return pid_alive(original_ppid)
    return os.getppid() == original_ppid


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent exits (PR_SET_PDEATHSIG), SIGKILL of the
    parent included. False elsewhere (macOS, Windows) or when prctl is unavailable: the caller polls instead."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(sig), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def process_start_time(pid: int) -> float | None:
    """Unix time at which ``pid`` started, via psutil (Linux reads /proc instead: ``jobs.groups``); None when
    unknown or gone."""
    psutil = _psutil()
    if psutil is None:
        return None
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def child_pids(pid: int | None = None) -> list[int] | None:
    """Pids of the live descendants of ``pid`` (default: this process), via psutil; None without it."""
    psutil = _psutil()
    if psutil is None:
        return None
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True) if c.is_running()]
    except psutil.Error:
        return []


# ----------------------------------------------------------------------------------------------------- signals


def stop_signals() -> tuple[int, ...]:
    """The signals that ask a run to stop after its step with a checkpoint: what :func:`terminate_group` and Ctrl+C
    deliver (Windows adds SIGBREAK, CTRL_BREAK_EVENT's signal)."""
    sigs = [signal.SIGTERM, signal.SIGINT]
    if is_windows() and hasattr(signal, "SIGBREAK"):
        sigs.append(signal.SIGBREAK)
    return tuple(sigs)


def supervisor_signals() -> tuple[int, ...]:
    """What the supervisor must outlive: the stop signals, and a closed terminal (SIGHUP, POSIX only)."""
    extra = (signal.SIGHUP,) if not is_windows() and hasattr(signal, "SIGHUP") else ()
    return (*stop_signals(), *extra)


# ------------------------------------------------------------------------------------------------------ memory


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (the CPU figure of a step event); 0.0 where unknown."""
    if is_windows():
        psutil = _psutil()
        if psutil is None:
            return 0.0
        info = psutil.Process().memory_info()
        return round(getattr(info, "peak_wset", info.rss) / 2**20, 1)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB on Linux


# ------------------------------------------------------------------------------------------------------- locks


def try_lock(fh: IO[str]) -> bool:
    """Take the exclusive OS lock of the open file ``fh`` without waiting; False when another process holds it. The
    system releases it when the holder exits, however it exits."""
    if is_windows():
        import msvcrt

        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def unlock(fh: IO[str]) -> None:
    if is_windows():
        import msvcrt

        with contextlib.suppress(OSError):
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
