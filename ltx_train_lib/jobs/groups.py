"""Process groups: which processes a group still has, and whether a job's group runs (the one liveness check).

A job's training processes form one process group led by the supervisor (see :mod:`.supervise`), so "the job
runs" is "its group has a live member". /proc is read where it exists (Linux) because ``killpg(pgid, 0)`` alone
is fooled by zombies: an init that never reaps orphans (common in containers) would keep a finished group "alive".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ltx_train_lib.platform_compat import group_exists, is_windows, process_start_time

# job.json's "created" may be written just after the spawn, so a leader may seem to start up to this much earlier.
_START_SLACK_S = 5.0


def _proc_stat(pid_dir: Path) -> tuple[int, int, str] | None:
    """(pid, pgid, state) from /proc/<pid>/stat; None when the process vanished meanwhile."""
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = text.rsplit(")", 1)[1].split()
    try:
        return int(pid_dir.name), int(fields[2]), fields[0]
    except (IndexError, ValueError):
        return None


def group_members(pgid: int) -> list[int] | None:
    """Pids of the live (non-zombie) processes of a process group; None where /proc cannot tell (not Linux)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").is_file():
        return None
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(entry)
        if stat is not None and stat[1] == pgid and stat[2] not in ("Z", "X"):
            members.append(stat[0])
    return members


def proc_start_time(pid: int) -> float | None:
    """Unix start time of ``pid`` from /proc (Linux; elsewhere psutil's), or None when unknown."""
    if not Path("/proc/self/stat").is_file():
        return process_start_time(pid)
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text()
        # Field 22 (starttime, clock ticks after boot) comes after the ')' that closes the command name.
        fields = stat_text.rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])
        btime = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
        return btime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def group_alive(pgid: Any, created: Any = None) -> bool | None:
    """Whether any process of group ``pgid`` still runs: True/False when known, None where this platform cannot tell
    (Windows without psutil). On Windows the group is its leader, the supervisor, which outlives its tree.

    ``pgid`` is taken as read from job.json, so anything that is not a real group id (None, a string, a bool, 0, 1,
    a negative number) is simply not alive. ``created`` (the job's creation time) guards against a recycled pid:
    after a reboot or a long time the number may belong to an unrelated group that started before the job did.
    Zombies do not count (see the module docstring).
    """
    if not isinstance(pgid, int) or isinstance(pgid, bool) or pgid <= 1:
        return False
    exists = group_exists(pgid)  # POSIX killpg(pgid, 0): zombies count, so they are weeded out below
    if not exists:
        return exists
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        started = proc_start_time(pgid)
        if started is not None and started < created - _START_SLACK_S:
            return False
    if is_windows():
        return True  # the leader runs; Windows keeps no zombies
    members = group_members(pgid)
    return True if members is None else bool(members)
