"""What can go wrong with a job: it cannot start, its child failed, or a route cannot serve or cancel it.

Every message is meant for the user as it stands (no traceback needed). Messages of :class:`JobAccessError` go to
the browser, so they name a job by its id and a file by its path inside the job folder, never by a server path.
"""

from __future__ import annotations

from pathlib import Path

from ltx_train_lib.errors import LtxTrainError


class JobError(LtxTrainError):
    """A job cannot be started (e.g. the same job is already running, or its folder cannot be written)."""


class JobFailed(LtxTrainError):
    """The training child failed; the message is the child's own (last ``error`` event or log tail)."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


class JobAccessError(LtxTrainError):
    """A job or a job file cannot be served. ``http_status`` is what a web route should answer."""

    http_status = 400


class JobNotFoundError(JobAccessError):
    """No such job, or no such file in the job's folder."""

    http_status = 404


class UnsafeJobPathError(JobAccessError):
    """A job id or file path that tries to leave the job's folder (traversal, absolute path, link, encoding)."""

    http_status = 403


class JobReadError(JobAccessError):
    """A job's folder or file exists but cannot be read (permissions, I/O error)."""

    http_status = 500


class CancelError(JobAccessError):
    """The job cannot be cancelled from here (no process group of its own, or this platform cannot signal one)."""

    http_status = 409
