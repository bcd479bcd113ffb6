"""HTTP routes of the training monitor (web/ltx_trainer_monitor.js reads them), prefix ``/ltx_trainer/``.

- ``GET  /ltx_trainer/jobs``                         -> ``{"jobs": [summary, ...]}`` newest first
- ``GET  /ltx_trainer/jobs/{job_id}``                -> ``{"job": summary, "state": state, "events": [...], "next": n}``
  (``?events=0`` leaves the events out)
- ``GET  /ltx_trainer/jobs/{job_id}/events?since=N`` -> ``{"events": [...], "next": n, "status", "error"}``
- ``GET  /ltx_trainer/jobs/{job_id}/files/{path}``   -> the file (range requests work, so videos seek); 403/404
- ``POST /ltx_trainer/jobs/{job_id}/cancel``         -> ``{"job_id", "signalled": bool, "status"}``; 409 if it cannot

Errors are ``{"error": message}`` with the status from :class:`ltx_train_lib.job_files.JobAccessError`.

Inside ComfyUI, importing this module registers the routes on ``PromptServer.instance.routes`` (ComfyUI mirrors them
under ``/api/``). Outside ComfyUI the import does nothing, and :func:`add_routes` lets tests mount the same handlers
on a plain aiohttp application.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ltx_train_lib import job_files

log = logging.getLogger(__name__)

PREFIX = "/ltx_trainer"
JobsRootGetter = Callable[[], "str | Path"]
# Files are ours, but a job folder is a place anyone with disk access can drop an .html or .svg into: never let
# such a file run script in ComfyUI's origin.
_FILE_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
_TEXT_SUFFIXES = {".yaml", ".yml", ".jsonl", ".log", ".txt", ".toml", ".md"}


def _json_safe(value: Any) -> Any:
    """NaN/Infinity (a diverged loss) are not JSON; the browser's JSON.parse would reject the whole payload."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(_json_safe(d), allow_nan=False))


def _error(exc: job_files.JobAccessError) -> web.Response:
    return _reply({"error": str(exc)}, status=exc.http_status)


def _since(request: web.Request) -> int:
    raw = request.query.get("since", "0")
    try:
        return max(0, int(raw))
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"since must be an integer, got {raw!r}"}), content_type="application/json"
        ) from exc


def make_handlers(jobs_root_getter: JobsRootGetter) -> dict[str, Callable[[web.Request], Any]]:
    """The handlers, bound to a jobs root. File system work runs in a thread: ComfyUI's event loop serves the
    editor and the websocket, and a big events file takes tens of milliseconds to fold."""

    def root() -> Path:
        return Path(jobs_root_getter())

    async def list_jobs(request: web.Request) -> web.Response:
        jobs = await asyncio.to_thread(job_files.list_jobs, root())
        return _reply({"jobs": jobs})

    async def get_job(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        with_events = request.query.get("events", "1") not in ("0", "false", "no")
        try:
            events, nxt = await asyncio.to_thread(job_files.job_events, root(), job_id, 0)
            state = await asyncio.to_thread(job_files.job_state, root(), job_id, events)
            summary = await asyncio.to_thread(job_files.job_summary, root(), job_id)
        except job_files.JobAccessError as exc:
            return _error(exc)
        body: dict[str, Any] = {"job": summary, "state": state, "next": nxt}
        if with_events:
            body["events"] = events
        return _reply(body)

    async def get_events(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        since = _since(request)
        try:
            events, nxt = await asyncio.to_thread(job_files.job_events, root(), job_id, since)
            # the status as derived now: a process that died without a final event shows up in polls too
            summary = await asyncio.to_thread(job_files.job_summary, root(), job_id)
        except job_files.JobAccessError as exc:
            return _error(exc)
        return _reply({"events": events, "next": nxt, "status": summary["status"], "error": summary["error"]})

    async def get_file(request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["job_id"]
        # aiohttp has already percent-decoded the path once; resolve_job_file decodes once more and refuses
        # anything that still carries an escape for '.', '/', '\' or NUL (double encoding).
        relpath = request.match_info["path"]
        try:
            path = await asyncio.to_thread(job_files.resolve_job_file, root(), job_id, relpath)
        except job_files.JobAccessError as exc:
            return _error(exc)
        headers = dict(_FILE_HEADERS)
        if path.suffix.lower() in _TEXT_SUFFIXES:
            headers["Content-Type"] = "text/plain; charset=utf-8"
        return web.FileResponse(path, headers=headers)

    async def cancel(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        try:
            signalled = await asyncio.to_thread(job_files.cancel_job, root(), job_id)
            state = await asyncio.to_thread(job_files.job_state, root(), job_id)
        except job_files.JobAccessError as exc:
            return _error(exc)
        if signalled:
            log.info("ltx_trainer: sent SIGTERM to job %s; it saves a resumable checkpoint and stops", job_id)
        return _reply({"job_id": job_id, "signalled": signalled, "status": state["status"]})

    return {
        "list_jobs": list_jobs,
        "get_job": get_job,
        "get_events": get_events,
        "get_file": get_file,
        "cancel": cancel,
    }


def add_routes(routes: web.RouteTableDef | web.Application, jobs_root_getter: JobsRootGetter) -> None:
    """Register the monitor routes on a RouteTableDef (ComfyUI's ``PromptServer.instance.routes``) or an app.

    ``jobs_root_getter`` is called per request, so a root that does not exist yet (no job run so far) or changes
    (ComfyUI's ``--output-directory``) is picked up.
    """
    h = make_handlers(jobs_root_getter)
    table = [
        ("GET", f"{PREFIX}/jobs", h["list_jobs"]),
        ("GET", f"{PREFIX}/jobs/{{job_id}}", h["get_job"]),
        ("GET", f"{PREFIX}/jobs/{{job_id}}/events", h["get_events"]),
        ("GET", f"{PREFIX}/jobs/{{job_id}}/files/{{path:.*}}", h["get_file"]),
        ("POST", f"{PREFIX}/jobs/{{job_id}}/cancel", h["cancel"]),
    ]
    for method, path, handler in table:
        if isinstance(routes, web.Application):
            routes.router.add_route(method, path, handler)
        else:
            routes.route(method, path)(handler)


def comfy_jobs_root() -> Path:
    """``<ComfyUI output dir>/ltx_trainer/jobs``: where the TrainLoRA node creates job folders."""
    import folder_paths  # ComfyUI's module; only called inside ComfyUI

    return Path(folder_paths.get_output_directory()) / "ltx_trainer" / "jobs"


def register_with_comfyui() -> bool:
    """Add the routes to ComfyUI's server when running inside it; a no-op (False) anywhere else."""
    try:
        from server import PromptServer  # ComfyUI's module
    except ImportError:
        return False
    instance = getattr(PromptServer, "instance", None)
    routes = getattr(instance, "routes", None)
    if not isinstance(routes, web.RouteTableDef):
        return False  # some other module called `server`, or ComfyUI's server is not created yet
    if getattr(instance, "_ltx_trainer_routes", False):
        return True  # imported twice (e.g. under two module names): aiohttp refuses duplicate routes
    add_routes(routes, comfy_jobs_root)
    instance._ltx_trainer_routes = True
    return True


REGISTERED = register_with_comfyui()
