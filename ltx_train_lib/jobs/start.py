"""Starting a job: the folder for a config, the finished-result shortcut, the guard against a second start, the spawn.

Queueing the same config again maps to the same folder (see :mod:`.layout`): a running job is not started twice, a
finished one returns its result at once without spawning anything, anything else starts (and the trainer resumes
from the newest checkpoint there).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import ConfigError
from ltx_train_lib.events import EventFollower
from ltx_train_lib.fileio import write_text_atomic
from ltx_train_lib.platform_compat import own_group_id

from .cancel import stop_group
from .errors import JobError
from .groups import group_alive
from .job import Job
from .launch import build_launch_command, child_env
from .layout import job_id_for, read_job_meta_or_empty, resolve_config
from .status import FINISHED, RUNNING, finished_result, status_from_meta
from .supervise import spawn_supervised

# A run stopped right after its start has no checkpoint to save: it only needs to get out of the way.
_ABANDON_TIMEOUT_S = 20.0


def _cannot(action: str, folder: Path, exc: OSError) -> JobError:
    return JobError(
        f"training job {folder.name}: cannot {action} in {folder} ({exc.strerror or exc}); "
        "check that the ComfyUI output folder is writable and the disk is not full"
    )


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

    meta = read_job_meta_or_empty(folder)
    pgid = meta.get("pgid")
    if status_from_meta(meta) == RUNNING and group_alive(pgid, meta.get("created")) and pgid != own_group_id():
        raise JobError(
            f"training job {job_id} ({meta.get('name')}) is already running (process group {pgid}) in {folder}; "
            "wait for it to finish or cancel it from the LTX Trainer panel, then queue again"
        )
    done = finished_result(folder)
    if done is not None:
        job.status, job.result = FINISHED, done
        if status_from_meta(meta) != FINISHED or meta.get("name") != job.name:
            # Only the panel's name and status: a read-only folder must not hide a finished result.
            with contextlib.suppress(OSError):
                job.write_meta()
        return job

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobError(
            f"jobs folder {root}: cannot create the job folder ({exc}); check the path and permissions"
        ) from None
    try:
        write_text_atomic(job.config_path, dump_config(cfg))
    except OSError as exc:
        raise _cannot("write its training config", folder, exc) from None
    follower = EventFollower(job.events_path)
    list(follower.poll())  # skip earlier runs' events: this job reports only what this run does
    job._follower = follower

    if launch_command is None:
        launch_command = build_launch_command(str(job.config_path), num_processes, disable_progress_bars=True)
    try:
        job.process = spawn_supervised(launch_command, folder, job.log_path, child_env(env, num_processes))
    except OSError as exc:
        raise _cannot("start the training process", folder, exc) from None
    job.status, job.spawned = RUNNING, True
    try:
        job.write_meta(started=round(time.time(), 3), error=None, returncode=None)
    except OSError as exc:
        # Without job.json no panel can see or cancel this run: stop it rather than leave it running unseen.
        stop_group(job.process.pid, job.running, _ABANDON_TIMEOUT_S)
        raise _cannot("write job.json", folder, exc) from None
    return job
