"""The progress event protocol: one JSON object per line, one pydantic model per event kind.

The models below *are* the protocol (kinds, field names, types, what is always written and what it means). The
checked-in ``events.schema.json`` and ``docs/events.md`` are generated from them: after changing a model run
``python -m ltx_train_lib.events --write`` (tests fail while either file is stale). Adding a kind is one model class
plus its entry in ``_MODELS``.

The trainer (rank 0 only) appends events to ``<output_dir>/events.jsonl`` through :class:`EventWriter` and, when
asked, echoes them on stdout prefixed with ``EVENT_PREFIX``. Everything else reads that stream: the CLI's progress
printer, TensorBoard and W&B (``ltx_train_lib.training.listeners``), the ComfyUI node, the job supervisor and the
web panel. Readers stay tolerant (unknown kinds, unknown fields and garbled lines are skipped), so an older reader
survives a newer trainer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

EVENT_PREFIX = "@@LTX_EVENT "
EVENTS_FILE = "events.jsonl"
SCHEMA_FILE = Path(__file__).with_name("events.schema.json")
DOCS_FILE = Path(__file__).resolve().parents[1] / "docs" / "events.md"

log = logging.getLogger("ltx_train_lib.events")


# ---------------------------------------------------------------------------------------------------- the models

_KIND = "The kind of event (tells the models, and the schema's branches, apart)."


class Event(BaseModel):
    """Fields every event carries. ``extra="forbid"`` makes an unknown field a validation error (a writer's typo or
    an undocumented field); ``strict`` refuses silent coercion (``"3"`` for a step, ``3.0`` for an int)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    event: str = Field(description=_KIND)
    time: float = Field(description="Unix timestamp (seconds, 3 decimals) at which the writer wrote the event.")

    # One line of prose for docs/events.md on when the kind is written (the class docstring is for code readers).
    when: ClassVar[str] = ""


class StartedEvent(Event):
    """A run began (fresh or resumed), after the model loaded and before the first step."""

    when = "Once per run, after the model is loaded (and a checkpoint restored), before the first step."
    event: Literal["started"] = Field(description=_KIND)
    step: int = Field(ge=0, description="First step of this run: 0 for a fresh start, the checkpoint's step after a resume.")
    total: int = Field(ge=0, description="Total optimizer steps of the training (`optimization.steps`).")
    resumed_from: str | None = Field(description="Path of the state checkpoint this run resumed from; null for a fresh start.")
    output_dir: str = Field(description="Absolute path of the run's output folder.")
    num_processes: int = Field(ge=1, description="Number of training processes (ranks).")
    model: str = Field(description="Label of the base model (its source and version).")
    training_mode: Literal["lora", "full"] = Field(description="`model.training_mode`: a LoRA adapter or every weight.")
    effective_batch_size: int = Field(
        ge=1, description="Samples per optimizer step: batch size x processes x gradient accumulation steps."
    )
    pid: int = Field(description="Process id of the rank-0 trainer process.")


class StepEvent(Event):
    """One optimizer step finished."""

    when = "After every optimizer step."
    event: Literal["step"] = Field(description=_KIND)
    step: int = Field(ge=1, description="Optimizer steps completed so far (1 after the first).")
    total: int = Field(ge=0, description="Total optimizer steps of the training.")
    loss: float = Field(description="Training loss of this step, averaged over micro-batches and processes.")
    lr: float = Field(description="Learning rate used for this step.")
    sec_per_step: float = Field(description="Wall-clock seconds this step took.")
    eta_s: float = Field(description="Estimated seconds to the last step: this run's mean step time x steps left.")
    memory_mb: float = Field(description="Peak GPU memory allocated by the trainer (MiB), or its peak RSS on CPU.")


class SampleEvent(Event):
    """Validation videos were written."""

    when = "After each validation round (before training unless skipped, every `validation.interval` steps, at the end)."
    event: Literal["sample"] = Field(description=_KIND)
    step: int = Field(ge=0, description="Step of the weights that made the videos (0 = before training).")
    paths: list[str] = Field(description="Absolute paths of the videos, prompt by prompt, `videos_per_prompt` each.")
    prompts: list[str] = Field(description="The validation prompts (`validation.prompts`), in order.")


class ValidationFailedEvent(Event):
    """A validation round failed (out of memory, a bad image, a codec); training went on without its samples."""

    when = ("Instead of `sample` when generating a validation round raised; the trainer frees the sampler's memory and "
            "keeps training (the step's checkpoint is already written).")
    event: Literal["validation_failed"] = Field(description=_KIND)
    step: int = Field(ge=0, description="Optimizer step whose validation failed (0 = before the first step).")
    message: str = Field(description="The exception's type and message.")


