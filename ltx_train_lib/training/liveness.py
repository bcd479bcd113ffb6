"""Distributed runs that fail cleanly: orphaned ranks stop within seconds, and a stalled rank is named.

One daemon thread per training process (:class:`Watchdog`) does two jobs:

* It polls the processes whose death must end this one: the launcher that started this rank (its original parent
  when ``accelerate launch``/torchrun started it, and ``LTX_TRAIN_LAUNCHER_PID``, set by
  ``scripts/train_distributed.py``, whose SIGKILL nothing else would tell the workers) and the ComfyUI process
  (``PARENT_PID_ENV``). On a death it sets the stop flag (every rank agrees on it at the next optimizer step and a
  resumable checkpoint is written); a process still running ``orphan_grace_s`` later exits at once, so an orphan
  never trains or writes on for long. On Linux PR_SET_PDEATHSIG (SIGTERM, the same stop) is an extra for the
  direct parent; the poll is what works everywhere (:mod:`ltx_train_lib.platform_compat`).
* It writes a heartbeat into the rendezvous store (torch.distributed's default store, which every rank of every
  machine reaches, hosted by the launcher of machine 0) next to the rank's position (:meth:`RankBoard.mark`: step
  and phase). When a collective times out (``distributed.collective_timeout_s``), the ranks that waited read the
  board and name the rank that stalled (:func:`describe_stall`). Ranks waiting for a phase only rank 0 works in
  (checkpoint writing, validation) wait for as long as rank 0's heartbeat goes on (:meth:`RankBoard.wait_for_main`),
  so a short collective timeout never cuts a long validation.

Heartbeats carry wall-clock times: ages across machines are as good as their clocks agree (NTP: well under the
seconds that matter here).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ltx_train_lib.errors import TrainingError
from ltx_train_lib.platform_compat import parent_alive, pid_alive, set_parent_death_signal
from ltx_train_lib.training.stop import PARENT_PID_ENV, StopFlag

log = logging.getLogger("ltx_train_lib.liveness")

# Set by scripts/train_distributed.py (ltx_train_lib.cli.train_distributed) to its own pid.
LAUNCHER_PID_ENV = "LTX_TRAIN_LAUNCHER_PID"
# Environment variables that only a launcher (torchrun's agent, accelerate's simple launcher) sets: a rank started by
# one watches its original parent. A plain `python scripts/train.py` never does (nohup runs must outlive the shell).
_LAUNCHER_MARKS = ("TORCHELASTIC_RUN_ID", "ACCELERATE_USE_CPU", "LOCAL_RANK")
HEARTBEAT_S = 0.5  # also how often the watchdog looks at the watched processes
# A rank whose heartbeat is older than this is frozen (SIGSTOP, swapped out, D state) or gone.
STALE_AFTER_S = 3.0
_KEY = "ltx_train/"
# Positions within a step, in the order a rank passes them (a smaller position is "behind").
PHASES = ("starting", "loading batch", "forward/backward", "optimizer step", "checkpoint", "validation", "finishing")
# Words of the RuntimeErrors torch raises from a collective that lost a peer, or timed out (gloo and NCCL).
_LOST_PEER_WORDS = ("connection closed by peer", "connection reset by peer", "broken pipe")
_TIMEOUT_WORDS = ("timed out", "timeout")
# ...said by the backend itself (a DataLoader's "timed out" is no collective's).
_BACKEND_WORDS = ("gloo", "nccl", "collective", "c10d", "for recv operation", "for send operation")


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is torch.distributed giving up on a collective (a timeout, or a peer that went away)."""
    dist_error = getattr(getattr(sys.modules.get("torch"), "distributed", None), "DistError", None)
    if dist_error is not None and isinstance(exc, dist_error):
        return True
    text = str(exc).lower()
    if not isinstance(exc, RuntimeError):
        return False
    return is_lost_peer(exc) or (any(w in text for w in _TIMEOUT_WORDS) and any(w in text for w in _BACKEND_WORDS))


def is_lost_peer(exc: BaseException) -> bool:
    """Whether a collective failed because a peer process ended (rather than because it timed out)."""
    text = str(exc).lower()
    return any(w in text for w in _LOST_PEER_WORDS)


def launched_by_launcher(env: Mapping[str, str]) -> bool:
    return any(k in env for k in _LAUNCHER_MARKS)


@dataclass(frozen=True)
class RankPosition:
    """What one rank last wrote on the board."""

    rank: int
    step: int
    phase: str
    since: float  # when it reached this position (its clock)
    alive: float | None  # its last heartbeat (its clock); None when it never beat
    host: str
    pid: int

    @property
    def order(self) -> tuple[int, int]:
        return (self.step, PHASES.index(self.phase) if self.phase in PHASES else 0)


