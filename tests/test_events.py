"""The event protocol: models, writer, generated schema and docs, listeners, and a real run checked against the schema."""

from __future__ import annotations

import builtins
import errno
import json
import logging
import re
import sys
import time
import types
from pathlib import Path

import pytest

from ltx_train_lib import events as ev_mod
from ltx_train_lib.events import (
    EVENT_MODELS,
    EVENT_TYPES,
    EventFieldError,
    EventFollower,
    EventWriter,
    parse_event_line,
    read_events,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "monitor_events_resume.jsonl"
REGENERATE = "python -m ltx_train_lib.events --write"

jsonschema = pytest.importorskip("jsonschema")  # in requirements-dev.txt


def _validator():
    schema = json.loads(ev_mod.SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_errors(validator, record: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(record)]


# The kinds a plain run can write; later kinds (validation_failed, health, ...) add to these.
CORE_KINDS = ("started", "step", "sample", "checkpoint", "health", "done", "cancelled", "error")
STEP = dict(step=1, total=4, loss=0.5, lr=1e-4, sec_per_step=0.25, eta_s=0.75, memory_mb=100.0)


# ------------------------------------------------------------------------------------------- generated files


def test_checked_in_schema_is_generated_from_the_models() -> None:
    assert ev_mod.SCHEMA_FILE.read_text(encoding="utf-8") == ev_mod.schema_text(), (
        f"ltx_train_lib/events.schema.json is stale: regenerate it with `{REGENERATE}`"
    )


def test_docs_event_table_is_generated_from_the_models() -> None:
    assert ev_mod.DOCS_FILE.read_text(encoding="utf-8") == ev_mod.markdown_text(), (
        f"docs/events.md is stale: regenerate it with `{REGENERATE}`"
    )
    docs = ev_mod.DOCS_FILE.read_text(encoding="utf-8")
    for kind, model in EVENT_MODELS.items():
        section = docs.split(f"## `{kind}`", 1)[1].split("\n## ", 1)[0]
        for name in model.model_fields:
            assert f"| `{name}` |" in section, f"{kind}.{name} missing from docs/events.md"
    assert "(events.md)" in (ROOT / "docs" / "web.md").read_text(encoding="utf-8"), "docs/web.md should link events.md"


def test_generator_cli_prints_what_is_checked_in(capsys: pytest.CaptureFixture[str]) -> None:
    assert ev_mod.main(["--schema"]) == 0
    assert capsys.readouterr().out == ev_mod.SCHEMA_FILE.read_text(encoding="utf-8")
    assert ev_mod.main(["--markdown"]) == 0
    assert capsys.readouterr().out == ev_mod.DOCS_FILE.read_text(encoding="utf-8")


def test_every_field_is_described_and_every_kind_is_a_schema_branch() -> None:
    for kind, model in EVENT_MODELS.items():
        assert model.when, f"{model.__name__}.when is empty"
        for name, info in model.model_fields.items():
            assert info.description, f"{kind}.{name} has no description"
    schema = json.loads(ev_mod.SCHEMA_FILE.read_text(encoding="utf-8"))
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_TYPES)
    assert [b["$ref"].rsplit("/", 1)[1] for b in schema["oneOf"]] == [m.__name__ for m in EVENT_MODELS.values()]
    assert set(CORE_KINDS) <= set(EVENT_TYPES)
    # The JS tests' validator knows only this subset of JSON Schema: anyOf (what pydantic writes for `X | None`
    # unless the generator simplifies it) would make them throw.
    assert "anyOf" not in json.dumps(schema)


# ------------------------------------------------------------------------------------------- writing


def test_emit_writes_one_line_in_the_unchanged_format(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"  # the folder is created on the first write
    before = time.time()
    record = EventWriter(path).emit("step", **STEP)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    on_disk = json.loads(lines[0])
    assert on_disk == record and list(on_disk) == ["event", "time", *STEP]
    assert on_disk["event"] == "step" and before - 1 <= on_disk["time"] <= time.time() + 1
    assert read_events(path) == [record]


def test_emit_rejects_fields_and_types_the_protocol_does_not_define(tmp_path: Path) -> None:
    w = EventWriter(tmp_path / "e.jsonl")
    with pytest.raises(EventFieldError, match=r"StepEvent.*los: Extra inputs are not permitted"):
        w.emit("step", **{**STEP, "los": 1.0})
    with pytest.raises(EventFieldError, match=r"loss: Input should be a valid number \(got '0.5'\)"):
        w.emit("step", **{**STEP, "loss": "0.5"})
    with pytest.raises(EventFieldError, match="step: Input should be a valid integer"):
        w.emit("step", **{**STEP, "step": True})  # bool is not an int here
    with pytest.raises(EventFieldError, match="step: Input should be a valid integer"):
        w.emit("step", **{**STEP, "step": 2.0})  # no silent coercion
    with pytest.raises(EventFieldError, match="training_mode"):
        w.emit("started", training_mode="dora")
    with pytest.raises(EventFieldError, match="unknown event type 'no_such_kind'; the protocol defines started, step"):
        w.emit("no_such_kind", status="ok")
    with pytest.raises(EventFieldError, match="'time' is set by the writer"):
        w.emit("step", time=1.0)
    assert not (tmp_path / "e.jsonl").exists()  # nothing invalid reached the file
    # Partial events are fine for a writer that does not promise completeness (tests, stand-ins) ...
    assert w.emit("started", step=0, total=3)["total"] == 3
    # ... but not for the trainer's writer.
    strict = EventWriter(tmp_path / "t.jsonl", complete=True)
    with pytest.raises(EventFieldError, match="lr: Field required"):
        strict.emit("step", **{k: v for k, v in STEP.items() if k != "lr"})
    assert strict.emit("step", **STEP)["lr"] == 1e-4


def test_emit_survives_a_full_disk_and_warns_once(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux)")
    w = EventWriter("/dev/full", echo_stdout=True)  # every write there fails with ENOSPC
    with caplog.at_level(logging.WARNING, logger="ltx_train_lib.events"):
        first = w.emit("step", **STEP)
        w.emit("step", **{**STEP, "step": 2})
    assert first["step"] == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "/dev/full" in warnings[0].getMessage() and "training goes on" in warnings[0].getMessage()
    echoed = [parse_event_line(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["step"] for e in echoed] == [1, 2]  # the stdout echo still works


def test_emit_survives_a_folder_it_cannot_create(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")  # works as root too, unlike a chmod'ed folder
    w = EventWriter(blocker / "out" / "events.jsonl")
    with caplog.at_level(logging.WARNING, logger="ltx_train_lib.events"):
        w.emit("error", message="boom", step=0)
    assert "cannot be written" in caplog.text


def test_a_write_cut_short_does_not_swallow_the_next_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    real_open = builtins.open

    class HalfWriter:
        def __init__(self, fh) -> None:
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.fh.close()

        def write(self, text: str) -> int:
            self.fh.write(text[: len(text) // 2])  # what a disk that fills up mid-line leaves behind
            self.fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    w = EventWriter(path)
    w.emit("step", **STEP)
    monkeypatch.setattr(ev_mod, "open", lambda *a, **k: HalfWriter(real_open(*a, **k)), raising=False)
    w.emit("step", **{**STEP, "step": 2})  # half written, not raised
    monkeypatch.undo()
    w.emit("step", **{**STEP, "step": 3})
    assert [e["step"] for e in read_events(path)] == [1, 3]
    assert [e["step"] for e in EventFollower(path).poll()] == [1, 3]


def test_readers_skip_unknown_kinds_and_garbled_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = json.dumps({"event": "step", "time": 1.0, **STEP, "added_later": 1})  # unknown fields are kept
    path.write_text("\n".join(['{"event": "no_such_kind", "time": 1}', "not json", '{"event": "st', good, '{"event": "done"']))
    # the unfinished last line (no newline yet) is not read; the complete one is, unknown field included
    assert [(e["step"], e["added_later"]) for e in read_events(path)] == [(1, 1)]
    assert [e["step"] for e in EventFollower(path).poll()] == [1]
    assert parse_event_line(ev_mod.EVENT_PREFIX + good)["step"] == 1


# ------------------------------------------------------------------------------------------- readers vs models


def _python_reads() -> set[str]:
    """Event fields the Python readers read: `ev` is their name for an event record (as in web/lib)."""
    found: set[str] = set()
    files = [*ROOT.glob("ltx_train_lib/**/*.py"), *ROOT.glob("nodes/*.py")]
    for f in files:
        text = f.read_text(encoding="utf-8")
        found |= {m[2] for m in re.finditer(r"\bev(?:\.get\(|\[)([\"'])(\w+)\1", text)}
        # the job's `done` event travels as Job.result
        found |= {m[1] for m in re.finditer(r"\.result or \{\}\)\.get\([\"'](\w+)", text)}
    return found


def test_python_readers_read_only_defined_fields() -> None:
    defined = {name for model in EVENT_MODELS.values() for name in model.model_fields}
    reads = _python_reads()
    assert {"seconds", "reason", "final_loss", "outputs", "message"} <= reads, sorted(reads)
    assert reads - defined == set(), "these fields are read but the protocol (ltx_train_lib/events.py) defines none"


def test_shared_monitor_fixture_conforms_to_the_schema() -> None:
    validator = _validator()
    records = read_events(FIXTURE)
    assert len(records) == len(FIXTURE.read_text().splitlines()) == 18
    for i, rec in enumerate(records, 1):
        assert _schema_errors(validator, rec) == [], f"{FIXTURE.name} line {i}"
    # and the validator is not vacuous
    step = next(r for r in records if r["event"] == "step")
    assert _schema_errors(validator, {**step, "loss": "x"}) and _schema_errors(validator, {**step, "extra": 1})
    assert _schema_errors(validator, {k: v for k, v in step.items() if k != "memory_mb"})


# ------------------------------------------------------------------------------------------- a real run


def test_real_runs_write_only_schema_valid_events(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.training.trainer import Trainer
    from tests.conftest import tiny_config_dict

    validator = _validator()
    seen: list[dict] = []
    # done: started, sample (step 0 and the end), step, checkpoint, done; TensorBoard listens too
    cfg = tiny_config_dict(
        precomputed_dataset, tmp_path / "ok", optimization__steps=2, checkpoints__interval=1, tensorboard={"enabled": True},
        validation={"prompts": ["a red square"], "interval": 2, "video_dims": [64, 32, 9], "inference_steps": 2},
    )
    t0 = time.perf_counter()
    result = Trainer(config_from_dict(cfg), listeners=[seen.append]).train()
    wall = time.perf_counter() - t0
    assert result.status == "done"
    # cancelled: a stop requested while the model loads
    cancel = Trainer(config_from_dict(tiny_config_dict(precomputed_dataset, tmp_path / "cancel")))
    monkeypatch.setattr(cancel.stop, "check_parent", lambda: setattr(cancel.stop, "reason", "parent process exited"))
    assert cancel.train().status == "cancelled"
    # error: a failure after the events file exists
    failing = Trainer(config_from_dict(tiny_config_dict(precomputed_dataset, tmp_path / "error")))

    def broken(*args, **kwargs):  # noqa: ARG001
        raise RuntimeError("transformer exploded")

    monkeypatch.setattr("ltx_train_lib.training.trainer.build_trainable_model", broken)
    with pytest.raises(RuntimeError, match="exploded"):
        failing.train()

    kinds: set[str] = set()
    for run in ("ok", "cancel", "error"):
        path = tmp_path / run / "events.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines and all(lines)
        for i, line in enumerate(lines, 1):
            record = json.loads(line)
            assert _schema_errors(validator, record) == [], f"{run}/events.jsonl line {i}: {line}"
            kinds.add(record["event"])
    assert kinds == set(CORE_KINDS)  # each was written and checked

    events = read_events(tmp_path / "ok" / "events.jsonl")
    assert seen == events  # the listeners get exactly what the file holds
    done = events[-1]
    assert done["event"] == "done" and 0 < done["seconds"] <= wall
    assert done["final_loss"] == pytest.approx(next(e for e in reversed(events) if e["event"] == "step")["loss"], abs=1e-6)
    assert done["rank_digests"] and len(done["rank_digests"][0]) == 64
    assert [e["step"] for e in events if e["event"] == "sample"] == [0, 2]
    assert read_events(tmp_path / "cancel" / "events.jsonl")[-1]["reason"] == "parent process exited"
    err = read_events(tmp_path / "error" / "events.jsonl")[-1]
    assert (err["event"], err["message"], err["step"]) == ("error", "transformer exploded", 0)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "ok" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]
    assert [round(e.value, 6) for e in acc.Scalars("train/loss")] == [e["loss"] for e in events if e["event"] == "step"]
    assert any(t.startswith("validation/prompts") for t in acc.Tags()["tensors"])  # add_text, fed by the sample events


# ------------------------------------------------------------------------------------------- listeners


class _FakeRun:
    def __init__(self) -> None:
        self.logged: list[tuple[dict, int]] = []
        self.finished: list[int] = []

    def log(self, data: dict, step: int) -> None:
        self.logged.append((data, step))

    def finish(self, exit_code: int = 0) -> None:
        self.finished.append(exit_code)


def _fake_wandb(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    calls = types.SimpleNamespace(init=[], run=_FakeRun())

    def init(**kwargs):
        calls.init.append(kwargs)
        return calls.run

    class Video:
        def __init__(self, path: str, caption: str) -> None:
            self.path, self.caption = path, caption

    module = types.ModuleType("wandb")
    module.init, module.Video = init, Video
    monkeypatch.setitem(sys.modules, "wandb", module)
    return calls


def test_wandb_listener_logs_steps_and_videos_and_finishes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.training.listeners import WandbListener, build_listeners
    from tests.conftest import tiny_config_dict

    calls = _fake_wandb(monkeypatch)
    cfg = config_from_dict(tiny_config_dict(tmp_path / "ds", tmp_path / "out", wandb={"enabled": True, "project": "p"}))
    (listener,) = build_listeners(cfg, tmp_path / "out", run_id="out-abc")
    assert isinstance(listener, WandbListener)
    assert calls.init[0]["id"] == "out-abc" and calls.init[0]["project"] == "p" and calls.init[0]["resume"] == "allow"
    for rec in read_events(FIXTURE):
        listener(rec)
    # The fixture holds two runs; a listener lives for one (the first ends `cancelled`): it finishes there and
    # ignores the rest, as a new trainer process would start its own.
    steps = [(d, s) for d, s in calls.run.logged if "train/loss" in d]
    assert [s for _, s in steps] == [1, 2, 3, 4, 5, 6]
    assert steps[0][0] == {"train/loss": 1.0, "train/learning_rate": 1.6666666666666667e-05, "train/step_time": 2.0}
    videos = [(d["validation/videos"], s) for d, s in calls.run.logged if "validation/videos" in d]
    assert [s for _, s in videos] == [5] and [(v.path, v.caption) for v in videos[0][0]] == [
        ("validation_samples/step_000005_0.mp4", "step_000005_0.mp4")]
    assert calls.run.finished == [0] and listener.closed


def test_wandb_listener_marks_a_failed_run_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    from ltx_train_lib.training.listeners import WandbListener, close_listeners

    class Flaky(_FakeRun):
        def log(self, data: dict, step: int) -> None:
            raise ConnectionError("wandb is down")

    run = Flaky()
    listener = WandbListener(run, log_validation_videos=False)
    with caplog.at_level(logging.WARNING, logger="ltx_train_lib.listeners"):
        listener({"event": "step", "time": 1.0, **STEP})
        listener({"event": "step", "time": 2.0, **{**STEP, "step": 2}})
        listener({"event": "error", "time": 3.0, "message": "x", "step": 2})
    assert caplog.text.count("could not log") == 1 and "wandb is down" in caplog.text
    assert run.finished == [1]
    close_listeners([listener, print])  # already closed; plain callables have nothing to close
    assert run.finished == [1]


def test_no_tracker_enabled_means_no_listener(tmp_path: Path) -> None:
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.training.listeners import build_listeners
    from tests.conftest import tiny_config_dict

    assert build_listeners(config_from_dict(tiny_config_dict(tmp_path, tmp_path / "o")), tmp_path / "o") == []


def test_cli_printer_reads_the_same_records(capsys: pytest.CaptureFixture[str]) -> None:
    from ltx_train_lib.cli.train import ProgressPrinter

    printer = ProgressPrinter(bars=False, every=5)
    for rec in read_events(FIXTURE):
        printer(rec)
    out = capsys.readouterr().out
    assert "training lora on tiny: step 0/10, 1 process(es)\n" in out
    assert "step 5/10  loss 0.6000  lr 8.33e-05  2.00s/step  1029 MB  eta 10s" in out
    assert "stopped at step 6 (SIGTERM); resumable checkpoint: checkpoints/step_000006" in out
    assert ", resumed from checkpoints/step_000005" in out
    assert "done in 20m 34s, final loss 0.3000. outputs:\n  lora: /jobs/j1/lora_weights.safetensors" in out


def test_step_events_are_flushed_each_time_and_fsynced_at_most_every_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One fsync per step was the largest per-step cost of a small model's run; lines must still reach the file at once.
    synced: list[int] = []
    real_fsync = ev_mod.os.fsync
    monkeypatch.setattr(ev_mod.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path, fsync_interval_s=3600.0)
    writer.emit("step", step=1, total=3, loss=0.5, lr=1e-4, sec_per_step=0.1, eta_s=1.0, memory_mb=1.0)
    assert len(synced) == 1  # the first progress line is synced (nothing was yet)
    writer.emit("step", step=2, total=3, loss=0.4, lr=1e-4, sec_per_step=0.1, eta_s=1.0, memory_mb=1.0)
    writer.emit("step", step=3, total=3, loss=0.3, lr=1e-4, sec_per_step=0.1, eta_s=1.0, memory_mb=1.0)
    assert len(synced) == 1
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2, 3]  # flushed, readable at once
    writer.emit("checkpoint", step=3, path=str(tmp_path / "c"))
    assert len(synced) == 2  # every other event is durable, and with it the steps before it
    EventWriter(path, fsync_interval_s=0.0).emit("step", step=4, total=4, loss=0.2, lr=1e-4, sec_per_step=0.1, eta_s=0.0,
                                                  memory_mb=1.0)
    assert len(synced) == 3
