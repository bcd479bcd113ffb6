"""The web routes' read side: the job list, one job's summary, its events since an index, its folded state.

Pure Python (no ComfyUI, no aiohttp), so the CLI and tests can use it too. A job folder that cannot be read is
reported as a :class:`~ltx_train_lib.jobs.errors.JobReadError` (or an ``unknown`` list entry), never as a raw OSError
whose text would name server paths.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ltx_train_lib.events import parse_event_line, read_events

from .errors import JobAccessError, JobReadError
from .layout import events_path, is_job_folder, job_dir, read_job_meta, read_job_meta_or_empty
from .monitor import _finite, fold_events
from .status import FAILED, RUNNING, UNKNOWN, current_status

# Summaries read only the end of a long events file; a step event is almost always in its last 64 KiB.
TAIL_BYTES = 64 * 1024


@contextlib.contextmanager
def _reading(job_id: str) -> Iterator[None]:
    """Turn an OSError while reading a job into one message naming the job and the file, not the server path."""
    try:
        yield
    except OSError as exc:
        name = f" {Path(exc.filename).name}" if exc.filename else ""
        raise JobReadError(f"job {job_id!r}:{name} cannot be read ({exc.strerror or type(exc).__name__})") from exc


def _tail_events(path: Path) -> list[dict[str, Any]]:
    """The complete events in the last TAIL_BYTES of the file (the first line there may be cut: skip it)."""
    size = path.stat().st_size
    if size <= TAIL_BYTES:
        return read_events(path)
    with open(path, "rb") as fh:
        fh.seek(size - TAIL_BYTES)
        data = fh.read().decode("utf-8", errors="replace")
    lines = data.split("\n")[1:]
    complete = lines[:-1]  # the last element is "" or a line still being written
    return [rec for rec in (parse_event_line(line) for line in complete) if rec is not None]


def _summarise(folder: Path, meta: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    status, note = current_status(meta, events)
    last_step = next((e for e in reversed(events) if e.get("event") == "step"), None)
    last_error = next((e for e in reversed(events) if e.get("event") == "error"), None)
    total = next((e["total"] for e in reversed(events) if isinstance(e.get("total"), int)), None)
    step = max((e["step"] for e in events if isinstance(e.get("step"), int)), default=None)
    times = [t for t in (_finite(e.get("time")) for e in events) if t is not None]
    ev_file = events_path(folder, meta)
    updated = max(times) if times else None
    if updated is None:
        updated = _finite(meta.get("created"))
    error = None
    if status == FAILED:
        error = note or (str(last_error.get("message")) if last_error else "training failed")
    return {
        "id": folder.name,
        "name": str(meta.get("name") or folder.name),
        "created": _finite(meta.get("created")),
        "updated": updated,
        "status": status,
        "step": step,
        "total": total,
        "loss": _finite(last_step.get("loss")) if last_step else None,
        "node_id": meta.get("node_id"),
        "error": error,
        "has_events": ev_file.is_file(),
    }


def _unknown(folder: Path, message: str) -> dict[str, Any]:
    """The list entry of a job whose folder cannot be read: shown, with the reason, rather than hidden."""
    return {
        "id": folder.name,
        "name": folder.name,
        "created": None,
        "updated": None,
        "status": UNKNOWN,
        "step": None,
        "total": None,
        "loss": None,
        "node_id": None,
        "error": message,
        "has_events": False,
    }


def list_jobs(root: str | Path) -> list[dict[str, Any]]:
    """Summaries of every job folder under ``root``, newest first. A missing root is an empty list."""
    root_real = Path(root).resolve()
    if not root_real.is_dir():
        return []
    jobs = []
    try:
        entries = list(root_real.iterdir())
    except OSError as exc:
        raise JobReadError(f"the jobs folder cannot be read ({exc.strerror or type(exc).__name__})") from exc
    for folder in entries:
        if not is_job_folder(root_real, folder):
            continue
        try:
            jobs.append(job_summary(root_real, folder.name))
        except JobReadError as exc:
            jobs.append(_unknown(folder, str(exc)))
        except JobAccessError:
            continue  # removed while we were listing
    jobs.sort(key=lambda j: (j["created"] or j["updated"] or 0, j["id"]), reverse=True)
    return jobs


def job_summary(root: str | Path, job_id: str) -> dict[str, Any]:
    """The list entry of one job (as in :func:`list_jobs`), with its status derived now."""
    folder = job_dir(root, job_id)
    try:
        meta = read_job_meta(folder)
    except ValueError as exc:
        return _unknown(folder, str(exc))
    ev_file = events_path(folder, meta)
    with _reading(job_id):
        summary = _summarise(folder, meta, _tail_events(ev_file) if ev_file.is_file() else [])
        if ev_file.is_file() and summary["step"] is None and ev_file.stat().st_size > TAIL_BYTES:
            summary = _summarise(folder, meta, read_events(ev_file))  # no step in the tail: read it all
    return summary


def job_events(root: str | Path, job_id: str, since: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events ``since`` (an index into the append-only file) and the index to ask for next time."""
    folder = job_dir(root, job_id)
    meta = read_job_meta_or_empty(folder)
    with _reading(job_id):
        events = read_events(events_path(folder, meta))
    since = max(0, since)
    return events[since:], len(events)


def job_state(root: str | Path, job_id: str, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The folded state of one job (see :func:`fold_events`) with the status derived from events and job.json."""
    folder = job_dir(root, job_id)
    try:
        meta = read_job_meta(folder)
        meta_error = None
    except ValueError as exc:
        meta, meta_error = {}, str(exc)
    with _reading(job_id):
        if events is None:
            events = read_events(events_path(folder, meta))
        output_dir = Path(str(meta["output_dir"])) if meta.get("output_dir") else None
        state = fold_events(events, folder, output_dir)
        summary = _summarise(folder, meta, events)
    state["status"] = summary["status"] if not meta_error else UNKNOWN
    if state["error"] is not None:
        state["error"]["log"] = meta.get("log")
    elif summary["status"] == FAILED:
        state["error"] = {"message": summary["error"], "log": meta.get("log")}
    if meta_error:
        state["error"] = {"message": meta_error, "log": None}
    if state["status"] != RUNNING:
        state["eta_s"] = state["eta_at"] = None
    state.update(
        id=folder.name,
        name=summary["name"],
        created=summary["created"],
        node_id=meta.get("node_id"),
        job_dir=str(folder),
        output_dir=str(output_dir) if output_dir else str(folder),
        log=meta.get("log"),
        config=meta.get("config"),
        now=time.time(),
    )
    return state
