"""A training job as the process that started it sees it: its folder, its child, this run's events, its status.

:func:`~ltx_train_lib.jobs.start_job` returns one; the TrainLoRA node polls it for events, cancels it and turns its
end into a result or a :class:`~ltx_train_lib.jobs.errors.JobFailed` carrying the child's own words.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx_train_lib.events import EVENTS_FILE, EventFollower

from .cancel import stop_group
from .errors import JobFailed
from .groups import group_alive
from .layout import CONFIG_FILE, LOG_FILE, RUN_HEADER, update_job_meta
from .status import ACTIVE, CANCELLED, ENDED, FAILED, FINISHED, QUEUED, stored_status

_LOG_TAIL_LINES = 25
# Only the end of train.log is read for failure messages: a long run's log can be large.
_LOG_READ_BYTES = 256 * 1024
_REAP_WAIT_S = 5.0


@dataclass
class Job:
    """A training job folder, and its child process when this process started one."""

    id: str
    dir: Path
    name: str
    num_processes: int = 1
    process: subprocess.Popen | None = None
    status: str = QUEUED  # one of status.STATUSES (job.json spells FINISHED "done")
    result: dict[str, Any] | None = None  # the `done` event
    spawned: bool = False
    node_id: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # events of this run, in order
    cancel_requested: bool = False
    _follower: EventFollower | None = None

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.dir / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        return self.dir / LOG_FILE

    @property
    def events_path(self) -> Path:
        return self.dir / EVENTS_FILE

    @property
    def pgid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def outputs(self) -> dict[str, str]:
        return dict((self.result or {}).get("outputs") or {})

    def last(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e.get("event") == kind), None)

    # ------------------------------------------------------------------ job.json
    def write_meta(self, **extra: Any) -> None:
        now = round(time.time(), 3)
        fields: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "status": stored_status(self.status),
            "output_dir": str(self.dir),
            "config": CONFIG_FILE,
            "log": LOG_FILE,
            "num_processes": self.num_processes,
            "updated": now,
        }
        if self.pgid is not None:  # otherwise keep the pgid job.json has (a finished job started elsewhere)
            fields["pgid"] = self.pgid
        if self.node_id is not None:
            fields["node_id"] = self.node_id
        update_job_meta(self.dir, {**fields, **extra}, defaults={"created": now, "pgid": None})

    # ------------------------------------------------------------------ watching
    def poll_events(self) -> list[dict[str, Any]]:
        """Events the trainer wrote since the last call (only this run's: history was skipped at start)."""
        if self._follower is None:
            return []
        new = list(self._follower.poll())
        self.events.extend(new)
        for ev in new:
            if ev.get("event") == "done":
                self.result = ev
        return new

    def running(self) -> bool:
        if self.process is None:
            return False
        self.process.poll()  # reap the group leader if it ended, so it stops counting as a member
        alive = group_alive(self.pgid)
        # Liveness unknown (Windows without psutil): the supervisor outlives every training process, so ask it.
        return self.process.returncode is None if alive is None else alive

    def poll(self) -> str:
        """Current status; once the child has ended, its events are drained and job.json gets the final status."""
        if self.status in ENDED or self.process is None:
            return self.status
        if self.process.poll() is None:
            return self.status
        # The supervisor leads the group and exits last: once it has, every training process has ended.
        self.poll_events()
        self._finalise()
        return self.status

    def _finalise(self) -> None:
        rc = self.process.returncode if self.process is not None else None
        if self.result is not None:
            self.status = FINISHED
        elif self.last("cancelled") is not None or self.cancel_requested:
            self.status = CANCELLED
        else:
            self.status = FAILED
        extra: dict[str, Any] = {"returncode": rc, "ended": round(time.time(), 3)}
        if self.status == FAILED:
            extra["error"] = self.failure_message(with_log=False)
        # job.json is the panel's record; a disk that filled up during training must not turn the child's result
        # into a traceback here (the panel still derives the end from the events and the dead process group).
        with contextlib.suppress(OSError):
            self.write_meta(**extra)

    def wait(self, timeout: float | None = None, interval: float = 0.2) -> str:
        """Block until the child ends (or ``timeout`` seconds pass); returns the status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() in ACTIVE:
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(interval)
        return self.status

    def cancel(self, timeout: float = 20.0) -> bool:
        """SIGTERM the whole process group, wait until every process has ended, SIGKILL after ``timeout`` seconds.

        The trainer answers SIGTERM at the next optimizer step with a resumable checkpoint and a ``cancelled`` event.
        Returns True when a signal was sent (False: nothing was running).
        """
        if self.process is None or self.status not in ACTIVE:
            return False
        self.cancel_requested = True
        if not self.running():
            self.poll()
            return False
        stop_group(self.process.pid, self.running, timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=_REAP_WAIT_S)
        self.poll()
        return True

    # ------------------------------------------------------------------ failures
    def run_log(self) -> list[str]:
        """This run's lines of train.log (after its RUN_HEADER line), progress-bar updates collapsed."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - _LOG_READ_BYTES))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        text = text.rsplit(RUN_HEADER, 1)[-1]
        # Progress bars write '\r'-separated updates: keep the last state of each line.
        return [ln.rsplit("\r", 1)[-1] for ln in text.split("\n")[1:] if ln.strip()]

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return "\n".join(self.run_log()[-lines:])

    def failure_message(self, with_log: bool = True) -> str:
        """The child's own words: its last ``error`` event, else the ``error: ...`` line the CLI prints for a bad
        input (before any event could be written), else the end of its log."""
        err = self.last("error")
        rc = self.process.returncode if self.process is not None else None
        if err is not None:
            reason = str(err.get("message") or "unknown error")
        else:
            said = [ln[len("error: ") :] for ln in self.run_log() if ln.startswith("error: ")]
            if said:
                reason = said[-1]
            else:
                reason = f"the training process exited with code {rc} without reporting an error"
                tail = self.log_tail()
                if tail:
                    reason += "; the end of its log:\n" + tail
        text = f"training job {self.id} failed: {reason}"
        if with_log:
            text += f"\nfull log: {self.log_path}"
        return text

    def raise_for_status(self) -> None:
        if self.status == FAILED:
            raise JobFailed(self.failure_message(), self.log_path)