class CheckpointEvent(Event):
    """A resumable state checkpoint was saved."""

    when = "After each state checkpoint is saved (every `checkpoints.interval` steps, on cancel, at the end)."
    event: Literal["checkpoint"] = Field(description=_KIND)
    step: int = Field(ge=0, description="Step the checkpoint holds.")
    path: str = Field(description="Absolute path of the checkpoint folder (`training_state_step_NNNNN`).")


class HealthEvent(Event):
    """The LoRA health gate scanned the weights about to be saved (see ltx_train_lib/lora_health.py)."""

    when = ("Before each LoRA save (every checkpoint, then the final weights; a full fine-tune has none). When `ok` is "
            "false nothing of that step is written and an `error` event follows.")
    event: Literal["health"] = Field(description=_KIND)
    step: int = Field(ge=0, description="Step of the scanned weights.")
    final: bool = Field(description="The run's final weights (which must change the model) rather than a checkpoint's.")
    ok: bool = Field(description="No NaN/Inf tensor and, for the final weights, at least one module that changes the model.")
    tensors: int = Field(ge=0, description="Tensors scanned.")
    modules: int = Field(ge=0, description="LoRA modules (lora_A/lora_B pairs) found.")
    nonfinite: list[str] = Field(description="Names (peft keys) of the tensors holding NaN/Inf values, at most 20.")
    zero_modules: int = Field(ge=0, description="Modules whose update is exactly zero (lora_B or lora_A all zero).")
    problems: list[str] = Field(description="Why the weights are unhealthy; empty when `ok`.")
    warnings: list[str] = Field(description="Worth knowing, not a failure (e.g. some modules still zero).")
    summary: str = Field(description="One line for people: `LoRA health: ok ...` or `LoRA health: FAILED ...`.")


class DoneEvent(Event):
    """Training finished and the final weights are on disk."""

    when = "Last event of a run that reached `total` (also when a re-run finds the run already complete)."
    event: Literal["done"] = Field(description=_KIND)
    step: int = Field(ge=0, description="Steps completed (equals `total`).")
    total: int = Field(ge=0, description="Total optimizer steps of the training.")
    seconds: float = Field(
        description="Wall-clock seconds of this run, from the start of training (model loading included) to this "
        "event; a resumed run counts only itself."
    )
    outputs: dict[str, str] = Field(
        description="Output name -> path: `lora` and `lora_comfy` (LoRA) or `model` (full fine-tune), "
        "`training_config`, `validation_samples` (when written), `hub` (repository URL, when pushed)."
    )
    rank_digests: list[str] = Field(
        description="sha256 of the trained weights on each process, in rank order; they differ only if the "
        "processes diverged."
    )
    final_loss: float | None = Field(
        description="Loss of the last step (kept in checkpoints, so known after a resume too); null when none is known."
    )


class CancelledEvent(Event):
    """The run stopped on request, with a checkpoint to resume from."""

    when = "Last event of a run stopped by SIGTERM/SIGINT or by the death of the parent process or the launcher."
    event: Literal["cancelled"] = Field(description=_KIND)
    step: int = Field(ge=0, description="Steps completed when the run stopped.")
    checkpoint: str | None = Field(
        description="Path of the state checkpoint to resume from; null when none exists yet (stopped while loading)."
    )
    reason: str = Field(
        description="Why: the signal (`SIGTERM`, `SIGINT`), `parent process exited` (the ComfyUI process), "
        "`launcher process exited` (accelerate launch or scripts/train_distributed.py died) or `another process was "
        "stopped`."
    )


# There is deliberately no `log` field: the log file belongs to the job, not to the run. The job supervisor
# (ltx_train_lib.jobs) names it in job.json (`log`, relative to the job folder), where every reader already looks
# (jobs.job_state, the panel's log link); the trainer does not know it (a CLI run's output may not be a file at
# all), and handing it the path through an environment variable would be a second channel for a fact job.json holds.
class ErrorEvent(Event):
    """The run failed."""

    when = ("Last event of a run that raised; the exception then propagates (exit code 1 or 2). A job's log file is "
            "named in its job.json (`log`), not here.")
    event: Literal["error"] = Field(description=_KIND)
    message: str = Field(description="The error message (what went wrong and, for known errors, the fix).")
    step: int = Field(ge=0, description="Steps completed when the error happened (0 before the first step).")


# The registry: kind -> model. Order is the order of the schema branches and of docs/events.md.
_MODELS: tuple[type[Event], ...] = (
    StartedEvent,
    StepEvent,
    SampleEvent,
    ValidationFailedEvent,
    CheckpointEvent,
    HealthEvent,
    DoneEvent,
    CancelledEvent,
    ErrorEvent,
)


