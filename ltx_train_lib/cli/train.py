"""`python scripts/train.py CONFIG.yaml [--check] [--plan] [--disable_progress_bars]` — the standalone trainer."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from ltx_train_lib.errors import LtxTrainError


class ProgressPrinter:
    """Turns trainer events into rich progress bars in a terminal, or plain lines when bars are disabled.

    A listener of the trainer's event stream like TensorBoard and W&B (``ltx_train_lib.training.listeners``): it
    sees the records events.jsonl holds, with the fields ``ltx_train_lib.events`` defines, and nothing else.
    """

    def __init__(self, bars: bool, every: int = 10) -> None:
        self.bars = bars and sys.stdout.isatty()
        self.every = every
        self._progress = None
        self._task = None

    def __call__(self, ev: dict[str, Any]) -> None:
        kind = ev["event"]
        if kind == "started":
            resumed = f", resumed from {ev['resumed_from']}" if ev.get("resumed_from") else ""
            self._print(f"training {ev['training_mode']} on {ev['model']}: step {ev['step']}/{ev['total']}, {ev['num_processes']} process(es){resumed}")
            if self.bars:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                    TimeRemainingColumn,
                )

                self._progress = Progress(
                    TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(),
                )
                self._progress.start()
                self._task = self._progress.add_task("train", total=ev["total"], completed=ev["step"], info="")
        elif kind == "step":
            info = f"loss {ev['loss']:.4f}  lr {ev['lr']:.2e}  {ev['sec_per_step']:.2f}s/step  {ev['memory_mb']:.0f} MB"
            if self._progress is not None:
                self._progress.update(self._task, completed=ev["step"], info=info)
            elif ev["step"] % self.every == 0 or ev["step"] == ev["total"] or ev["step"] == 1:
                self._print(f"step {ev['step']}/{ev['total']}  {info}  eta {ev['eta_s']:.0f}s")
        elif kind == "sample":
            self._print(f"validation videos at step {ev['step']}: " + ", ".join(ev["paths"]))
        elif kind == "checkpoint":
            self._print(f"checkpoint at step {ev['step']}: {ev['path']}")
        elif kind in ("done", "cancelled", "error"):
            self._stop()
            if kind == "done":
                loss = f", final loss {ev['final_loss']:.4f}" if ev.get("final_loss") is not None else ""
                self._print(f"done in {_duration(ev['seconds'])}{loss}. outputs:\n" + "\n".join(f"  {k}: {v}" for k, v in ev["outputs"].items()))
            elif kind == "cancelled":
                self._print(f"stopped at step {ev['step']} ({ev.get('reason')}); resumable checkpoint: {ev['checkpoint']}")

    def _print(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            print(text, flush=True)

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f}s"
    h, rest = divmod(s, 3600)
    return (f"{h}h " if h else "") + f"{rest // 60}m {rest % 60:02d}s"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py", description="Train an LTX-Video LoRA or full fine-tune from a YAML config.")
    p.add_argument("config", help="YAML training config (see configs/)")
    p.add_argument("--check", action="store_true", help="validate the config, print the resolved result and exit (loads no model)")
    p.add_argument("--plan", action="store_true",
                   help="print the memory plan (peak GPU memory and RAM per phase, and the settings memory.budget_gb "
                        "would pick) and exit; reads no weights")
    p.add_argument("--buckets", default=None,
                   help="with --plan: resolution buckets WxHxF[;WxHxF...] to plan for (default: the dataset's)")
    p.add_argument("--device", choices=("cuda", "cpu"), default=None,
                   help="with --plan: the device to plan for (default: this machine's)")
    p.add_argument("--disable_progress_bars", "--disable-progress-bars", action="store_true", help="plain log lines instead of progress bars")
    p.add_argument("--events-stdout", action="store_true", help="also print JSON progress events on stdout (for parent processes)")
    return p


def train_main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ltx_train_lib.config import dump_config, load_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        cfg = load_config(args.config)
        if args.check:
            from ltx_train_lib.models.registry import resolve_source

            print(dump_config(cfg), end="")
            print(f"# model source: {resolve_source(cfg.model.model_source).kind} ({cfg.model.model_source})")
            print(f"# config OK: {args.config}")
            return 0
        if args.plan:
            from ltx_train_lib.memory.command import plan_command

            return plan_command(cfg, buckets=[args.buckets] if args.buckets else None, device=args.device)
        if args.events_stdout:
            os.environ["LTX_TRAIN_EVENTS_STDOUT"] = "1"
        from ltx_train_lib.training.trainer import Trainer

        is_main = os.environ.get("RANK", "0") == "0"
        listeners = [ProgressPrinter(bars=not args.disable_progress_bars)] if is_main else []
        trainer = Trainer(cfg, listeners=listeners)
        result = trainer.train()
    except LtxTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    code = 0 if result.status == "done" else 3
    if trainer.orphaned:  # the launcher is gone: its checkpoint is written, end now (teardown takes seconds)
        from ltx_train_lib.training.liveness import exit_at_once

        exit_at_once(code)
    return code


def main() -> None:
    sys.exit(train_main())


if __name__ == "__main__":
    main()
