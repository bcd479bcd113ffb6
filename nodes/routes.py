"""HTTP routes of the training monitor (web/ltx_trainer_monitor.js reads them), prefix ``/ltx_trainer/``.

- ``GET  /ltx_trainer/jobs``                         -> ``{"jobs": [summary, ...]}`` newest first
- ``GET  /ltx_trainer/jobs/{job_id}``                -> ``{"job": summary, "state": state, "events": [...], "next": n}``
  (``?events=0`` leaves the events out)
- ``GET  /ltx_trainer/jobs/{job_id}/events?since=N`` -> ``{"events": [...], "next": n, "status", "error"}``
- ``GET  /ltx_trainer/jobs/{job_id}/files/{path}``   -> the file (range requests work, so videos seek); 403/404
- ``POST /ltx_trainer/jobs/{job_id}/cancel``         -> ``{"job_id", "signalled": bool, "status"}``; 409 if it cannot

Errors are ``{"error": message}`` with the status from :class:`ltx_train_lib.jobs.JobAccessError` (500 for a
folder that cannot be read, or a bug here): one line for the panel, no traceback and no server paths.

Inside ComfyUI, importing this module registers the routes on ``PromptServer.instance.routes`` (ComfyUI mirrors them
under ``/api/``). Outside ComfyUI the import does nothing, and :func:`add_routes` lets tests mount the same handlers
on a plain aiohttp application.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ltx_train_lib import jobs

log = logging.getLogger(__name__)

PREFIX = "/ltx_trainer"
JobsRootGetter = Callable[[], "str | Path"]
# Files are ours, but a job folder is a place anyone with disk access can drop an .html or .svg into: never let
# such a file run script in ComfyUI's origin.
_FILE_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
_TEXT_SUFFIXES = {".yaml", ".yml", ".jsonl", ".log", ".txt", ".toml", ".md"}
# The file path as the client wrote it: what follows "/jobs/<id>/files/" in the undecoded request path.
_RAW_FILE_PATH_RE = re.compile(r"/jobs/[^/]*/files/(.*)$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def _error(exc: jobs.JobAccessError) -> web.Response:
    return _reply({"error": str(exc)}, status=exc.http_status)


def _answering_errors(handler: Handler) -> Handler:
    """Every failure becomes one ``{"error": message}`` reply: the panel shows the message, never a traceback page.

    A job that cannot be served has its own status (JobAccessError); an OSError the library did not foresee is named
    by its reason and file name only (its text would carry the server path); anything else is a bug in this pack,
    logged with its traceback for the server's owner.
    """

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        job_id = request.match_info.get("job_id")
        what = f"job {job_id!r}" if job_id else "the training jobs"
        try:
            return await handler(request)
        except web.HTTPException:
            raise  # aiohttp's own replies (400 for a bad ?since=, ...)
        except jobs.JobAccessError as exc:
            return _error(exc)
        except OSError as exc:
            name = f" ({Path(exc.filename).name})" if exc.filename else ""
            log.warning("ltx_trainer: %s %s: %s", request.method, request.path, exc)
            return _reply({"error": f"{what} cannot be read{name}: {exc.strerror or type(exc).__name__}"}, 500)
        except Exception:
            log.exception("ltx_trainer: %s %s failed", request.method, request.path)
            return _reply({"error": f"internal error while reading {what}; the ComfyUI log has the details"}, 500)

    return guarded


def _raw_file_path(request: web.Request) -> str:
    """The file path of a /files/ request, still percent-encoded.

    aiohttp's match_info has decoded it once already (and turned %2F into '/'); the library decodes exactly once
    and checks what that gives, so it must get the path as sent. Otherwise ``x%2541.mp4`` would be decoded twice
    and serve ``xA.mp4`` instead of ``x%41.mp4``.
    """
    match = _RAW_FILE_PATH_RE.search(request.rel_url.raw_path)
    return match.group(1) if match else ""


def _since(request: web.Request) -> int:
    raw = request.query.get("since", "0")
    try:
        return max(0, int(raw))
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"since must be an integer, got {raw!r}"}), content_type="application/json"
        ) from exc


def make_handlers(jobs_root_getter: JobsRootGetter) -> dict[str, Handler]:
    """The handlers, bound to a jobs root. File system work runs in a thread: ComfyUI's event loop serves the
    editor and the websocket, and a big events file takes tens of milliseconds to fold."""

    def root() -> Path:
        return Path(jobs_root_getter())

    async def list_jobs(request: web.Request) -> web.Response:
        summaries = await asyncio.to_thread(jobs.list_jobs, root())
        return _reply({"jobs": summaries})

    async def get_job(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        with_events = request.query.get("events", "1") not in ("0", "false", "no")
        events, nxt = await asyncio.to_thread(jobs.job_events, root(), job_id, 0)
        state = await asyncio.to_thread(jobs.job_state, root(), job_id, events)
        summary = await asyncio.to_thread(jobs.job_summary, root(), job_id)
        body: dict[str, Any] = {"job": summary, "state": state, "next": nxt}
        if with_events:
            body["events"] = events
        return _reply(body)

    async def get_events(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        since = _since(request)
        events, nxt = await asyncio.to_thread(jobs.job_events, root(), job_id, since)
        # the status as derived now: a process that died without a final event shows up in polls too
        summary = await asyncio.to_thread(jobs.job_summary, root(), job_id)
        return _reply({"events": events, "next": nxt, "status": summary["status"], "error": summary["error"]})

    async def get_file(request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["job_id"]
        path = await asyncio.to_thread(jobs.resolve_job_file, root(), job_id, _raw_file_path(request))
        headers = dict(_FILE_HEADERS)
        if path.suffix.lower() in _TEXT_SUFFIXES:
            headers["Content-Type"] = "text/plain; charset=utf-8"
        return web.FileResponse(path, headers=headers)

    async def cancel(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        signalled = await asyncio.to_thread(jobs.cancel_job, root(), job_id)
        state = await asyncio.to_thread(jobs.job_state, root(), job_id)
        if signalled:
            log.info("ltx_trainer: sent SIGTERM to job %s; it saves a resumable checkpoint and stops", job_id)
        return _reply({"job_id": job_id, "signalled": signalled, "status": state["status"]})

    handlers: dict[str, Handler] = {
        "list_jobs": list_jobs,
        "get_job": get_job,
        "get_events": get_events,
        "get_file": get_file,
        "cancel": cancel,
    }
    return {name: _answering_errors(handler) for name, handler in handlers.items()}


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
