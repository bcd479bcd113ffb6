"""Distributed runs that fail cleanly (gloo on the CPU, the tiny model): a SIGKILLed launcher leaves no worker
behind, a stalled rank is named within the collective timeout, and two `accelerate launch` groups on loopback (two
"machines") train to identical weights.

The runs are real ``scripts/train_distributed.py`` processes; their workers are found as the launcher's descendants
(psutil) and signalled like a user or the kernel would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from ltx_train_lib.errors import TrainingError
from ltx_train_lib.events import read_events
from ltx_train_lib.training.liveness import RankBoard, RankPosition, Watchdog, describe_stall, is_collective_failure
from ltx_train_lib.training.stop import PARENT_PID_ENV, StopFlag
from tests.conftest import tiny_config_dict

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "scripts" / "train_distributed.py")


def _write_config(tmp_path: Path, dataset: Path, name: str = "c.yaml", **overrides) -> tuple[Path, Path]:
    out = tmp_path / "out"
    cfg = tiny_config_dict(dataset, out, optimization__batch_size=1, checkpoints__interval=None, **overrides)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path, out


def _start(config: Path, tmp_path: Path, *extra: str, tag: str = "run") -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"{tag}.log"
    with open(log, "wb") as fh:  # a file, not a pipe: nothing blocks on a full pipe, and orphans can still write
        proc = subprocess.Popen([sys.executable, SCRIPT, str(config), "--disable_progress_bars", *extra],
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc, log


def _wait_for(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-4000:] if log is not None and log.is_file() else ""
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{tail}")


def _events(out: Path, kind: str) -> list[dict]:
    return [e for e in read_events(out / "events.jsonl") if e["event"] == kind]


def _live(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _workers(launcher_pid: int) -> dict[int, psutil.Process]:
    """The training processes under ``launcher_pid``, by rank."""
    found = {}
    for child in psutil.Process(launcher_pid).children(recursive=True):
        try:  # torch elastic's own helper process ("pt_elastic") has the same command line but no RANK
            rank = child.environ().get("RANK")
            if rank is not None and "ltx_train_lib.cli.train" in child.cmdline():
                found[int(rank)] = child
        except psutil.Error:
            continue
    return found


def _all_workers(launcher_pid: int, n: int) -> dict[int, psutil.Process] | None:
    found = _workers(launcher_pid)
    return found if sorted(found) == list(range(n)) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_stall_message_names_the_frozen_rank_else_the_one_behind() -> None:
    now = 1000.0
    me = RankPosition(0, 5, "forward/backward", now - 4, now - 0.2, "a", 10)
    frozen = RankPosition(1, 5, "loading batch", now - 9, now - 8, "b", 11)
    behind = RankPosition(2, 4, "optimizer step", now - 6, now - 0.3, "c", 12)
    text = describe_stall({0: me, 1: frozen, 2: behind}, 0, 5, cause="a collective gave up (Timed out)", now=now)
    assert "rank 1 of 3 (pid 11 on b) stalled at step 5 (loading batch" in text and "heartbeat stopped" in text
    assert "rank 2" not in text  # a frozen rank explains the stall; the live one behind it is waiting too
    assert text.endswith("raise distributed.collective_timeout_s (now 5 s)")
    alive = describe_stall({0: me, 2: behind}, 0, 5, cause="x", now=now)
    assert "rank 2 of 2 (pid 12 on c) stalled at step 4 (optimizer step" in alive and "alive but behind" in alive
    same = describe_stall({0: me, 1: RankPosition(1, 5, "forward/backward", now - 4, now - 0.1, "b", 11)}, 0, 5, cause="x", now=now)
    assert "no rank looks stalled" in same and "rank 1: step 5 (forward/backward)" in same
    assert "rank(s) 1 of 2 never reported" in describe_stall({0: me, 1: None}, 0, 5, cause="x", now=now)
    gone = describe_stall({0: me, 1: RankPosition(1, 5, "forward/backward", now - 4, now - 0.1, "b", 11)}, 0, 5,
                          cause="x", now=now, lost_peer=True)
    assert "another rank ended first" in gone and "collective_timeout_s" not in gone  # the timeout is not the cause


def test_what_counts_as_a_collective_failure() -> None:
    gloo = "[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 4000ms for recv operation to complete"
    assert is_collective_failure(RuntimeError(gloo))
    assert is_collective_failure(RuntimeError("[../gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:25008"))
    assert not is_collective_failure(RuntimeError("DataLoader timed out after 5 seconds"))
    assert not is_collective_failure(ValueError(gloo))


def test_the_watchdog_stops_then_ends_an_orphan() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    exits: list[int] = []
    flag = StopFlag()
    dog = Watchdog(flag, grace_s=0.2, env={PARENT_PID_ENV: str(gone.pid)}, exit_now=exits.append)
    assert dog.ppid is None  # not started by a launcher: a plain run may outlive its shell (nohup)
    dog.check()
    assert flag.reason == "parent process exited" and dog.orphaned and exits == []  # first the clean stop
    time.sleep(0.3)
    dog.check()
    assert exits == [3]  # still running after orphan_grace_s: exit now
    assert Watchdog(StopFlag(), grace_s=1, env={"LOCAL_RANK": "0"}).ppid == os.getppid()


def test_the_board_in_a_store_and_waiting_for_a_silent_rank_0() -> None:
    import torch.distributed as dist

    store = dist.HashStore()
    main, other = RankBoard(store, 0, 2), RankBoard(store, 1, 2)
    main.mark(3, "validation")
    main.beat()
    other.mark(3, "checkpoint")
    pos = other.positions()
    assert pos[0].step == 3 and pos[0].phase == "validation" and pos[0].pid == os.getpid() and pos[0].alive is not None
    assert pos[1].alive is None  # never beat
    main.wait_for_main("checkpoint", 5)  # rank 0 marks the phase done at once
    other.wait_for_main("checkpoint", 5)  # ...and the others find it done
    store.set("ltx_train/alive/0", repr(time.time() - 60))  # rank 0's heartbeat stopped a minute ago
    with pytest.raises(TrainingError, match=r"rank 0 stopped its heartbeat while the others waited for its validation.*rank 0 of 2"):
        other.wait_for_main("validation", 5)


@pytest.mark.slow
def test_launcher_sigkill_leaves_no_worker_process_within_10_s(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    config, out = _write_config(tmp_path, precomputed_dataset, optimization__steps=100000, distributed__orphan_grace_s=5)
    launcher, log = _start(config, tmp_path, "--num_processes", "2")
    workers: dict[int, psutil.Process] = {}
    agents: list[psutil.Process] = []
    try:
        _wait_for(lambda: _events(out, "step"), 240, "the first step", log)
        workers = _wait_for(lambda: _all_workers(launcher.pid, 2), 20, "two workers", log)
        agents = [p for p in psutil.Process(launcher.pid).children() if _live(p)]  # accelerate launch
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        t0 = time.monotonic()
        _wait_for(lambda: not any(_live(p) for p in (*workers.values(), *agents)), 10, "the workers and accelerate launch to end", log)
        print(f"all gone {time.monotonic() - t0:.1f} s after the SIGKILL")
    finally:
        launcher.kill()
        for p in (*workers.values(), *agents):
            if _live(p):
                p.kill()
    cancelled = _events(out, "cancelled")
    assert cancelled and cancelled[-1]["reason"] == "launcher process exited", log.read_text()[-3000:]
    assert cancelled[-1]["checkpoint"] and Path(cancelled[-1]["checkpoint"]).is_dir()  # resumable, at the stop
    assert "launcher process (pid" in log.read_text()


@pytest.mark.slow
def test_a_stalled_rank_is_named_within_the_collective_timeout(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    timeout_s = 4
    config, out = _write_config(tmp_path, precomputed_dataset, optimization__steps=100000,
                                distributed__collective_timeout_s=timeout_s)
    launcher, log = _start(config, tmp_path, "--num_processes", "2")
    try:
        _wait_for(lambda: _events(out, "step"), 240, "the first step", log)
        workers = _wait_for(lambda: _all_workers(launcher.pid, 2), 20, "two workers", log)
        workers[1].send_signal(signal.SIGSTOP)  # rank 1 freezes mid-run
        t0 = time.monotonic()
        errors = _wait_for(lambda: _events(out, "error"), timeout_s + 20, "rank 0's error event", log)
        waited = time.monotonic() - t0
        workers[1].send_signal(signal.SIGCONT)  # it now finds rank 0 gone and ends too
        code = launcher.wait(timeout=60)
    finally:
        if launcher.poll() is None:
            for p in _workers(launcher.pid).values():
                p.kill()
            launcher.kill()
    message = errors[-1]["message"]
    pid = workers[1].pid
    assert message.startswith("distributed training stopped on rank 0: a collective gave up"), message
    assert f"rank 1 of 2 (pid {pid} on {socket.gethostname()}) stalled at step" in message and "heartbeat stopped" in message
    assert f"distributed.collective_timeout_s (now {timeout_s} s)" in message
    assert waited < timeout_s + 10, f"the message came {waited:.1f} s after the stall"
    text = log.read_text()
    assert "error: distributed training stopped on rank 0" in text
    # the launcher ends with the first failed rank's code and a line naming it, not accelerate's traceback
    assert code == 2 and "error: training process(es) ended: rank 0 (pid" in text and "Traceback" not in text, text[-3000:]
    print(f"message {waited:.1f} s after the stall (timeout {timeout_s} s)")


@pytest.mark.slow
def test_two_machines_on_loopback_end_with_identical_weights(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    config, out = _write_config(tmp_path, precomputed_dataset, optimization__steps=2)
    port = str(_free_port())
    machines = [
        _start(config, tmp_path, "--num_processes", "1", "--num_machines", "2", "--machine_rank", str(rank),
               "--main_process_ip", "127.0.0.1", "--main_process_port", port, tag=f"machine{rank}")
        for rank in (0, 1)
    ]
    try:
        codes = [proc.wait(timeout=400) for proc, _ in machines]
    finally:
        for proc, _ in machines:
            if proc.poll() is None:
                proc.kill()
    assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for _, log in machines)
    started, done = _events(out, "started"), _events(out, "done")
    assert len(started) == 1 and started[0]["num_processes"] == 2  # one run of two ranks, written by rank 0 only
    assert len(done) == 1 and len(done[0]["rank_digests"]) == 2
    assert done[0]["rank_digests"][0] == done[0]["rank_digests"][1], "the machines' weights differ"
    assert (out / "lora_weights_comfy.safetensors").is_file()
