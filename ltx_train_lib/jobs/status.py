"""A job's status: the one vocabulary, and its derivation from job.json, the event stream and the process group.

Statuses: ``queued``, ``running``, ``finished``, ``failed``, ``cancelled``, and ``unknown`` (a folder whose job.json
cannot be read). The node's :class:`~ltx_train_lib.jobs.Job`, the routes and the web panel all speak it. job.json
stores ``finished`` as ``"done"`` (the name of the trainer's final event; every job.json written so far says so), and
:func:`stored_status` / :func:`status_from_meta` are the only places that know it.

job.json says what the node last knew; the event stream says what the trainer last did. When they disagree the
events win (the node may have died before updating job.json), and "running" is believed only while the job's
process group is alive (:func:`~ltx_train_lib.jobs.groups.group_alive`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ltx_train_lib.events import EVENTS_FILE, read_events

from .groups import group_alive

QUEUED = "queued"
RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
CANCELLED = "cancelled"
UNKNOWN = "unknown"
STATUSES = (QUEUED, RUNNING, FINISHED, FAILED, CANCELLED, UNKNOWN)
ACTIVE = (QUEUED, RUNNING)
ENDED = (FINISHED, FAILED, CANCELLED)
# The trainer's final events and the status each one means.
TERMINAL_EVENTS = {"done": FINISHED, "cancelled": CANCELLED, "error": FAILED}
LIFECYCLE_EVENTS = ("started", *TERMINAL_EVENTS)
_STORED = {FINISHED: "done"}
_FROM_STORED = {"done": FINISHED, **{s: s for s in (QUEUED, RUNNING, FINISHED, FAILED, CANCELLED)}}
# Outputs of a finished run that must all still exist for it to count as finished (see finished_result).
_WEIGHT_OUTPUTS = ("lora", "lora_comfy", "model")


def stored_status(status: str) -> str:
    """How job.json spells ``status``."""
    return _STORED.get(status, status)


def status_from_meta(meta: Mapping[str, Any]) -> str | None:
    """The status job.json records, in the one vocabulary; None when it records none (or nothing known)."""
    return _FROM_STORED.get(str(meta.get("status")))


def last_lifecycle(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last ``started`` / ``done`` / ``cancelled`` / ``error`` event: what the trainer last said about its run."""
    return next((e for e in reversed(events) if e.get("event") in LIFECYCLE_EVENTS), None)


def derive_status(meta: dict[str, Any], events: list[dict[str, Any]], alive: bool | None) -> tuple[str, str | None]:
    """(status, note) of a job. ``alive``: whether its process group lives (None: no pgid, or cannot tell).

    A final event (done/cancelled/error after the last started) decides. Otherwise a live process means running;
    a dead one means job.json's final status if it has one (the node saw the end, e.g. a kill before the trainer
    could write), else failed: the process vanished without a word.
    """
    last = last_lifecycle(events)
    if last is not None and last["event"] in TERMINAL_EVENTS:
        return TERMINAL_EVENTS[last["event"]], None
    if alive is True:
        return RUNNING, None
    meta_status = status_from_meta(meta)
    if meta_status in ENDED:
        return meta_status, None
    if last is not None or meta_status == RUNNING:
        if alive is False:
            return FAILED, "the training process ended without reporting (killed or crashed); see its log"
        return RUNNING, None
    if meta_status is not None:
        return meta_status, None
    return (QUEUED, None) if meta else (UNKNOWN, None)


def current_status(meta: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str, str | None]:
    """:func:`derive_status` with the job's process group probed now (when job.json names one)."""
    alive = group_alive(meta.get("pgid"), meta.get("created")) if meta.get("pgid") is not None else None
    return derive_status(meta, events, alive)


def finished_result(folder: Path) -> dict[str, Any] | None:
    """The ``done`` event of a finished job whose weights are all still on disk; None otherwise."""
    last = last_lifecycle(read_events(folder / EVENTS_FILE))
    if last is None or last.get("event") != "done":
        return None
    outputs = last.get("outputs") or {}
    weights = [v for k, v in outputs.items() if k in _WEIGHT_OUTPUTS]
    if not weights or not all(Path(str(p)).is_file() for p in weights):
        return None  # deleted by hand: the re-run rewrites them from the final checkpoint
    return last
