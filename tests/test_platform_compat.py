"""The POSIX/Windows choices in ltx_train_lib/platform_compat.py and their callers (jobs, trainer stop flag, locks).

Windows itself cannot run here: its branches are exercised on Linux with ``sys.platform`` set to "win32" and the
system calls they would make (``os.kill`` with CTRL_BREAK_EVENT, ``taskkill``, ``msvcrt.locking``, psutil, Popen's
``creationflags``) replaced by recorders, so the tests check the exact commands and arguments Windows would get.
The POSIX branches run for real.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import psutil
import pytest

from ltx_train_lib import platform_compat as pc
from ltx_train_lib.training.stop import PARENT_PID_ENV, StopFlag

# The modules (ltx_train_lib.jobs re-exports functions under some of these names).
cancel = importlib.import_module("ltx_train_lib.jobs.cancel")
groups = importlib.import_module("ltx_train_lib.jobs.groups")
supervise = importlib.import_module("ltx_train_lib.jobs.supervise")

WIN_SIGBREAK = 21  # signal.SIGBREAK's value on Windows


class Recorder:
    """Stands in for a system call: records its arguments, answers ``result`` (or raises it)."""

    def __init__(self, result=None) -> None:
        self.calls: list[tuple] = []
        self.result = result

    def __call__(self, *args, **kwargs):
        self.calls.append((*args, kwargs) if kwargs else args)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


@pytest.fixture
def windows(monkeypatch):
    """sys.platform says Windows; os.kill / killpg must not be reached except through the recorders a test sets."""
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(signal, "SIGBREAK", WIN_SIGBREAK, raising=False)

    def forbidden(*args):
        raise AssertionError(f"a POSIX signal call on Windows: {args}")

    monkeypatch.setattr(pc.os, "killpg", forbidden, raising=False)
    monkeypatch.setattr(pc.os, "kill", forbidden)
    return monkeypatch


def _taskkill(monkeypatch, returncode: int = 0) -> Recorder:
    run = Recorder(subprocess.CompletedProcess([], returncode, "", ""))
    monkeypatch.setattr(pc.subprocess, "run", run)
    return run


# ------------------------------------------------------------------------------------------ Windows, recorded


def test_windows_process_groups_stop_and_kill(windows) -> None:
    assert pc.new_group_popen_kwargs() == {"creationflags": 0x200}  # CREATE_NEW_PROCESS_GROUP
    assert pc.own_group_id() == pc.os.getpid()
    kill = Recorder()
    windows.setattr(pc.os, "kill", kill)
    assert pc.terminate_group(4242) is True and kill.calls == [(4242, 1)]  # CTRL_BREAK_EVENT to the group
    kill.result = OSError(87, "The parameter is incorrect")  # no such group
    assert pc.terminate_group(4242) is False
    kill.result = PermissionError("access denied")
    with pytest.raises(PermissionError):
        pc.terminate_group(4242)

    run = _taskkill(windows)
    assert pc.kill_group(4242) is True and pc.kill_process(77) is True
    assert [c[0] for c in run.calls] == [["taskkill", "/PID", "4242", "/T", "/F"], ["taskkill", "/PID", "77", "/F"]]
    run.result = subprocess.CompletedProcess([], 128, "", "ERROR: The process \"4242\" not found.")
    assert pc.kill_group(4242) is False


def test_windows_liveness_never_signals(windows) -> None:
    exists = Recorder(True)
    windows.setattr(psutil, "pid_exists", exists)
    assert pc.pid_alive(99) is True and pc.group_exists(99) is True and exists.calls == [(99,), (99,)]
    exists.result = False
    assert pc.pid_alive(99) is False
    windows.setattr(pc, "_psutil", lambda: None)  # no psutil: unknown, not "dead"
    assert pc.pid_alive(99) is None and pc.child_pids() is None and pc.peak_rss_mb() == 0.0


def test_windows_group_alive_checks_the_leader_and_its_start(windows) -> None:
    me = pc.os.getpid()  # a live leader: this process (psutil's create_time really looks it up)
    windows.setattr(psutil, "pid_exists", lambda pid: pid == me)  # psutil's own Linux version would os.kill(pid, 0)
    assert groups.group_alive(me) is True
    started = psutil.Process(me).create_time()
    assert groups.group_alive(me, created=started + 1) is True  # job.json written just after the spawn
    assert groups.group_alive(me, created=started + 3600) is False  # started long before the job: a recycled pid
    windows.setattr(psutil, "pid_exists", lambda pid: False)
    assert groups.group_alive(me) is False


def test_windows_stop_signals_and_the_trainer_flag(windows) -> None:
    assert pc.stop_signals() == (signal.SIGTERM, signal.SIGINT, WIN_SIGBREAK)
    assert pc.supervisor_signals() == (signal.SIGTERM, signal.SIGINT, WIN_SIGBREAK)  # no SIGHUP on Windows
    installed = Recorder(signal.SIG_DFL)
    windows.setattr(signal, "signal", installed)
    flag = StopFlag()
    flag.install()
    assert [c[0] for c in installed.calls] == [signal.SIGTERM, signal.SIGINT, WIN_SIGBREAK]
    flag.uninstall()
    # the parent watch asks psutil; os.kill(pid, 0) would terminate the parent on Windows (the fixture forbids it)
    windows.setenv(PARENT_PID_ENV, "31337")
    windows.setattr(psutil, "pid_exists", lambda pid: pid != 31337)
    flag.check_parent()
    assert flag.reason == "parent process exited"


def test_windows_cancel_escalates_to_taskkill(windows) -> None:
    kill = Recorder()
    windows.setattr(pc.os, "kill", kill)
    run = _taskkill(windows)
    answers = iter([True, True, False])  # still running after the grace period; gone after the kill
    cancel.stop_group(555, running=lambda: next(answers), timeout=0.0)
    assert kill.calls == [(555, 1)] and run.calls[0][0] == ["taskkill", "/PID", "555", "/T", "/F"]
    assert cancel.signal_group(555) is True and kill.calls[-1] == (555, 1)
    assert cancel._ours(pc.os.getpid()) and not cancel._ours(555)


def test_windows_supervisor_spawn_and_wait(windows, tmp_path: Path) -> None:
    popen = Recorder(types.SimpleNamespace(pid=1234))
    windows.setattr(supervise.subprocess, "Popen", popen)
    supervise.spawn_supervised(["accelerate", "launch"], tmp_path, tmp_path / "train.log", {"A": "1"})
    (args, kwargs), = [(c[0], c[1]) for c in popen.calls]
    assert kwargs["creationflags"] == 0x200 and "start_new_session" not in kwargs
    assert args[-3:] == ["--", "accelerate", "launch"]

    # the launcher ended with 3; one dataloader worker outlives the grace period and is killed, the code stays 3
    child = types.SimpleNamespace(wait=lambda: 3)
    windows.setattr(supervise, "SUPERVISOR_GRACE_S", 0.0)
    windows.setattr(supervise, "child_pids", lambda: [101])
    run = _taskkill(windows)
    assert supervise._wait_windows(child, poll_s=0.0) == 3
    assert [c[0] for c in run.calls] == [["taskkill", "/PID", "101", "/F"]]
    windows.setattr(supervise, "child_pids", lambda: [])
    run.calls.clear()
    assert supervise._wait_windows(types.SimpleNamespace(wait=lambda: 0), poll_s=0.0) == 0 and run.calls == []


def test_windows_locks_use_msvcrt(windows, tmp_path: Path) -> None:
    locking = Recorder()
    fake = types.SimpleNamespace(LK_NBLCK=2, LK_UNLCK=0, locking=locking)
    windows.setitem(sys.modules, "msvcrt", fake)
    with open(tmp_path / "lock", "a+", encoding="utf-8") as fh:
        assert pc.try_lock(fh) is True
        pc.unlock(fh)
        locking.result = OSError("locked by another process")
        assert pc.try_lock(fh) is False
        assert [c[1:] for c in locking.calls] == [(2, 1), (0, 1), (2, 1)] and locking.calls[0][0] == fh.fileno()


def test_windows_peak_memory_reads_the_peak_working_set(windows) -> None:
    info = types.SimpleNamespace(rss=10 * 2**20, peak_wset=48 * 2**20)
    windows.setattr(psutil, "Process", lambda pid=None: types.SimpleNamespace(memory_info=lambda: info))
    assert pc.peak_rss_mb() == 48.0


# --------------------------------------------------------------------------------------------- POSIX, for real


@pytest.mark.skipif(sys.platform == "win32", reason="the POSIX branch")
def test_posix_branches_for_real(tmp_path: Path) -> None:
    assert pc.new_group_popen_kwargs() == {"start_new_session": True}
    assert pc.stop_signals() == (signal.SIGTERM, signal.SIGINT) and signal.SIGHUP in pc.supervisor_signals()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], **pc.new_group_popen_kwargs())
    try:
        assert pc.group_exists(proc.pid) is True and pc.pid_alive(proc.pid) is True
        assert pc.terminate_group(proc.pid) is True
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert pc.pid_alive(proc.pid) is False and pc.terminate_group(proc.pid) is False and pc.kill_group(proc.pid) is False
    assert pc.peak_rss_mb() > 10  # MiB: this Python with torch imported
    with open(tmp_path / "lock", "a+", encoding="utf-8") as fh, open(tmp_path / "lock", "a+", encoding="utf-8") as other:
        assert pc.try_lock(fh) is True and pc.try_lock(other) is False
        pc.unlock(fh)
        assert pc.try_lock(other) is True


def test_windows_parent_watch_asks_psutil_and_has_no_death_signal(windows) -> None:
    windows.setattr(psutil, "pid_exists", lambda pid: pid == 4242)
    windows.setattr(pc.os, "getppid", lambda: 4242)  # Windows never re-parents: the pid must be asked about
    assert pc.parent_alive(4242) is True and pc.parent_alive(4343) is False
    assert pc.set_parent_death_signal() is False  # no PR_SET_PDEATHSIG: the trainer's watchdog polls


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl")
def test_linux_zombies_are_dead_and_an_orphan_sees_its_parent_go(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while not pc._is_zombie(proc.pid) and time.monotonic() < deadline:  # exited, not reaped yet
        time.sleep(0.05)
    assert pc._is_zombie(proc.pid) and pc.pid_alive(proc.pid) is False
    proc.wait()
    assert pc.parent_alive(os.getppid()) is True and pc.parent_alive(os.getppid() + 100000) is False
    # A child whose parent is SIGKILLed: re-parented, it sees parent_alive False (and got PDEATHSIG's SIGTERM).
    orphan = tmp_path / "orphan.py"
    orphan.write_text(
        "import os, signal, time\n"
        "from ltx_train_lib import platform_compat as pc\n"
        "got = []\n"
        "signal.signal(signal.SIGTERM, lambda *a: got.append(1))\n"
        "ppid = os.getppid()\n"
        "assert pc.set_parent_death_signal()\n"
        "print('ready', flush=True)\n"
        "deadline = time.time() + 20\n"
        "while pc.parent_alive(ppid) and time.time() < deadline:\n"
        "    time.sleep(0.05)\n"
        "time.sleep(0.2)\n"
        "print('orphan', pc.parent_alive(ppid), bool(got), flush=True)\n"
    )
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, {str(orphan)!r}]); time.sleep(30)"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert parent.stdout.readline().strip() == "ready"
        parent.kill()
        parent.wait()
        assert parent.stdout.readline().strip() == "orphan False True"
    finally:
        if parent.poll() is None:
            parent.kill()
