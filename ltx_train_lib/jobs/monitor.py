"""The web panel's view of a job: its event history folded into one state (loss curve, EMA, samples, checkpoints).

web/lib/monitor_state.js mirrors :func:`fold_events` rule for rule; tests/fixtures/monitor_events_resume.* holds
the expectations both are tested against. Pure functions of the events (and, for file links, the job folder).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .status import TERMINAL_EVENTS as _TERMINAL

# Weight of the exponential moving average of the loss (TensorBoard-style, bias-corrected); web/lib uses the same.
EMA_WEIGHT = 0.9


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


def _finite(value: Any) -> float | None:
    """A finite number as float, else None (a NaN loss, a bool, a string): what the panel can plot."""
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
        "health": None,
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
    - ``done`` / ``cancelled`` / ``error`` end the run; a later ``started`` makes the job running again;
    - ``health`` keeps the LoRA health gate's last verdict.
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
        elif kind == "health":
            # the LoRA health gate's last verdict (ltx_train_lib/lora_health.py): one line for the panel
            state["health"] = {"step": step, "ok": ev.get("ok") is True, "final": ev.get("final") is True,
                               "summary": str(ev.get("summary") or "")}
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
