"""The job folder and everything done with it: layout, launch (accelerate), supervision, status, cancel, serving.

One ``accelerate launch`` child per job folder, under a supervisor that leads the job's process group. The
TrainLoRA node starts and follows jobs (:func:`start_job`, :class:`Job`); the web routes read the folders
(:func:`list_jobs`, :func:`job_state`, :func:`resolve_job_file`, :func:`cancel_job`). Modules, one subject each:

- :mod:`.layout`     folder layout, job id (config hash), safe folder lookup, job.json
- :mod:`.launch`     the ``accelerate launch`` command line and the child's environment
- :mod:`.supervise`  the supervisor process (subreaper, process-group leader); ``python -m ltx_train_lib.jobs``
- :mod:`.groups`     process-group members and the one liveness check
- :mod:`.status`     the one status vocabulary, derived from job.json + events + process group; finished results
- :mod:`.cancel`     the one way to stop a job: SIGTERM to its group
- :mod:`.job`        :class:`Job`, the starting process's handle; :mod:`.start`: :func:`start_job`
- :mod:`.monitor`    event history folded into the web panel's state (mirrored by web/lib/monitor_state.js)
- :mod:`.listing`    the routes' read side: list, summary, events, state
- :mod:`.files`      which file of a job folder a URL may serve
- :mod:`.errors`     what can go wrong, with the HTTP status a route answers

Pure Python at import time (no torch, no ComfyUI, no aiohttp): the ComfyUI node, the routes and the CLI import it.
"""

from __future__ import annotations

from .cancel import cancel_job, signal_group, stop_group
from .errors import (
    CancelError,
    JobAccessError,
    JobError,
    JobFailed,
    JobNotFoundError,
    JobReadError,
    UnsafeJobPathError,
)
from .files import resolve_job_file
from .groups import group_alive, group_members
from .job import Job
from .launch import DEFAULT_FSDP_BLOCK_CLASS, PARENT_PID_ENV, build_launch_command, child_env
from .layout import (
    CONFIG_FILE,
    EVENTS_FILE,
    JOB_FILE,
    LOG_FILE,
    check_job_id,
    events_path,
    job_dir,
    job_id_for,
    read_job_meta,
    resolve_config,
)
from .listing import job_events, job_state, job_summary, list_jobs
from .monitor import EMA_WEIGHT, ema, empty_state, fold_events, job_relative
from .start import start_job
from .status import (
    CANCELLED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    STATUSES,
    UNKNOWN,
    current_status,
    derive_status,
    finished_result,
)
from .supervise import SUPERVISOR_GRACE_S, supervise

__all__ = [
    "CANCELLED",
    "CONFIG_FILE",
    "DEFAULT_FSDP_BLOCK_CLASS",
    "EMA_WEIGHT",
    "EVENTS_FILE",
    "FAILED",
    "FINISHED",
    "JOB_FILE",
    "LOG_FILE",
    "PARENT_PID_ENV",
    "QUEUED",
    "RUNNING",
    "STATUSES",
    "SUPERVISOR_GRACE_S",
    "UNKNOWN",
    "CancelError",
    "Job",
    "JobAccessError",
    "JobError",
    "JobFailed",
    "JobNotFoundError",
    "JobReadError",
    "UnsafeJobPathError",
    "build_launch_command",
    "cancel_job",
    "check_job_id",
    "child_env",
    "current_status",
    "derive_status",
    "ema",
    "empty_state",
    "events_path",
    "finished_result",
    "fold_events",
    "group_alive",
    "group_members",
    "job_dir",
    "job_events",
    "job_id_for",
    "job_relative",
    "job_state",
    "job_summary",
    "list_jobs",
    "read_job_meta",
    "resolve_config",
    "resolve_job_file",
    "signal_group",
    "start_job",
    "stop_group",
    "supervise",
]
