"""``preprocess_dataset.py``: caption embeddings and video latents into ``.precomputed/``.

Every flag is a field of :class:`ltx_train_lib.precompute.PrecomputeConfig` (default, choices and help come from
it); the names follow the reference trainer's script (reference/ltx-video-trainer.md §1.2), plus several
resolution buckets, ``--reshape-mode``, ``--frame-selection``, ``--seed`` and the component paths.
:func:`add_config_arguments` gives ``run_pipeline.py`` the same flags, :func:`options_table` the docs their table.

Exit status: 0 when every sample is ready, 1 when some were skipped (each is listed with its reason), 2 for bad
arguments or a dataset/model that cannot be used at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal

EXIT_OK, EXIT_SKIPPED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("ltx_train_lib.cli.preprocess")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="preprocess_dataset.py",
        description="Compute T5 caption embeddings and VAE latents for LoRA training, into <dataset dir>/.precomputed "
        "(the reference trainer's layout). Re-running recomputes only what changed.",
    )
    add_config_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the summary")
    return p


# ------------------------------------------------------------------------------------ flags from PrecomputeConfig


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    fields: Sequence[str] | None = None,
    help_extra: dict[str, str] | None = None,
) -> None:
    """One argument per :class:`PrecomputeConfig` field (``fields``: a subset, in that order), with the schema's
    default, choices and description; the flag names are the reference trainer's (``config.cli_flags``).
    ``help_extra`` adds a sentence to a field's help where a command uses it differently."""
    from ltx_train_lib.precompute.config import PrecomputeConfig

    for name in fields or list(PrecomputeConfig.model_fields):
        _add_field(parser, name, (help_extra or {}).get(name, ""))


def _add_field(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, extra: str) -> None:
    from ltx_train_lib.precompute.config import PrecomputeConfig, cli_flags, default_text, field_extra

    info = PrecomputeConfig.model_fields[name]
    flags = cli_flags(name)
    base = _base_type(info.annotation)
    text = " ".join(part for part in (info.description or "", extra) if part)
    if not info.is_required() and base is not bool:
        text += f" (default: {default_text(name)})"
    kwargs: dict[str, Any] = {"help": text.replace("%", "%%")}  # argparse %-formats help texts
    if typing.get_origin(base) is Literal:
        kwargs["choices"] = [str(v) for v in typing.get_args(base)]
    elif base is int:
        kwargs["type"] = int
    if base is not bool and typing.get_origin(base) is not Literal and flags[0].startswith("-"):
        kwargs["metavar"] = flags[0].lstrip("-").replace("-", "_").upper()  # named after the flag, not the field
    if not flags[0].startswith("-"):  # a positional argument: its name is its dest
        parser.add_argument(name, metavar=field_extra(name).get("metavar", flags[0].upper()), **kwargs)
        return
    kwargs["dest"] = name
    if info.is_required():
        kwargs["required"] = True
    else:
        kwargs["default"] = info.get_default(call_default_factory=True)
    if base is bool:
        # Off by default: a plain switch, as the reference's flags; on by default: --x / --no-x.
        kwargs["action"] = "store_true" if not kwargs.get("default") else argparse.BooleanOptionalAction
    parser.add_argument(*flags, **kwargs)


def _base_type(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def options_table() -> str:
    """The Markdown table of every option, as docs/preprocessing.md shows it (see ltx_train_lib.cli.docs)."""
    from ltx_train_lib.precompute.config import PrecomputeConfig, cli_flags, cli_names, default_text, field_extra

    def cell(text: str) -> str:
        # Markdown would read '<token>' as an HTML tag and '|' as a column break.
        return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")

    names = cli_names()
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for name, info in PrecomputeConfig.model_fields.items():
        flags = cli_flags(name) if cli_flags(name)[0].startswith("-") else [names[name]]
        option = ", ".join(f"`{f}`" for f in flags)
        default = default_text(name)
        if default not in ("required", "none", "off", "on") and "default_text" not in field_extra(name):
            default = f"`{default}`"  # a value, as typed; prose defaults stay prose
        rows.append(f"| {option} | {cell(default)} | {cell(info.description or '')} |")
    return "\n".join(rows) + "\n"


class _ProgressPrinter:
    """A rich progress bar on a terminal; otherwise one log line every few seconds (logs, ComfyUI consoles)."""

    def __init__(self) -> None:
        self._bar = None
        self._task = None
        self._last = 0.0
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold blue]preprocessing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                transient=True,
            )

    def __enter__(self) -> _ProgressPrinter:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, done: int, total: int, message: str) -> None:
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task("", total=total)
            self._bar.update(self._task, completed=done, total=total, description=message)
            return
        now = time.monotonic()
        if done >= total or now - self._last >= 5.0:
            self._last = now
            log.info("%d/%d %s", done, total, message)


def _quiet_libraries() -> None:
    """transformers/diffusers print a progress bar per weight file: noise between our own lines."""
    try:
        import diffusers.utils.logging as dlog
        import transformers.utils.logging as tlog

        tlog.disable_progress_bar()
        dlog.disable_progress_bar()
        tlog.set_verbosity_error()
    except ImportError:  # pragma: no cover - both are dependencies
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments and 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr)

    from ltx_train_lib.errors import LtxTrainError
    from ltx_train_lib.precompute import PrecomputeConfig, preprocess_dataset, resolve_dataset_file
    from ltx_train_lib.precompute.config import cli_names

    # Cheap checks first: a typo is reported at once, before torch and the models load.
    try:
        options = {name: getattr(args, name) for name in PrecomputeConfig.model_fields}
        config = PrecomputeConfig.from_options(options, names=cli_names())
        resolve_dataset_file(config.dataset_file)
    except LtxTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if config.id_token:
        log.info('trigger word "%s" is prepended to every caption', config.id_token)
    _quiet_libraries()
    try:
        with _ProgressPrinter() as progress:
            result = preprocess_dataset(config, progress=progress)
    except LtxTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished samples are kept; run the same command again to continue", file=sys.stderr)
        return 130
    print(result.summary())
    if result.samples == 0:
        print("nothing was preprocessed: fix the skipped entries above and run again", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_SKIPPED


if __name__ == "__main__":
    sys.exit(main())