def _kind(model: type[Event]) -> str:
    (kind,) = model.model_fields["event"].annotation.__args__  # Literal["x"] -> "x"
    return kind


EVENT_MODELS: dict[str, type[Event]] = {_kind(m): m for m in _MODELS}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_MODELS)
# Any event, told apart by its `event` field: what one line of events.jsonl is.
EventRecord = Annotated[Union[tuple(_MODELS)], Field(discriminator="event")]  # noqa: UP007 - built from the registry


class EventFieldError(ValueError):
    """A writer passed a field the protocol does not define, or a value of the wrong type: a programming error."""


def validate_event(record: dict[str, Any], *, complete: bool = True) -> Event:
    """Check one record against its model; returns the parsed model.

    ``complete=False`` lets required fields be absent (only the names and types of the fields given are checked):
    test stand-ins and tools write partial events that the tolerant readers accept.
    """
    kind = record.get("event")
    model = EVENT_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise EventFieldError(f"unknown event type {kind!r}; the protocol defines {', '.join(EVENT_TYPES)}")
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        problems = [e for e in exc.errors() if complete or e["type"] != "missing"]
        if not problems:
            return model.model_construct(**record)
        text = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" + ("" if e["type"] == "missing" else f" (got {e['input']!r})")
            for e in problems
        )
        raise EventFieldError(f"event {kind!r} does not match {model.__name__} in ltx_train_lib/events.py: {text}") from None


# ---------------------------------------------------------------------------------------------------- writing


class EventWriter:
    """Append-only JSON-lines writer. Each line is written with one ``write`` call and flushed, so a reader never sees
    half a line unless the process dies mid-write; readers skip such a trailing fragment. A flushed line survives
    the death of the process (it is in the OS's cache); ``fsync`` (survives a power cut too) runs on every event
    except the per-step progress ones (:attr:`PROGRESS_EVENTS`), which are fsynced at most every
    ``fsync_interval_s`` and by the next other event: one fsync per step cost 13 ms of a 115 ms tiny-model CPU step
    (bench/README.md), and losing the last seconds of a loss curve to a power cut loses nothing a resume needs.

    Field names and types are checked on every ``emit`` (a mistake raises :class:`EventFieldError`); with
    ``complete=True`` (the trainer's writer) every required field must be there too. I/O errors never raise: the
    trainer emits inside its own error handling, and a full disk or read-only folder must not replace the real
    error or stop a run that could otherwise finish. The first one is logged as a warning.
    """

    PROGRESS_EVENTS: ClassVar[frozenset[str]] = frozenset({"step"})

    def __init__(self, path: str | Path | None, echo_stdout: bool = False, enabled: bool = True, *, complete: bool = False,
                 fsync_interval_s: float = 2.0) -> None:
        self.path = Path(path) if path else None
        self.fsync_interval_s = fsync_interval_s
        self._last_fsync = float("-inf")  # monotonic time of the last fsync
        self.echo_stdout = echo_stdout
        self.enabled = enabled
        self.complete = complete
        self._warned: set[str] = set()
        self._fragment = False  # a failed write may have left part of a line: end it before the next record

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        for reserved in ("event", "time"):
            if reserved in fields:
                raise EventFieldError(f"emit(): {reserved!r} is set by the writer, do not pass it")
        record = {"event": kind, "time": round(time.time(), 3), **fields}
        validate_event(record, complete=self.complete)
        if not self.enabled:
            return record
        line = json.dumps(record, default=_json_default)
        if self.path:
            self._append(line, durable=kind not in self.PROGRESS_EVENTS)
        if self.echo_stdout:
            try:
                sys.stdout.write(EVENT_PREFIX + line + "\n")
                sys.stdout.flush()
            except (OSError, ValueError) as exc:  # ValueError: stdout was closed
                self._warn("stdout", exc)
        return record

    def _append(self, line: str, durable: bool = True) -> None:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                # An empty line is skipped by every reader; it closes a fragment a failed write left behind, which
                # would otherwise swallow this record too.
                fh.write(("\n" if self._fragment else "") + line + "\n")
                fh.flush()
                now = time.monotonic()
                if durable or now - self._last_fsync >= self.fsync_interval_s:
                    os.fsync(fh.fileno())  # also makes the progress lines written since the last one durable
                    self._last_fsync = now
            self._fragment = False
        except OSError as exc:
            self._fragment = True
            self._warn("file", exc)

    def _warn(self, channel: str, exc: OSError | ValueError) -> None:
        if channel in self._warned:
            return
        self._warned.add(channel)
        where = str(self.path) if channel == "file" else "stdout"
        log.warning("progress events cannot be written to %s (%s); training goes on, but monitors reading it will not "
                    "see its progress (further failures are not reported)", where, exc)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


