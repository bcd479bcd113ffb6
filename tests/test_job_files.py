"""ltx_train_lib.jobs, the routes' side: job listing, event folding, status derivation, safe file access, cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ltx_train_lib import jobs as jf
from ltx_train_lib.events import EventWriter, read_events
from ltx_train_lib.jobs.listing import TAIL_BYTES

FIXTURES = Path(__file__).parent / "fixtures"
posix_only = pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")


# ----------------------------------------------------------------------------------------------------- helpers


def make_job(root: Path, job_id: str, status: str = "running", pgid: int | None = None, events=(), **meta) -> Path:
    folder = root / job_id
    folder.mkdir(parents=True)
    body = {
        "id": job_id,
        "name": meta.pop("name", job_id),
        "created": meta.pop("created", time.time() - 60),
        "status": status,
        "pgid": pgid,
        "output_dir": str(folder),
        "config": "training_config.yaml",
        "log": "train.log",
        **meta,
    }
    (folder / "job.json").write_text(json.dumps(body))
    writer = EventWriter(folder / "events.jsonl")
    for ev in events:
        ev = dict(ev)
        writer.emit(ev.pop("event"), **ev)
    return folder


def ema_reference(values: list[float], w: float = 0.9) -> float:
    """Independent restatement of the bias-corrected EMA: weighted mean with weights w^(n-1-i)."""
    n = len(values)
    weights = [(1 - w) * w ** (n - 1 - i) for i in range(n)]
    return sum(wi * v for wi, v in zip(weights, values, strict=True)) / sum(weights)


@pytest.fixture
def sleeper():
    """A real child in its own session (like the `accelerate launch` child): its pid is its process group id."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------------------- folding


def test_fold_resume_matches_shared_expectations():
    events = read_events(FIXTURES / "monitor_events_resume.jsonl")
    want = json.loads((FIXTURES / "monitor_events_resume.expected.json").read_text())
    folder = Path(want["job_dir"])
    st = jf.fold_events(events, folder, folder)

    assert st["status"] == want["status"]
    assert (st["step"], st["total"]) == (want["step"], want["total"])
    assert [[s["step"], s["loss"]] for s in st["steps"]] == want["steps"]  # step 6 re-run replaces the old 0.55
    assert st["loss"] == want["loss"]
    assert st["lr"] == pytest.approx(want["lr"])
    assert st["sec_per_step"] == want["sec_per_step"]
    assert st["memory_mb"] == want["memory_mb"]
    assert st["eta_s"] == want["eta_s"]
    assert [[r["step"], r["resumed_from"]] for r in st["runs"]] == want["runs"]
    assert [[s["step"], s["files"], s["prompts"]] for s in st["samples"]] == want["samples"]
    assert [[c["step"], c["file"]] for c in st["checkpoints"]] == want["checkpoints"]
    assert st["done"]["seconds"] == want["done_seconds"]
    assert st["event_count"] == want["event_count"]
    losses = [loss for _, loss in want["steps"]]
    assert st["smoothed_loss"] == pytest.approx(ema_reference(losses))
    assert st["steps"][0]["smoothed"] == pytest.approx(1.0)  # bias-corrected: the first value is itself


def test_fold_resume_forgets_the_steps_it_will_repeat():
    events = read_events(FIXTURES / "monitor_events_resume.jsonl")
    resumed = next(i for i, e in enumerate(events) if e["event"] == "started" and e["step"] > 0)
    st = jf.fold_events(events[: resumed + 1])  # resumed from step 5, nothing new logged yet
    assert st["status"] == "running" and st["step"] == 5
    assert [s["step"] for s in st["steps"]] == [1, 2, 3, 4, 5]  # the cancelled run's step 6 is gone
    assert [s["step"] for s in st["samples"]] == [5]
    assert st["cancelled"] is None and len(st["runs"]) == 2


def test_fold_duplicates_change_nothing():
    events = read_events(FIXTURES / "monitor_events_resume.jsonl")
    once = jf.fold_events(events)
    twice = jf.fold_events([e for ev in events for e in (ev, dict(ev))])
    assert twice == once
    assert len(twice["runs"]) == 2 and len(twice["samples"]) == 2 and twice["event_count"] == len(events)


