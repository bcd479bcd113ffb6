"""Experiment trackers as listeners of the progress event stream.

The trainer emits every event once (``ltx_train_lib.events``) and hands the record to each listener, so TensorBoard,
W&B and the CLI's printer see exactly what events.jsonl holds and log nothing the protocol does not carry. A listener
is any callable taking the record (a dict); these ones also have ``close()``, called on the run's last event
(``done``, ``cancelled``, ``error``) and again, harmlessly, when the trainer exits.

Logging must never stop training: a failure while logging is reported once as a warning and the listener goes on.
Failures while *starting* a tracker (bad log folder, W&B login) are raised, as a bad setting is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ltx_train_lib.config import TrainerConfig

log = logging.getLogger("ltx_train_lib.listeners")
Listener = Callable[[dict[str, Any]], None]
_LAST_EVENTS = ("done", "cancelled", "error")


class _GuardedListener:
    """Dispatches a record to ``on_<kind>`` and closes on the last event; logging errors become one warning."""

    name = "listener"

    def __init__(self) -> None:
        self.closed = False
        self._warned = False

    def __call__(self, ev: dict[str, Any]) -> None:
        if self.closed:
            return
        kind = ev.get("event")
        try:
            handler = getattr(self, f"on_{kind}", None)
            if handler is not None:
                handler(ev)
        except Exception as exc:  # noqa: BLE001 - a tracker hiccup must not end a training run
            if not self._warned:
                self._warned = True
                log.warning("%s: could not log a %s event (%s); training goes on (further failures are not reported)",
                            self.name, kind, exc)
        if kind in _LAST_EVENTS:
            self.close(kind)

    def close(self, kind: str | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._close(kind)
        except Exception as exc:  # noqa: BLE001 - closing a tracker must not mask the run's own outcome
            log.warning("%s: closing failed (%s)", self.name, exc)

    def _close(self, kind: str | None) -> None:
        raise NotImplementedError


class TensorBoardListener(_GuardedListener):
    """``train/loss`` and ``train/learning_rate`` per step; ``validation/prompts`` and the videos per sample round."""

    name = "tensorboard"

    def __init__(self, log_dir: str | Path) -> None:
        super().__init__()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.log_dir))

    def on_step(self, ev: dict[str, Any]) -> None:
        self.writer.add_scalar("train/loss", ev["loss"], ev["step"])
        self.writer.add_scalar("train/learning_rate", ev["lr"], ev["step"])

    def on_sample(self, ev: dict[str, Any]) -> None:
        self.writer.add_text("validation/prompts", "\n".join(ev["prompts"]), ev["step"])
        for i, path in enumerate(ev["paths"]):
            self._video(f"validation/video_{i}", Path(path), ev["step"])

    def _video(self, tag: str, path: Path, step: int) -> None:
        try:
            import torch

            from ltx_train_lib.media import read_video_frames

            frames, fps = read_video_frames(path)
            self.writer.add_video(tag, torch.from_numpy(frames).permute(0, 3, 1, 2)[None], step, fps=int(fps))
        except Exception as exc:  # noqa: BLE001 - add_video needs moviepy, an optional extra: skip quietly
            log.debug("tensorboard video skipped: %s", exc)

    def _close(self, kind: str | None) -> None:  # noqa: ARG002
        self.writer.close()


class WandbListener(_GuardedListener):
    """Loss, learning rate and step time per step; the validation videos per sample round (when enabled)."""

    name = "wandb"

    def __init__(self, run: Any, *, log_validation_videos: bool = True) -> None:
        super().__init__()
        self.run = run
        self.log_validation_videos = log_validation_videos

    def on_step(self, ev: dict[str, Any]) -> None:
        self.run.log({"train/loss": ev["loss"], "train/learning_rate": ev["lr"], "train/step_time": ev["sec_per_step"]},
                     step=ev["step"])

    def on_sample(self, ev: dict[str, Any]) -> None:
        if not self.log_validation_videos:
            return
        import wandb

        videos = [wandb.Video(str(p), caption=Path(p).name) for p in ev["paths"]]
        self.run.log({"validation/videos": videos}, step=ev["step"])

    def _close(self, kind: str | None) -> None:
        # A failed run shows as failed in W&B rather than as finished.
        self.run.finish(exit_code=1 if kind == "error" else 0)


def build_listeners(cfg: TrainerConfig, output_dir: str | Path, *, run_id: str | None = None) -> list[Listener]:
    """The trackers ``cfg`` enables, started. ``run_id`` names the W&B run; it must stay the same across resumes
    (the trainer passes the output folder's name and the config fingerprint) so a resumed run continues its chart."""
    output_dir = Path(output_dir)
    listeners: list[Listener] = []
    if cfg.tensorboard.enabled:
        listeners.append(TensorBoardListener(cfg.tensorboard.log_dir or output_dir / "tensorboard"))
    if cfg.wandb.enabled:
        import wandb

        run = wandb.init(
            project=cfg.wandb.project, entity=cfg.wandb.entity, tags=cfg.wandb.tags, name=output_dir.name,
            config=cfg.model_dump(mode="json"), resume="allow", id=run_id or output_dir.name,
        )
        listeners.append(WandbListener(run, log_validation_videos=cfg.wandb.log_validation_videos))
    return listeners


def close_listeners(listeners: list[Listener]) -> None:
    """Close every listener that can be closed (the trainer's exit path; a no-op for those already closed)."""
    for fn in listeners:
        close = getattr(fn, "close", None)
        if callable(close):
            close()
