"""Start, watch and cancel training jobs: one ``accelerate launch`` child per job folder.

A job folder ``<jobs root>/<job id>/`` holds ``job.json`` (what the parent knows, written atomically),
``training_config.yaml`` (the resolved config the child reads), ``train.log`` (the child's stdout and stderr),
``events.jsonl`` (written by the trainer, see :mod:`ltx_train_lib.events`) and every training output.

The job id is a hash of the resolved config without ``output_dir`` (plus the process count and an optional
identity, e.g. a dataset fingerprint), so queueing the same job again maps to the same folder: the trainer resumes
from the newest checkpoint there, and a finished job returns its result at once without spawning anything.

Process tree: ``python -m ltx_train_lib.jobs supervise -- accelerate launch ...`` in a new session. The supervisor is
the process-group leader and a child subreaper: ``accelerate launch`` exits on SIGTERM before its workers do, and on
machines whose init does not reap orphans (containers) the workers would linger as zombies and keep the group
"alive". The supervisor reaps every descendant and exits last, so "the process group is gone" really means every
training process has ended. Cancel = SIGTERM to the group (the trainer saves a resumable checkpoint and emits
``cancelled``), SIGKILL after a timeout.

Pure Python at import time (no torch): the ComfyUI node and the web panel import it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import ConfigError, LtxTrainError
from ltx_train_lib.events import EVENTS_FILE, EventFollower, read_events
from ltx_train_lib.fileio import write_text_atomic

JOB_FILE = "job.json"
CONFIG_FILE = "training_config.yaml"
LOG_FILE = "train.log"
# The trainer stops (with a checkpoint) when this process dies; the name is ltx_train_lib.training.trainer's
# PARENT_PID_ENV, restated here because importing the trainer imports torch.
PARENT_PID_ENV = "LTX_TRAIN_PARENT_PID"
TRIGGER_WORD_ENV = "LTX_TRAIN_TRIGGER_WORD"
# After the launcher has exited, stragglers (dataloader workers, compile pools) get this long before SIGKILL.
SUPERVISOR_GRACE_S = 30.0
_LOG_TAIL_LINES = 25
_RUN_HEADER = "===== ltx_train_lib.jobs: starting"


class JobError(LtxTrainError):
    """A job cannot be started (e.g. the same job is already running)."""


class JobFailed(LtxTrainError):
    """The training child failed; the message is the child's own (last ``error`` event or log tail)."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


# --------------------------------------------------------------------------------------------------- processes


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


def group_alive(pgid: int | None) -> bool:
    """Whether any process of the group still runs. Zombies do not count: an init that never reaps orphans (common
    in containers) would otherwise keep a finished group alive forever."""
    if not isinstance(pgid, int) or pgid <= 1:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    members = group_members(pgid)
    return True if members is None else bool(members)


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
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # A Python handler, not SIG_IGN: handlers reset to default in the exec'd child, SIG_IGN would be inherited.
        signal.signal(sig, lambda *_: None)
    child = subprocess.Popen(cmd)
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
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(straggler, signal.SIGKILL)
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


# ------------------------------------------------------------------------------------------------------ config


def resolve_config(config: Any) -> Any:
    """A TrainerConfig from a TrainerConfig or a dict (validated: a ConfigError names the field and the fix)."""
    from ltx_train_lib.config import TrainerConfig, config_from_dict

    if isinstance(config, TrainerConfig):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(dict(config), "training config")
    raise ConfigError(f"training config: expected a TrainerConfig or a dict, got {type(config).__name__}")