def test_fold_cancelled_then_error_and_nan_loss():
    events = [
        {"event": "started", "time": 1.0, "step": 0, "total": 4},
        {"event": "step", "time": 2.0, "step": 1, "total": 4, "loss": float("nan"), "lr": 1e-4, "eta_s": 9.0},
        {"event": "step", "time": 3.0, "step": 2, "total": 4, "loss": 0.5, "lr": 1e-4, "eta_s": 6.0},
        {"event": "cancelled", "time": 4.0, "step": 2, "checkpoint": "checkpoints/step_000002", "reason": "SIGTERM"},
    ]
    st = jf.fold_events(events)
    assert st["status"] == "cancelled"
    assert st["cancelled"] == {"step": 2, "checkpoint": "checkpoints/step_000002", "reason": "SIGTERM"}
    assert st["eta_s"] is None  # no ETA for a job that stopped
    assert st["steps"][0]["loss"] is None and st["steps"][0]["smoothed"] is None
    assert st["smoothed_loss"] == pytest.approx(0.5)  # the NaN does not poison the average

    failed = jf.fold_events([*events[:3], {"event": "error", "time": 5.0, "step": 2, "message": "CUDA out of memory"}])
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "CUDA out of memory"


def test_fold_keeps_the_last_health_verdict():
    health = {"event": "health", "final": False, "tensors": 4, "modules": 2, "nonfinite": [], "zero_modules": 0,
              "problems": [], "warnings": []}
    events = [
        {"event": "started", "time": 1.0, "step": 0, "total": 4},
        {**health, "time": 2.0, "step": 2, "ok": True, "summary": "LoRA health: ok at step 2"},
        {**health, "time": 3.0, "step": 4, "ok": False, "final": True, "nonfinite": ["a.lora_B.weight"],
         "summary": "LoRA health: FAILED at step 4: 1 tensor(s) hold NaN/Inf values"},
        {"event": "error", "time": 3.1, "step": 4, "message": "the LoRA at step 4: LoRA health check failed"},
    ]
    assert jf.fold_events(events[:2])["health"] == {"step": 2, "ok": True, "final": False, "summary": "LoRA health: ok at step 2"}
    st = jf.fold_events(events)
    assert st["status"] == "failed" and st["health"]["ok"] is False and st["health"]["final"] is True
    assert st["health"]["summary"].startswith("LoRA health: FAILED at step 4") and jf.fold_events([])["health"] is None