class RankBoard:
    """Every rank's position and heartbeat, in the rendezvous store (``store``: a ``torch.distributed.Store``)."""

    def __init__(self, store: Any, rank: int, world_size: int) -> None:
        self.store, self.rank, self.world_size = store, rank, world_size
        self._seq = 0
        self._lock = threading.Lock()  # the watchdog thread and the training loop share the store client
        self.host = socket.gethostname()

    @classmethod
    def from_process_group(cls, rank: int, world_size: int) -> RankBoard | None:
        """The board on torch.distributed's default store; None when there is none (one process)."""
        if world_size < 2:
            return None
        try:
            from torch.distributed import distributed_c10d

            store = distributed_c10d._get_default_store()  # every rank's connection to the rendezvous store
        except Exception as exc:  # noqa: BLE001 - without the board a stall is still reported, less precisely
            log.warning("no rendezvous store to publish this rank's heartbeat in (%s); stalls are reported without naming ranks", exc)
            return None
        return cls(store, rank, world_size)

    def _set(self, key: str, value: str) -> None:
        with self._lock:
            self.store.set(_KEY + key, value)

    def _get(self, key: str) -> str | None:
        with self._lock:
            if not self.store.check([_KEY + key]):  # get() would wait for a key nobody wrote
                return None
            return self.store.get(_KEY + key).decode()

    def mark(self, step: int, phase: str) -> None:
        """This rank reached ``phase`` of ``step`` (called by the training loop, cheap: one store round trip)."""
        self._set(f"pos/{self.rank}", json.dumps({"step": step, "phase": phase, "since": time.time(), "host": self.host,
                                                  "pid": os.getpid()}))

    def beat(self) -> None:
        self._set(f"alive/{self.rank}", repr(time.time()))

    def position(self, rank: int) -> RankPosition | None:
        raw = self._get(f"pos/{rank}")
        if raw is None:
            return None
        pos = json.loads(raw)
        alive = self._get(f"alive/{rank}")
        return RankPosition(rank, int(pos["step"]), str(pos["phase"]), float(pos["since"]),
                            float(alive) if alive is not None else None, str(pos["host"]), int(pos["pid"]))

    def positions(self) -> dict[int, RankPosition | None]:
        """Every rank's position; a rank whose entry cannot be read (the store is gone) is None."""
        out: dict[int, RankPosition | None] = {}
        for r in range(self.world_size):
            try:
                out[r] = self.position(r)
            except Exception:  # noqa: BLE001 - the store went away with machine 0's launcher
                out[r] = None
        return out

    def wait_for_main(self, what: str, timeout_s: float, poll_s: float = 0.2) -> None:
        """Rank 0 alone works on ``what``; the other ranks call this and return when it has finished. They wait as
        long as rank 0's heartbeat goes on; a heartbeat silent for ``timeout_s`` is a stall (TrainingError)."""
        self._seq += 1
        key = f"main_done/{self._seq}"
        if self.rank == 0:
            self._set(key, what)
            return
        while self._get(key) is None:
            main = self.position(0)
            silent = time.time() - main.alive if main is not None and main.alive is not None else 0.0
            if silent > timeout_s:
                raise TrainingError(describe_stall(self.positions(), self.rank, timeout_s,
                                                   cause=f"rank 0 stopped its heartbeat while the others waited for its {what}"))
            time.sleep(poll_s)


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds >= 1 else "just now"


