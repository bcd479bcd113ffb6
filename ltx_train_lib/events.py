"""The progress event protocol: one JSON object per line.

The trainer (rank 0 only) appends events to ``<output_dir>/events.jsonl`` and, when asked, prints them on stdout
prefixed with ``EVENT_PREFIX``. The CLI's progress bars, the ComfyUI node and the web panel are all readers.

Events (every one carries ``event`` and ``time``, a Unix timestamp):

- ``started``: step (first step of this run; > 0 after a resume), total, resumed_from (checkpoint path or null),
  output_dir, num_processes, model (source label), training_mode, pid
- ``step``: step, total, loss, lr, sec_per_step, eta_s, memory_mb (peak GPU memory, or process RSS on CPU)
- ``sample``: step, paths (validation videos written), prompts
- ``checkpoint``: step, path
- ``done``: step, total, seconds, outputs (name -> path)
- ``cancelled``: step, checkpoint (path of the resumable checkpoint saved on the way out)
- ``error``: message, step, log (path of the full log, when known)
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EVENT_PREFIX = "@@LTX_EVENT "
EVENTS_FILE = "events.jsonl"
EVENT_TYPES = ("started", "step", "sample", "validation_failed", "checkpoint", "done", "cancelled", "error")


class EventWriter:
    """Append-only JSON-lines writer. Each line is written with one ``write`` call and flushed, so a reader never
    sees half a line unless the process dies mid-write; readers skip such a trailing fragment."""

    def __init__(self, path: str | Path | None, echo_stdout: bool = False, enabled: bool = True) -> None:
        self.path = Path(path) if path else None
        self.echo_stdout = echo_stdout
        self.enabled = enabled
        if self.enabled and self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        if event not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event!r}")
        record = {"event": event, "time": round(time.time(), 3), **fields}
        if not self.enabled:
            return record
        line = json.dumps(record, default=_json_default)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        if self.echo_stdout:
            sys.stdout.write(EVENT_PREFIX + line + "\n")
            sys.stdout.flush()
        return record


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def parse_event_line(line: str) -> dict[str, Any] | None:
    """Parse a line from the events file or from the child's stdout; None for anything else."""
    line = line.strip()
    if line.startswith(EVENT_PREFIX):
        line = line[len(EVENT_PREFIX) :]
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and record.get("event") in EVENT_TYPES else None


def read_events(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # a line still being written
            rec = parse_event_line(line)
            if rec is not None:
                out.append(rec)
    return out


class EventFollower:
    """Incrementally read new complete events from a growing events file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = ""

    def poll(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
            self._offset = fh.tell()
        data = self._partial + chunk
        lines = data.split("\n")
        self._partial = lines.pop()  # incomplete tail (or "")
        for line in lines:
            rec = parse_event_line(line)
            if rec is not None:
                yield rec