def test_ema_reference_and_gaps():
    assert jf.ema([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    values = [1.0, 0.5, 0.8, 0.2]
    assert jf.ema(values)[-1] == pytest.approx(ema_reference(values))
    assert jf.ema([1.0, None, 0.5]) == [pytest.approx(1.0), None, pytest.approx(ema_reference([1.0, 0.5]))]


# ------------------------------------------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("meta_status", "events", "alive", "want"),
    [
        ("running", ["started", "done"], None, "finished"),  # events win over a stale job.json
        ("running", ["started", "cancelled"], True, "cancelled"),
        ("running", ["started", "error"], None, "failed"),
        ("failed", ["started", "error", "started"], True, "running"),  # resumed after a failure
        ("running", ["started"], False, "failed"),  # process gone without a final event
        ("cancelled", ["started"], False, "cancelled"),  # the node saw the kill before the trainer could write
        ("running", ["started"], None, "running"),  # cannot tell (no pgid / Windows): trust job.json
        ("queued", [], None, "queued"),
        ("done", [], None, "finished"),
    ],
)
def test_derive_status(meta_status, events, alive, want):
    meta = {"status": meta_status, "pgid": None if alive is None else 12345}
    status, note = jf.derive_status(meta, [{"event": e, "time": i} for i, e in enumerate(events)], alive)
    assert status == want
    assert (note is not None) == (want == "failed" and "error" not in events)


@posix_only
def test_list_jobs_running_job_is_alive_only_while_its_process_group_is(tmp_path, sleeper):
    root = tmp_path / "jobs"
    make_job(root, "live", pgid=sleeper.pid, events=[{"event": "started", "step": 0, "total": 5}])
    (job,) = jf.list_jobs(root)
    assert job["status"] == "running"
    sleeper.kill()
    sleeper.wait(timeout=10)
    (job,) = jf.list_jobs(root)
    assert job["status"] == "failed"
    assert "ended without reporting" in job["error"]


@posix_only
def test_recycled_pid_is_not_the_job(sleeper):
    assert jf.group_alive(sleeper.pid, created=time.time() - 30) is True
    if not Path(f"/proc/{sleeper.pid}/stat").exists():
        pytest.skip("no /proc to read start times from")
    # a job created an hour after this process started cannot own it
    assert jf.group_alive(sleeper.pid, created=time.time() + 3600) is False


def test_process_group_alive_rejects_nonsense():
    for pgid in (None, 0, 1, -5, "123", True):
        assert jf.group_alive(pgid) is False


# ----------------------------------------------------------------------------------------------------- list/state


def test_list_jobs(tmp_path):
    root = tmp_path / "jobs"
    assert jf.list_jobs(root) == []  # no root yet: nothing run so far
    make_job(
        root,
        "old",
        status="done",
        created=100.0,
        events=[{"event": "started", "step": 0, "total": 2}, {"event": "step", "step": 2, "total": 2, "loss": 0.25}],
    )
    make_job(root, "new", status="queued", created=200.0, name="My LoRA")
    (root / "not_a_job").mkdir()
    (root / ".new.tmp123").mkdir()  # an atomic writer's temp folder
    (root / "stray.txt").write_text("x")
    bad = root / "broken"
    bad.mkdir()
    (bad / "job.json").write_text("{not json")
    cli_only = root / "cli_run"
    cli_only.mkdir()
    EventWriter(cli_only / "events.jsonl").emit("started", step=0, total=3)
    outside = tmp_path / "elsewhere"
    make_job(outside, "sneaky")
    (root / "linked").symlink_to(outside / "sneaky")

    jobs = {j["id"]: j for j in jf.list_jobs(root)}
    assert set(jobs) == {"old", "new", "broken", "cli_run"}
    assert jobs["old"]["status"] == "finished"  # job.json "done" is displayed as finished
    assert (jobs["old"]["step"], jobs["old"]["total"], jobs["old"]["loss"]) == (2, 2, 0.25)
    assert jobs["new"]["status"] == "queued" and jobs["new"]["name"] == "My LoRA"
    assert jobs["broken"]["status"] == "unknown" and "job.json" in jobs["broken"]["error"]
    assert jobs["cli_run"]["status"] == "running"
    order = [j["id"] for j in jf.list_jobs(root) if j["id"] in ("old", "new")]
    assert order == ["new", "old"]  # newest first


def test_list_jobs_reads_only_the_tail_of_long_event_files(tmp_path):
    root = tmp_path / "jobs"
    folder = make_job(root, "long", status="running", events=[{"event": "started", "step": 0, "total": 5000}])
    writer = EventWriter(folder / "events.jsonl")
    for s in range(1, 3001):
        writer.emit("step", step=s, total=5000, loss=1.0 / s, lr=1e-4, sec_per_step=0.5, eta_s=1.0, memory_mb=10.0)
    assert (folder / "events.jsonl").stat().st_size > 4 * TAIL_BYTES
    (job,) = jf.list_jobs(root)
    assert (job["step"], job["total"]) == (3000, 5000)
    assert job["loss"] == pytest.approx(1 / 3000)


def test_job_state_paths_relative_to_job_folder(tmp_path):
    root = tmp_path / "jobs"
    folder = root / "j1"
    make_job(
        root,
        "j1",
        status="done",
        node_id="7",
        events=[
            {"event": "started", "step": 0, "total": 2},
            {"event": "step", "step": 1, "total": 2, "loss": 0.4, "lr": 2e-4, "memory_mb": 512.0},
            {
                "event": "sample",
                "step": 1,
                "paths": [str(folder / "validation_samples" / "s1.mp4"), "validation_samples/s2.mp4", "/tmp/x.mp4"],
                "prompts": ["p1", "p2", "p3"],
            },
            {"event": "checkpoint", "step": 1, "path": str(folder / "checkpoints" / "step_000001")},
            {"event": "done", "step": 2, "total": 2, "seconds": 3.0, "outputs": {}},
        ],
    )
    st = jf.job_state(root, "j1")
    assert st["status"] == "finished"
    assert st["samples"][0]["files"] == ["validation_samples/s1.mp4", "validation_samples/s2.mp4", None]
    assert st["checkpoints"][0]["file"] == "checkpoints/step_000001"
    assert (st["id"], st["node_id"], st["job_dir"]) == ("j1", "7", str(folder.resolve()))
    assert st["memory_mb"] == 512.0 and st["lr"] == 2e-4


@posix_only
def test_job_state_failed_without_error_event_says_why(tmp_path):
    root = tmp_path / "jobs"
    make_job(root, "dead", status="running", pgid=2**22 + 12345, events=[{"event": "started", "step": 0, "total": 5}])
    st = jf.job_state(root, "dead")
    assert st["status"] == "failed"
    assert "ended without reporting" in st["error"]["message"]
    assert st["error"]["log"] == "train.log"


def test_job_events_since(tmp_path):
    root = tmp_path / "jobs"
    make_job(
        root, "j", events=[{"event": "started", "step": 0, "total": 3}] + [{"event": "step", "step": s} for s in (1, 2)]
    )
    events, nxt = jf.job_events(root, "j", 0)
    assert [e["event"] for e in events] == ["started", "step", "step"] and nxt == 3
    events, nxt = jf.job_events(root, "j", 2)
    assert [e["step"] for e in events] == [2] and nxt == 3
    assert jf.job_events(root, "j", 3) == ([], 3)
    with pytest.raises(jf.JobNotFoundError):
        jf.job_events(root, "missing", 0)


# ------------------------------------------------------------------------------------------------- file access


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "jobs"
    folder = make_job(root, "j1")
    (folder / "validation_samples").mkdir()
    (folder / "validation_samples" / "step_000005_0.mp4").write_bytes(b"video")
    (folder / "validation_samples" / "with space.mp4").write_bytes(b"spaced")
    (tmp_path / "secret.txt").write_text("secret")
    (folder / "escape.mp4").symlink_to(tmp_path / "secret.txt")
    (folder / "escape_dir").symlink_to(tmp_path)
    (folder / "inner_link.mp4").symlink_to(folder / "validation_samples" / "step_000005_0.mp4")
    return root, folder


def test_resolve_job_file_serves_files_inside(served):
    root, folder = served
    got = jf.resolve_job_file(root, "j1", "validation_samples/step_000005_0.mp4")
    assert got.read_bytes() == b"video"
    assert jf.resolve_job_file(root, "j1", "validation_samples/with%20space.mp4").read_bytes() == b"spaced"
    assert jf.resolve_job_file(root, "j1", "inner_link.mp4").read_bytes() == b"video"  # a link that stays inside


@pytest.mark.parametrize(
    "relpath",
    [
        "../secret.txt",
        "../../etc/passwd",
        "validation_samples/../../secret.txt",
        "..%2fsecret.txt",
        "..%2F..%2Fsecret.txt",
        "%2e%2e/secret.txt",
        "%2E%2E%2Fsecret.txt",
        "%252e%252e/secret.txt",  # double-encoded: still an escape after one decode
        "..%252fsecret.txt",
        "/etc/passwd",
        "%2fetc/passwd",
        "C:/Windows/win.ini",
        "..\\secret.txt",
        "validation_samples\\step_000005_0.mp4",
        "..%5csecret.txt",
        "a\x00b",
        "a%00b",
        "escape.mp4",  # symlink to a file outside
        "escape_dir/secret.txt",  # symlinked folder outside
        "./job.json",
        "%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 dots: not valid UTF-8
    ],
)
def test_resolve_job_file_refuses_escapes(served, relpath):
    root, _ = served
    with pytest.raises(jf.UnsafeJobPathError):
        jf.resolve_job_file(root, "j1", relpath)


@pytest.mark.parametrize("job_id", ["..", ".", "", "a/b", "a\\b", ".hidden", "j1\x00", "%2e%2e", "j1/../j1"])
def test_resolve_job_file_refuses_bad_job_ids(served, job_id):
    root, _ = served
    with pytest.raises(jf.UnsafeJobPathError):
        jf.resolve_job_file(root, job_id, "job.json")


def test_resolve_job_file_not_found(served, tmp_path):
    root, _ = served
    for relpath in ("missing.mp4", "validation_samples", "validation_samples/", "", "job.json/x"):
        with pytest.raises(jf.JobNotFoundError):
            jf.resolve_job_file(root, "j1", relpath)
    with pytest.raises(jf.JobNotFoundError):
        jf.resolve_job_file(root, "nope", "job.json")
    make_job(tmp_path / "elsewhere", "other")
    (root / "linkjob").symlink_to(tmp_path / "elsewhere" / "other")
    with pytest.raises(jf.UnsafeJobPathError):
        jf.resolve_job_file(root, "linkjob", "job.json")


def test_resolve_job_file_decodes_exactly_once(served):
    """The path comes as the URL spells it: one decoding, so an escaped '%' stays a '%'."""
    root, folder = served
    (folder / "x%41.mp4").write_bytes(b"literal percent")
    (folder / "xA.mp4").write_bytes(b"letter A")
    assert jf.resolve_job_file(root, "j1", "x%2541.mp4").read_bytes() == b"literal percent"
    assert jf.resolve_job_file(root, "j1", "x%41.mp4").read_bytes() == b"letter A"


def test_resolve_job_file_refuses_hard_links(served, tmp_path):
    root, folder = served
    os.link(tmp_path / "secret.txt", folder / "hard.mp4")  # another name of a file outside the folder
    with pytest.raises(jf.UnsafeJobPathError, match="hard link"):
        jf.resolve_job_file(root, "j1", "hard.mp4")
    # Both names inside count too: from the file alone there is no telling which name is the "real" one.
    os.link(folder / "validation_samples" / "step_000005_0.mp4", folder / "twin.mp4")
    for relpath in ("twin.mp4", "validation_samples/step_000005_0.mp4"):
        with pytest.raises(jf.UnsafeJobPathError, match="hard link"):
            jf.resolve_job_file(root, "j1", relpath)
    assert jf.resolve_job_file(root, "j1", "validation_samples/with%20space.mp4").read_bytes() == b"spaced"


def test_access_errors_name_no_server_path(served, tmp_path):
    """These messages reach the browser: job ids and paths inside the job folder only."""
    root, folder = served
    (folder / "loop.mp4").symlink_to(folder / "loop.mp4")
    broken = make_job(root, "broken")
    (broken / "job.json").write_text("{not json")
    attempts = [
        lambda: jf.job_dir(root, "nope"),
        lambda: jf.resolve_job_file(root, "j1", "missing.mp4"),
        lambda: jf.resolve_job_file(root, "j1", "validation_samples"),
        lambda: jf.resolve_job_file(root, "j1", "escape.mp4"),
        lambda: jf.resolve_job_file(root, "j1", "loop.mp4"),
        lambda: jf.resolve_job_file(root, "j1", "../secret.txt"),
        lambda: jf.cancel_job(root, "broken"),
    ]
    messages = []
    for attempt in attempts:
        with pytest.raises(jf.JobAccessError) as info:
            attempt()
        messages.append(str(info.value))
    messages.append(jf.job_summary(root, "broken")["error"])
    messages.append(jf.job_state(root, "broken")["error"]["message"])
    assert "symlink loop" in messages[4] and "not valid JSON" in messages[-1]
    for message in messages:
        assert message and str(tmp_path) not in message and str(tmp_path.resolve()) not in message, message


def test_unreadable_events_are_one_message(served, tmp_path, monkeypatch):
    root, folder = served
    import errno

    from ltx_train_lib.jobs import listing

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(listing, "read_events", denied)
    with pytest.raises(jf.JobReadError) as info:
        jf.job_events(root, "j1", 0)
    assert str(info.value) == "job 'j1': events.jsonl cannot be read (Permission denied)"
    assert info.value.http_status == 500


# ----------------------------------------------------------------------------------------------------------- cancel


@posix_only
def test_cancel_sends_sigterm_to_the_process_group(tmp_path, sleeper):
    root = tmp_path / "jobs"
    make_job(root, "run", pgid=sleeper.pid, events=[{"event": "started", "step": 0, "total": 5}])
    assert jf.cancel_job(root, "run") is True
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert jf.cancel_job(root, "run") is False  # gone now: nothing to signal


@posix_only
def test_cancel_refuses_finished_jobs_and_our_own_group(tmp_path, sleeper):
    root = tmp_path / "jobs"
    make_job(root, "done", status="done", pgid=sleeper.pid, events=[{"event": "started"}, {"event": "done", "step": 1}])
    assert jf.cancel_job(root, "done") is False
    assert sleeper.poll() is None  # a finished job's (recycled) pgid is never signalled
    make_job(root, "self", pgid=os.getpgrp(), events=[{"event": "started", "step": 0, "total": 5}])
    with pytest.raises(jf.CancelError, match="no process group of its own"):
        jf.cancel_job(root, "self")
    with pytest.raises(jf.UnsafeJobPathError):
        jf.cancel_job(root, "..")


@posix_only
def test_a_zombie_group_is_not_alive() -> None:
    """A child that exited but was never reaped (as under a container init that reaps nothing) is not running."""
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        stat = Path(f"/proc/{child.pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    try:
        assert jf.group_alive(child.pid) is False
    finally:
        child.wait()
