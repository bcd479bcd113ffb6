"""Read training-job folders for the web monitor: list jobs, fold their event history, serve their files, cancel.

A jobs root holds one folder per job (``<root>/<job_id>/``) with ``job.json`` (written atomically by the TrainLoRA
node), ``events.jsonl`` (appended by the trainer, see :mod:`ltx_train_lib.events`) and the training outputs.

``job.json`` says what the node last knew; the event stream says what the trainer last did. When they disagree the
events win (the node may have died before updating ``job.json``), and "running" is believed only while the job's
process group is alive. Pure Python: no ComfyUI, no aiohttp, so the CLI and tests can use it too.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import stat
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .errors import LtxTrainError
from .events import EVENTS_FILE, parse_event_line, read_events

JOB_FILE = "job.json"
# Displayed statuses. "finished" is the display name of job.json's "done"; "unknown" is a folder we cannot read.
STATUSES = ("queued", "running", "finished", "failed", "cancelled", "unknown")
_TERMINAL = {"done": "finished", "cancelled": "cancelled", "error": "failed"}
_META_STATUS = {
    "done": "finished",
    "failed": "failed",
    "cancelled": "cancelled",
    "running": "running",
    "queued": "queued",
}
# A plain folder name: no separators, no leading dot (hides `.`/`..` and the atomic writers' `.x.tmp` folders).
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$")
# Percent-escapes that still spell '.', '/', '\' or NUL after one round of decoding mean double encoding: refuse.
_ENCODED_SPECIAL_RE = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)
# Weight of the exponential moving average of the loss (TensorBoard-style, bias-corrected); web/lib uses the same.
EMA_WEIGHT = 0.9
# Summaries read only the end of a long events file; a step event is almost always in its last 64 KiB.
_TAIL_BYTES = 64 * 1024


class JobAccessError(LtxTrainError):
    """A job or a job file cannot be served. ``http_status`` is what a web route should answer."""

    http_status = 400


class JobNotFoundError(JobAccessError):
    """No such job, or no such file in the job's folder."""

    http_status = 404


class UnsafeJobPathError(JobAccessError):
    """A job id or file path that tries to leave the job's folder (traversal, absolute path, symlink, encoding)."""

    http_status = 403


class CancelError(JobAccessError):
    """The job cannot be cancelled from here (not running, or this platform cannot signal process groups)."""

    http_status = 409