def job_id_for(config: Any, num_processes: int = 1, identity: str | None = None) -> str:
    """Stable id of a job: the resolved config without ``output_dir``, the process count (a checkpoint resumes only
    with the same count) and ``identity`` (what the config does not show, e.g. the dataset's content)."""
    cfg = resolve_config(config)
    data = cfg.model_dump(mode="json")
    data.pop("output_dir", None)
    payload = json.dumps({"config": data, "num_processes": int(num_processes), "identity": identity}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# -------------------------------------------------------------------------------------------------------- jobs


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_lifecycle(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    lifecycle = [e for e in events if e.get("event") in ("started", "done", "cancelled", "error")]
    return lifecycle[-1] if lifecycle else None


def finished_result(folder: Path) -> dict[str, Any] | None:
    """The ``done`` event of a finished job whose weights are all still on disk; None otherwise."""
    last = _last_lifecycle(read_events(folder / EVENTS_FILE))
    if last is None or last.get("event") != "done":
        return None
    outputs = last.get("outputs") or {}
    weights = [v for k, v in outputs.items() if k in ("lora", "lora_comfy", "model")]
    if not weights or not all(Path(str(p)).is_file() for p in weights):
        return None  # deleted by hand: the re-run rewrites them from the final checkpoint
    return last


@dataclass
class Job:
    """A training job folder, and its child process when this process started one."""

    id: str
    dir: Path
    name: str
    num_processes: int = 1
    process: subprocess.Popen | None = None
    status: str = "queued"  # queued | running | done | failed | cancelled
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
        path = self.dir / JOB_FILE
        meta = _read_json(path)
        meta.update(
            id=self.id,
            name=self.name,
            status=self.status,
            pgid=self.pgid if self.pgid is not None else meta.get("pgid"),
            output_dir=str(self.dir),
            config=CONFIG_FILE,
            log=LOG_FILE,
            num_processes=self.num_processes,
            updated=round(time.time(), 3),
        )
        meta.setdefault("created", round(time.time(), 3))
        if self.node_id is not None:
            meta["node_id"] = self.node_id
        meta.update(extra)
        write_text_atomic(path, json.dumps(meta, indent=2) + "\n")

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
        return group_alive(self.pgid)

    def poll(self) -> str:
        """Current status; once the child has ended, its events are drained and job.json gets the final status."""
        if self.status in ("done", "failed", "cancelled") or self.process is None:
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
            self.status = "done"
        elif self.last("cancelled") is not None or self.cancel_requested:
            self.status = "cancelled"
        else:
            self.status = "failed"
        extra: dict[str, Any] = {"returncode": rc, "ended": round(time.time(), 3)}
        if self.status == "failed":
            extra["error"] = self.failure_message(with_log=False)
        self.write_meta(**extra)

    def wait(self, timeout: float | None = None, interval: float = 0.2) -> str:
        """Block until the child ends (or ``timeout`` seconds pass); returns the status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() in ("queued", "running"):
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(interval)
        return self.status

    def cancel(self, timeout: float = 20.0) -> bool:
        """SIGTERM the whole process group, wait until every process has ended, SIGKILL after ``timeout`` seconds.

        The trainer answers SIGTERM at the next optimizer step with a resumable checkpoint and a ``cancelled`` event.
        Returns True when a signal was sent (False: nothing was running).
        """
        if self.process is None or self.status not in ("queued", "running"):
            return False
        self.cancel_requested = True
        pgid = self.pgid
        if not self.running():
            self.poll()
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.poll()
        return True

    # ------------------------------------------------------------------ failures
    def run_log(self) -> list[str]:
        """This run's lines of train.log (after the header start_job wrote), progress-bar updates collapsed."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 256 * 1024))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        text = text.rsplit(_RUN_HEADER, 1)[-1]
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
        if self.status == "failed":
            raise JobFailed(self.failure_message(), self.log_path)


def _child_env(env: Mapping[str, str] | None, num_processes: int) -> dict[str, str]:
    child = dict(os.environ)
    child.update({k: str(v) for k, v in (env or {}).items()})
    child["PYTHONUNBUFFERED"] = "1"
    child[PARENT_PID_ENV] = str(os.getpid())
    # The child imports ltx_train_lib from the same place we did (ComfyUI loads the pack by path, not by install).
    lib_root = str(Path(__file__).resolve().parents[1])
    paths = [p for p in child.get("PYTHONPATH", "").split(os.pathsep) if p]
    if lib_root not in paths:
        child["PYTHONPATH"] = os.pathsep.join([lib_root, *paths])
    child.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, num_processes))))
    return child


def start_job(
    config: Any,
    jobs_root: str | Path,
    *,
    name: str,
    num_processes: int = 1,
    env: Mapping[str, str] | None = None,
    identity: str | None = None,
    node_id: str | None = None,
    launch_command: list[str] | None = None,
) -> Job:
    """Start (or resume, or return the finished result of) the training job for ``config``.

    ``config``'s ``output_dir`` is replaced by the job folder. ``launch_command`` overrides the trainer command
    (tests); by default it is ``accelerate launch ... --module ltx_train_lib.cli.train <job>/training_config.yaml``.
    """
    from ltx_train_lib.config import config_from_dict, dump_config

    if not isinstance(num_processes, int) or num_processes < 1:
        raise ConfigError(f"num_processes: must be a whole number >= 1, got {num_processes!r}; use 1 for one GPU/CPU")
    cfg = resolve_config(config)
    job_id = job_id_for(cfg, num_processes, identity)
    root = Path(jobs_root).expanduser().resolve()
    folder = root / job_id
    cfg = config_from_dict({**cfg.model_dump(mode="json"), "output_dir": str(folder)}, "training config")
    job = Job(id=job_id, dir=folder, name=name or job_id, num_processes=num_processes, node_id=node_id)

    meta = _read_json(folder / JOB_FILE)
    if meta.get("status") == "running" and group_alive(meta.get("pgid")) and meta.get("pgid") != os.getpgrp():
        raise JobError(
            f"training job {job_id} ({meta.get('name')}) is already running (process group {meta['pgid']}) in {folder}; "
            "wait for it to finish or cancel it from the LTX Trainer panel, then queue again"
        )
    done = finished_result(folder)
    if done is not None:
        job.status, job.result = "done", done
        if meta.get("status") != "done" or meta.get("name") != job.name:
            job.write_meta()
        return job

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobError(f"jobs folder {root}: cannot create the job folder ({exc}); check the path and permissions") from None
    write_text_atomic(job.config_path, dump_config(cfg))
    follower = EventFollower(job.events_path)
    list(follower.poll())  # skip earlier runs' events: this job reports only what this run does
    job._follower = follower

    if launch_command is None:
        from ltx_train_lib.cli.train_distributed import build_launch_command

        launch_command = build_launch_command(str(job.config_path), num_processes, disable_progress_bars=True)
    cmd = [sys.executable, "-m", "ltx_train_lib.jobs", "supervise", "--", *launch_command]
    child_env = _child_env(env, num_processes)
    with open(job.log_path, "ab") as log:
        log.write(f"\n{_RUN_HEADER} {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(launch_command)}\n".encode())
        log.flush()
        job.process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(folder),
            env=child_env,
            start_new_session=True,  # its own process group: Cancel signals the whole tree, nothing else
        )
    job.status, job.spawned = "running", True
    job.write_meta(started=round(time.time(), 3), error=None, returncode=None)
    return job


def _main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "supervise" and argv[1] == "--" and len(argv) > 2:
        return supervise(argv[2:])
    print("usage: python -m ltx_train_lib.jobs supervise -- COMMAND [ARGS...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