def describe_stall(positions: Mapping[int, RankPosition | None], me: int, timeout_s: float, *, cause: str,
                   now: float | None = None, lost_peer: bool = False) -> str:
    """The message for a collective that timed out on rank ``me``: which rank(s) stalled, where, the evidence, and
    the setting to change. Ranks whose heartbeat stopped are frozen or gone; failing that, the ranks behind the
    others; failing that, every rank is at the same point and the stall is inside it. ``lost_peer``: the collective
    failed because a peer ended (it reports its own error), not because of the timeout."""
    now = time.time() if now is None else now
    others = {r: p for r, p in positions.items() if r != me}
    unknown = [r for r, p in others.items() if p is None]
    known = {r: p for r, p in others.items() if p is not None}
    silent = {r: p for r, p in known.items() if p.alive is None or now - p.alive > STALE_AFTER_S}
    if silent:
        stalled, why = silent, "its heartbeat stopped (the process is frozen or gone: look at its log and machine)"
    elif known:
        everyone = [p for p in (*known.values(), positions.get(me)) if p is not None]
        lowest = min(p.order for p in everyone)
        behind = {r: p for r, p in known.items() if p.order == lowest and lowest < max(p.order for p in everyone)}
        stalled = behind
        why = "it is alive but behind the others (stuck in its own work: a hung GPU, data loading or storage)"
    else:
        stalled, why = {}, ""
    world = len(positions)
    parts = []
    for r, p in sorted(stalled.items()):
        beat = f"last heartbeat {_ago(now - p.alive)}" if p.alive is not None else "no heartbeat ever"
        parts.append(f"rank {r} of {world} (pid {p.pid} on {p.host}) stalled at step {p.step} ({p.phase}, since "
                     f"{_ago(now - p.since)}; {beat}): {why}")
    if not parts and unknown:
        parts.append("rank(s) " + ", ".join(map(str, unknown)) + f" of {world} never reported a position (the stall "
                     "happened while starting, or the rendezvous store is gone with machine 0's launcher)")
    if lost_peer:
        ended = "; ".join(parts) if parts else "it has reported its own error (the launcher names the rank that ended first)"
        return (f"distributed training stopped on rank {me}: {cause}: another rank ended first, so this one cannot "
                f"go on. {ended[0].upper()}{ended[1:]}")
    if not parts:
        where = "; ".join(f"rank {r}: step {p.step} ({p.phase})" for r, p in sorted(positions.items()) if p is not None)
        parts.append(f"no rank looks stalled: every rank is alive at the same point ({where}); the hang is inside it "
                     "(a GPU, network or storage hang on some machine)")
    return (f"distributed training stopped on rank {me}: {cause}. " + "; ".join(parts) + ". If that rank was only "
            f"slow (a long model load, slow storage), raise distributed.collective_timeout_s (now {timeout_s:g} s)")


def exit_at_once(code: int) -> None:
    """End this process now, output flushed: for an orphan whose launcher is gone. Interpreter teardown with torch
    loaded spends seconds in C++ destructors, and a process in a long validation or hung step never gets there."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


class Watchdog(threading.Thread):
    """The per-process thread: watches the processes whose death ends this one, and beats on the board."""

    def __init__(self, stop: StopFlag, *, grace_s: float, env: Mapping[str, str] | None = None, poll_s: float = HEARTBEAT_S,
                 exit_now: Callable[[int], None] | None = None) -> None:
        super().__init__(name="ltx-train-watchdog", daemon=True)
        env = os.environ if env is None else env
        self.stop_flag, self.grace_s, self.poll_s = stop, grace_s, poll_s
        self._exit_now = exit_now or exit_at_once
        self.board: RankBoard | None = None
        self._halt = threading.Event()
        self.watched: list[tuple[int, str]] = []
        for var, what in ((LAUNCHER_PID_ENV, "launcher process"), (PARENT_PID_ENV, "parent process")):
            try:
                self.watched.append((int(env[var]), what))
            except (KeyError, ValueError):
                pass
        self.ppid: int | None = None
        if launched_by_launcher(env):
            self.ppid = os.getppid()
            set_parent_death_signal()  # Linux: the kernel tells us at once (SIGTERM: the same stop), the poll is the rest
        self.dead: str | None = None
        self._deadline: float | None = None

    @property
    def orphaned(self) -> bool:
        """A watched process died: whoever started this one is gone, so it should exit at once when done."""
        return self.dead is not None

    def attach(self, board: RankBoard | None) -> None:
        self.board = board

    def halt(self) -> None:
        self._halt.set()

    def check(self) -> None:
        """One round: a watched process that died starts the grace period; past it, the process exits."""
        if self.dead is None:
            if self.ppid is not None and parent_alive(self.ppid) is False:
                self.dead = f"launcher process (pid {self.ppid}) exited"
            for pid, what in self.watched:
                if self.dead is None and pid_alive(pid) is False:
                    self.dead = f"{what} (pid {pid}) exited"
            if self.dead is not None:
                self._deadline = time.monotonic() + self.grace_s
                if self.stop_flag.reason is None:
                    self.stop_flag.reason = self.dead.split(" (pid", 1)[0] + " exited"
                self._say(f"{self.dead}: stopping at the next step with a checkpoint (at most "
                          f"{self.grace_s:g} s: distributed.orphan_grace_s)")
        if self._deadline is not None and time.monotonic() > self._deadline:
            self._say(f"{self.dead}: still running {self.grace_s:g} s later (distributed.orphan_grace_s); exiting now. "
                      "The newest checkpoint in output_dir is kept and resumes the run")
            self._exit_now(3)
        if self.board is not None:
            try:
                self.board.beat()
            except Exception:  # noqa: BLE001 - the store went away with machine 0's launcher: nothing to beat into
                self.board = None

    def _say(self, text: str) -> None:
        try:
            print(f"[rank {os.environ.get('RANK', '0')}] {text}", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # the launcher's pipe may be gone with it
            pass

    def run(self) -> None:
        while not self._halt.is_set():
            self.check()
            self._halt.wait(self.poll_s)