# --------------------------------------------------------------------------------------------------- job folders


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` if it is a plain folder name, else raise :class:`UnsafeJobPathError`."""
    if not isinstance(job_id, str) or not _JOB_ID_RE.match(job_id):
        raise UnsafeJobPathError(
            f"job id {job_id!r} is not a plain folder name (letters, digits, '_', '-', '.', '+'; no leading dot)"
        )
    return job_id


def job_dir(root: str | Path, job_id: str) -> Path:
    """The job's folder, checked to exist and to lie inside ``root`` (a job folder symlinked elsewhere is refused)."""
    check_job_id(job_id)
    root_real = Path(root).resolve()
    folder = root_real / job_id
    if not folder.is_dir():
        raise JobNotFoundError(f"no job {job_id!r} in {root_real}")
    if folder.resolve().parent != root_real:
        raise UnsafeJobPathError(f"job folder {job_id!r} points outside the jobs root")
    return folder


def read_job_meta(folder: Path) -> dict[str, Any]:
    """job.json as a dict; {} when absent (a CLI run has only events). Raises ValueError when unreadable."""
    path = folder / JOB_FILE
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable job.json ({exc})") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: job.json is not a JSON object")
    return meta


def events_path(folder: Path, meta: dict[str, Any]) -> Path:
    """The job's events file: in its folder, else in its output_dir (job.json allows output elsewhere)."""
    own = folder / EVENTS_FILE
    if own.is_file() or not meta.get("output_dir"):
        return own
    return Path(str(meta["output_dir"])) / EVENTS_FILE


# ------------------------------------------------------------------------------------------------ process groups


def _proc_start_time(pid: int) -> float | None:
    """Unix start time of ``pid`` from /proc (Linux), or None when unknown."""
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


def process_group_alive(pgid: Any, created: Any = None) -> bool | None:
    """True/False when known, None when this platform cannot tell (Windows: no process groups to probe).

    ``created`` (the job's creation time) guards against a recycled pid: after a reboot or a long time, the number
    may belong to an unrelated process group that started before the job did; that group is not the job's.
    """
    if not isinstance(pgid, int) or isinstance(pgid, bool) or pgid <= 1:
        return False
    if not hasattr(os, "killpg"):
        return None
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    if isinstance(created, (int, float)):
        started = _proc_start_time(pgid)
        # 5 s slack: job.json's "created" may be written just after the spawn.
        if started is not None and started < created - 5:
            return False
    from ltx_train_lib.jobs import group_members

    members = group_members(pgid)
    # Zombies do not count: where init never reaps orphans (containers) a finished group would look alive forever.
    return True if members is None else bool(members)


def cancel_job(root: str | Path, job_id: str) -> bool:
    """SIGTERM the job's process group (the trainer then saves a resumable checkpoint and writes ``cancelled``).

    Returns True when a signal was sent, False when the job is not running (already ended, or its process is gone).
    Raises :class:`CancelError` where process groups cannot be signalled (Windows: use ComfyUI's Cancel button).
    """
    folder = job_dir(root, job_id)
    try:
        meta = read_job_meta(folder)
    except ValueError as exc:
        raise CancelError(str(exc)) from exc
    pgid = meta.get("pgid")
    if isinstance(pgid, int) and hasattr(os, "getpgrp") and pgid == os.getpgrp():
        # Checked first: whatever the job's state, our own group is ComfyUI itself and is never signalled.
        raise CancelError(f"job {job_id!r} has no process group of its own to signal (pgid={pgid!r})")
    summary = _summarise(folder, meta, read_events(events_path(folder, meta)))
    if summary["status"] != "running":
        return False
    if not hasattr(os, "killpg"):
        raise CancelError("cancelling from the panel needs a POSIX system; use ComfyUI's Cancel button instead")
    if not isinstance(pgid, int) or pgid <= 1 or pgid == os.getpgrp():
        # Never signal our own group (that would be ComfyUI itself) or a job that recorded no process group.
        raise CancelError(f"job {job_id!r} has no process group of its own to signal (pgid={pgid!r})")
    if not process_group_alive(pgid, meta.get("created")):
        return False
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------- file access


def resolve_job_file(root: str | Path, job_id: str, relpath: str) -> Path:
    """The path of a regular file inside the job's folder, for serving over HTTP.

    ``relpath`` is decoded once (routes may hand it over still percent-encoded); anything that still spells an escape
    for '.', '/', '\\' or NUL after that, any backslash or NUL, an absolute path, a '..' segment, or a file (or
    symlink) that resolves outside the job folder raises :class:`UnsafeJobPathError`; a missing file or a non-file
    raises :class:`JobNotFoundError`.
    """
    folder = job_dir(root, job_id)
    if not isinstance(relpath, str) or not relpath:
        raise JobNotFoundError("no file path given")
    try:
        decoded = unquote(relpath, errors="strict") if "%" in relpath else relpath
    except UnicodeDecodeError as exc:
        raise UnsafeJobPathError(f"refused file path {relpath!r}: bad percent-encoding") from exc
    if _ENCODED_SPECIAL_RE.search(decoded):
        raise UnsafeJobPathError(f"refused file path {relpath!r}: encoded more than once")
    if "\\" in decoded or "\x00" in decoded:
        raise UnsafeJobPathError(f"refused file path {relpath!r}: backslash or NUL")
    if decoded.startswith("/") or re.match(r"^[A-Za-z]:", decoded):
        raise UnsafeJobPathError(f"refused file path {relpath!r}: absolute path")
    parts = decoded.split("/")
    if any(part in ("..", ".") for part in parts):
        raise UnsafeJobPathError(f"refused file path {relpath!r}: '.' or '..' segment")
    candidate = folder.joinpath(*[p for p in parts if p])
    try:
        real = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise JobNotFoundError(f"job {job_id!r} has no file {decoded!r}") from exc
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise UnsafeJobPathError(f"refused file path {relpath!r}: {exc}") from exc
    if not real.is_relative_to(folder.resolve()):
        raise UnsafeJobPathError(f"refused file path {relpath!r}: it resolves outside the job folder")
    if not stat.S_ISREG(real.stat().st_mode):
        raise JobNotFoundError(f"job {job_id!r}: {decoded!r} is not a regular file")
    return real


def job_relative(path: Any, folder: Path, output_dir: Path | None) -> str | None:
    """A path from an event as a '/'-separated path relative to the job folder, or None when it lies outside.

    Relative paths in events are relative to the run's output_dir.
    """
    if not path:
        return None
    p = Path(str(path))
    if not p.is_absolute():
        p = (output_dir or folder) / p
    try:
        rel = p.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return None
    return rel.as_posix()


# ------------------------------------------------------------------------------------------------------- folding


def _finite(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else None
    )


def empty_state() -> dict[str, Any]:
    return {
        "status": "queued",
        "step": None,
        "total": None,
        "loss": None,
        "smoothed_loss": None,
        "lr": None,
        "sec_per_step": None,
        "eta_s": None,
        "eta_at": None,
        "memory_mb": None,
        "steps": [],
        "samples": [],
        "checkpoints": [],
        "runs": [],
        "error": None,
        "cancelled": None,
        "done": None,
        "started_at": None,
        "updated": None,
        "event_count": 0,
    }


def fold_events(
    events: list[dict[str, Any]], folder: Path | None = None, output_dir: Path | None = None
) -> dict[str, Any]:
    """Fold an event history (file order) into the monitor state. web/lib/monitor_state.js mirrors these rules:

    - a ``started`` opens a run; on a resume (step > 0) the steps after its start step are dropped, because the
      run repeats them from the checkpoint and its values replace the old ones;
    - an event seen before (same type, time and step) is skipped;
    - a ``step`` replaces an earlier entry with the same step number;
    - ``done`` / ``cancelled`` / ``error`` end the run; a later ``started`` makes the job running again.
    """
    state = empty_state()
    steps: dict[int, dict[str, Any]] = {}
    out_dir = output_dir
    seen: set[tuple[Any, ...]] = set()
    for ev in events:
        kind = ev.get("event")
        t = _finite(ev.get("time"))
        key = (kind, t, ev.get("step"))
        if key in seen:
            continue  # the same event delivered twice (e.g. a file copied together with its live echo)
        seen.add(key)
        state["event_count"] += 1
        if t is not None:
            state["updated"] = max(state["updated"] or t, t)
        step = ev.get("step") if isinstance(ev.get("step"), int) else None
        if kind == "started":
            start = step or 0
            for s in [s for s in steps if s > start]:
                del steps[s]
            state["samples"] = [x for x in state["samples"] if (x["step"] or 0) <= start]
            state["runs"].append({"step": start, "time": t, "resumed_from": ev.get("resumed_from")})
            state.update(status="running", error=None, cancelled=None, done=None, step=start)
            if state["started_at"] is None:
                state["started_at"] = t
            if isinstance(ev.get("total"), int):
                state["total"] = ev["total"]
            if ev.get("output_dir") and output_dir is None:
                out_dir = Path(str(ev["output_dir"]))
        elif kind == "step" and step is not None:
            steps[step] = {"step": step, "loss": _finite(ev.get("loss")), "lr": _finite(ev.get("lr")), "time": t}
            state["step"] = max(state["step"] or 0, step)
            if isinstance(ev.get("total"), int):
                state["total"] = ev["total"]
            for key in ("sec_per_step", "memory_mb"):
                if _finite(ev.get(key)) is not None:
                    state[key] = _finite(ev.get(key))
            eta = _finite(ev.get("eta_s"))
            state["eta_s"] = eta
            state["eta_at"] = (t + eta) if (eta is not None and t is not None) else None
            if state["status"] == "queued":
                state["status"] = "running"
        elif kind == "sample":
            paths = [str(p) for p in ev.get("paths") or []]
            files = [job_relative(p, folder, out_dir) for p in paths] if folder else [None] * len(paths)
            sample = {"step": step, "time": t, "paths": paths, "files": files, "prompts": list(ev.get("prompts") or [])}
            state["samples"] = [x for x in state["samples"] if x["step"] != step] + [sample]
        elif kind == "checkpoint":
            path = ev.get("path")
            file = job_relative(path, folder, out_dir) if folder else None
            state["checkpoints"] = [c for c in state["checkpoints"] if c["step"] != step]
            state["checkpoints"].append({"step": step, "path": path, "file": file, "time": t})
        elif kind in _TERMINAL:
            state["status"] = _TERMINAL[kind]
            state["eta_s"] = state["eta_at"] = None
            if step is not None:
                state["step"] = max(state["step"] or 0, step)
            if kind == "done":
                state["done"] = {"seconds": _finite(ev.get("seconds")), "outputs": ev.get("outputs") or {}}
                if isinstance(ev.get("total"), int):
                    state["total"] = ev["total"]
            elif kind == "cancelled":
                state["cancelled"] = {"step": step, "checkpoint": ev.get("checkpoint"), "reason": ev.get("reason")}
            else:
                # error events name no log (see events.ErrorEvent): job_state fills it in from job.json
                state["error"] = {"message": str(ev.get("message") or "training failed"), "log": None}
    state["steps"] = [steps[s] for s in sorted(steps)]
    _smooth(state)
    return state


def ema(values: list[float | None], weight: float = EMA_WEIGHT) -> list[float | None]:
    """Bias-corrected exponential moving average; None (a non-finite loss) stays None and does not poison the mean."""
    out: list[float | None] = []
    acc, n = 0.0, 0
    for v in values:
        if v is None:
            out.append(None)
            continue
        n += 1
        acc = acc * weight + (1 - weight) * v
        out.append(acc / (1 - weight**n))
    return out


def _smooth(state: dict[str, Any]) -> None:
    smoothed = ema([s["loss"] for s in state["steps"]])
    for entry, value in zip(state["steps"], smoothed, strict=True):
        entry["smoothed"] = value
    finite_losses = [s for s in state["steps"] if s["loss"] is not None]
    state["loss"] = finite_losses[-1]["loss"] if finite_losses else None
    state["smoothed_loss"] = finite_losses[-1]["smoothed"] if finite_losses else None
    lrs = [s["lr"] for s in state["steps"] if s["lr"] is not None]
    state["lr"] = lrs[-1] if lrs else None


def derive_status(meta: dict[str, Any], events: list[dict[str, Any]], alive: bool | None) -> tuple[str, str | None]:
    """(status, note) of a job. ``alive``: whether its process group lives (None: no pgid, or cannot tell).

    A final event (done/cancelled/error after the last started) decides. Otherwise a live process means running;
    a dead one means job.json's final status if it has one (the node saw the end, e.g. a kill before the trainer
    could write), else failed: the process vanished without a word.
    """
    lifecycle = [e for e in events if e.get("event") == "started" or e.get("event") in _TERMINAL]
    if lifecycle and lifecycle[-1]["event"] in _TERMINAL:
        return _TERMINAL[lifecycle[-1]["event"]], None
    if alive is True:
        return "running", None
    meta_status = _META_STATUS.get(str(meta.get("status")))
    if meta_status in ("finished", "failed", "cancelled"):
        return meta_status, None
    if lifecycle or meta_status == "running":
        if alive is False:
            return "failed", "the training process ended without reporting (killed or crashed); see its log"
        return "running", None
    if meta_status is not None:
        return meta_status, None
    return ("queued", None) if meta else ("unknown", None)


# ------------------------------------------------------------------------------------------------------ read side


def _tail_events(path: Path) -> list[dict[str, Any]]:
    """The complete events in the last _TAIL_BYTES of the file (the first line there may be cut: skip it)."""
    size = path.stat().st_size
    if size <= _TAIL_BYTES:
        return read_events(path)
    with open(path, "rb") as fh:
        fh.seek(size - _TAIL_BYTES)
        data = fh.read().decode("utf-8", errors="replace")
    lines = data.split("\n")[1:]
    complete = lines[:-1]  # the last element is "" or a line still being written
    return [rec for rec in (parse_event_line(line) for line in complete) if rec is not None]


def _summarise(folder: Path, meta: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    alive = process_group_alive(meta.get("pgid"), meta.get("created")) if meta.get("pgid") is not None else None
    status, note = derive_status(meta, events, alive)
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
    if status == "failed":
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


def list_jobs(root: str | Path) -> list[dict[str, Any]]:
    """Summaries of every job folder under ``root``, newest first. A missing root is an empty list."""
    root_real = Path(root).resolve()
    if not root_real.is_dir():
        return []
    jobs = []
    for folder in root_real.iterdir():
        if not _JOB_ID_RE.match(folder.name) or not folder.is_dir() or folder.resolve().parent != root_real:
            continue
        if not (folder / JOB_FILE).is_file() and not (folder / EVENTS_FILE).is_file():
            continue  # not a job folder
        try:
            jobs.append(job_summary(root_real, folder.name))
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
        return {
            "id": folder.name,
            "name": folder.name,
            "created": None,
            "updated": None,
            "status": "unknown",
            "step": None,
            "total": None,
            "loss": None,
            "node_id": None,
            "error": str(exc),
            "has_events": False,
        }
    ev_file = events_path(folder, meta)
    summary = _summarise(folder, meta, _tail_events(ev_file) if ev_file.is_file() else [])
    if ev_file.is_file() and summary["step"] is None and ev_file.stat().st_size > _TAIL_BYTES:
        summary = _summarise(folder, meta, read_events(ev_file))  # no step in the tail: read it all
    return summary


def job_events(root: str | Path, job_id: str, since: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events ``since`` (an index into the append-only file) and the index to ask for next time."""
    folder = job_dir(root, job_id)
    meta = _meta_or_empty(folder)
    events = read_events(events_path(folder, meta))
    since = max(0, since)
    return events[since:], len(events)


def _meta_or_empty(folder: Path) -> dict[str, Any]:
    try:
        return read_job_meta(folder)
    except ValueError:
        return {}


def job_state(root: str | Path, job_id: str, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The folded state of one job (see :func:`fold_events`) with the status derived from events and job.json."""
    folder = job_dir(root, job_id)
    try:
        meta = read_job_meta(folder)
        meta_error = None
    except ValueError as exc:
        meta, meta_error = {}, str(exc)
    if events is None:
        events = read_events(events_path(folder, meta))
    output_dir = Path(str(meta["output_dir"])) if meta.get("output_dir") else None
    state = fold_events(events, folder, output_dir)
    summary = _summarise(folder, meta, events)
    state["status"] = summary["status"] if not meta_error else "unknown"
    if state["error"] is not None:
        state["error"]["log"] = meta.get("log")
    elif summary["status"] == "failed":
        state["error"] = {"message": summary["error"], "log": meta.get("log")}
    if meta_error:
        state["error"] = {"message": meta_error, "log": None}
    if state["status"] != "running":
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