# ---------------------------------------------------------------------------------------------------- reading


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


# ---------------------------------------------------------------------------------------------------- generated files


class _SchemaGenerator(GenerateJsonSchema):
    """Pydantic's generator with two simplifications, so that small validators (the JS tests' own) can read it:
    ``X | None`` becomes ``"type": [X, "null"]`` instead of an ``anyOf``, and properties carry no ``title``."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        if isinstance(inner.get("type"), str):
            return {**inner, "type": [inner["type"], "null"]}
        return super().nullable_schema(schema)

    def field_title_should_be_set(self, schema: Any) -> bool:  # noqa: ARG002 - the descriptions say it all
        return False


def event_schema() -> dict[str, Any]:
    """The JSON Schema of one line of events.jsonl (checked in as ``events.schema.json``)."""
    body = TypeAdapter(EventRecord).json_schema(schema_generator=_SchemaGenerator)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "LTX trainer progress event",
        "description": "One line of events.jsonl. Generated from the models in ltx_train_lib/events.py by "
        "`python -m ltx_train_lib.events --write`; do not edit by hand.",
        **body,
    }


def schema_text() -> str:
    return json.dumps(event_schema(), indent=2, ensure_ascii=False) + "\n"


def _type_text(prop: dict[str, Any]) -> str:
    if "const" in prop:
        return f'`"{prop["const"]}"`'
    if "enum" in prop:
        return " or ".join(f'`"{v}"`' for v in prop["enum"])
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    words = []
    for t in types:
        if t == "array":
            words.append(f"array of {_type_text(prop['items'])}")
        elif t == "object" and isinstance(prop.get("additionalProperties"), dict):
            words.append(f"object of {_type_text(prop['additionalProperties'])}")
        else:
            words.append(t)
    return " or ".join(words)


def markdown_text() -> str:
    """docs/events.md: the event table, from the same models and schema."""
    schema = event_schema()
    lines = [
        "# Training events",
        "",
        "<!-- Generated from ltx_train_lib/events.py by `python -m ltx_train_lib.events --write`; do not edit. -->",
        "",
        "The trainer (rank 0) appends one JSON object per line to `<output_dir>/events.jsonl`, and with",
        f"`--events-stdout` also prints each on stdout after the prefix `{EVENT_PREFIX.strip()} `. The CLI's progress",
        "lines, TensorBoard and W&B logging, the ComfyUI node and the [training monitor](web.md) all read this stream.",
        "",
        "Every event has `event` (its kind) and `time`. The models in `ltx_train_lib/events.py` define the protocol;",
        "`ltx_train_lib/events.schema.json` is its JSON Schema. The trainer writes every field marked *always*; a",
        "writer passing a field that is not listed here, or a value of the wrong type, gets an error. Readers skip",
        "kinds, fields and lines they do not know, so they keep working with a newer trainer.",
        "",
        "A run writes `started`, then `step` events with `sample` and `checkpoint` among them (each LoRA checkpoint",
        "preceded by its `health`), and ends with one of `done`, `cancelled` or `error`. A resumed run appends to the",
        "same file: it starts again with `started` (its `step` is the checkpoint's) and repeats the steps after that",
        "checkpoint.",
        "",
    ]
    for kind, model in EVENT_MODELS.items():
        sub = schema["$defs"][model.__name__]
        required = set(sub.get("required", []))
        lines += [f"## `{kind}`", "", model.when, "", "| field | type | always | meaning |", "| --- | --- | --- | --- |"]
        for name, prop in sub["properties"].items():
            text = prop.get("description", "").replace("|", "\\|")
            if "minimum" in prop:
                text += f" At least {prop['minimum']}."
            lines.append(f"| `{name}` | {_type_text(prop)} | {'yes' if name in required else 'no'} | {text} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltx_train_lib.events", description="Generate the event protocol's files.")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--schema", action="store_true", help="print the JSON Schema (events.schema.json)")
    group.add_argument("--markdown", action="store_true", help="print the event table (docs/events.md)")
    group.add_argument("--write", action="store_true", help=f"rewrite {SCHEMA_FILE.name} and docs/events.md in place")
    args = p.parse_args(argv)
    if args.schema:
        sys.stdout.write(schema_text())
    elif args.markdown:
        sys.stdout.write(markdown_text())
    else:
        SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
        DOCS_FILE.write_text(markdown_text(), encoding="utf-8")
        print(f"wrote {SCHEMA_FILE} and {DOCS_FILE}")
    return 0


if __name__ == "__main__":
    # Through the package module, not this __main__ copy, so there is one set of model classes.
    from ltx_train_lib.events import main as _main

    sys.exit(_main())
