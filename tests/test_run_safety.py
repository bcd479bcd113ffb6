"""A run is never lost: one trainer per folder, interrupted writes cleaned up, weights saved before samples, failed
validations survived, and identical runs give identical files."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from ltx_train_lib.config import config_from_dict
from ltx_train_lib.errors import TrainingError
from ltx_train_lib.events import read_events
from ltx_train_lib.locks import LOCK_NAME
from ltx_train_lib.training.trainer import Trainer
from tests.conftest import make_precomputed, tiny_config_dict

REPO = Path(__file__).resolve().parents[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _holder(folder: Path) -> subprocess.Popen:
    """Another process that holds the folder's lock (as a live trainer does) until it is killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from ltx_train_lib.locks import folder_lock
        with folder_lock({str(folder)!r}, "trainer"):
            print("locked", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_trainer_on_a_live_folder_stops_naming_the_first_and_a_dead_ones_lock_is_free(tmp_path: Path, tiny_model_dir) -> None:
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    out = tmp_path / "out"
    holder = _holder(out)
    try:
        with pytest.raises(TrainingError, match=rf"output_dir '.*out' is in use by another trainer \(pid {holder.pid} on "):
            Trainer(config_from_dict(tiny_config_dict(root, out, optimization__steps=1))).train()
        assert not (out / "lora_weights.safetensors").exists() and not (out / "checkpoints").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died without releasing anything: the OS freed its lock, so the next trainer simply runs.
    result = Trainer(config_from_dict(tiny_config_dict(root, out, optimization__steps=1))).train()
    assert result.status == "done" and (out / "lora_weights.safetensors").is_file() and (out / LOCK_NAME).is_file()


def test_second_trainer_from_the_command_line_exits_2(tmp_path: Path, tiny_model_dir) -> None:
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    out = tmp_path / "out"
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(root, out, optimization__steps=1)))
    holder = _holder(out)
    try:
        run = subprocess.run([sys.executable, "scripts/train.py", str(config)], cwd=REPO, capture_output=True, text=True,
                             timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"pid {holder.pid}" in run.stderr and "Traceback" not in run.stderr


def test_writes_interrupted_by_a_kill_are_removed_at_the_next_start(tmp_path: Path, tiny_model_dir) -> None:
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    out = tmp_path / "out"
    ckpts = out / "checkpoints"
    (ckpts / ".training_state_step_00002.k3j2.tmp").mkdir(parents=True)
    (ckpts / ".training_state_step_00002.k3j2.tmp" / "state.pt").write_bytes(b"half")
    (ckpts / ".lora_weights_step_00002.safetensors.ab12.tmp").write_bytes(b"half")
    (out / ".lora_weights.safetensors.zz9.tmp").write_bytes(b"half")
    keep = out / "notes.txt"
    keep.write_text("mine")
    Trainer(config_from_dict(tiny_config_dict(root, out, optimization__steps=1))).train()
    leftovers = [p.name for folder in (out, ckpts) for p in folder.iterdir() if ".tmp" in p.name]
    assert leftovers == [] and keep.read_text() == "mine"


def test_identical_runs_write_byte_identical_lora_files(tmp_path: Path, tiny_model_dir) -> None:
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        Trainer(config_from_dict(tiny_config_dict(root, out, optimization__steps=2, data__trigger_word="zxq"))).train()
        digests.append({f: _sha(out / f) for f in ("lora_weights.safetensors", "lora_weights_comfy.safetensors")})
    assert digests[0] == digests[1]


def test_one_step_validation_at_the_last_step_writes_weights_and_samples(tmp_path: Path, tiny_model_dir) -> None:
    """validation.inference_steps 1 once gave NaN sigmas, and the final validation ran before the final save."""
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    out = tmp_path / "out"
    cfg = tiny_config_dict(root, out, optimization__steps=2, checkpoints__interval=None,
                           validation={"prompts": ["a red square"], "interval": 2, "inference_steps": 1,
                                       "video_dims": [64, 64, 9], "skip_initial_validation": True})
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = subprocess.run([sys.executable, "scripts/train.py", str(config)], cwd=REPO, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr[-3000:]
    assert (out / "lora_weights.safetensors").is_file() and (out / "lora_weights_comfy.safetensors").is_file()
    assert (out / "validation_samples" / "step_000002_p0_v0.mp4").is_file()
    kinds = [e["event"] for e in read_events(out / "events.jsonl")]
    assert kinds.index("checkpoint") < kinds.index("sample") < kinds.index("done")


def test_a_failing_validation_is_an_event_and_training_goes_on(tmp_path: Path, tiny_model_dir, monkeypatch) -> None:
    # An out-of-memory sampler cannot be produced on this CPU machine, so the family's sampler is made to fail.
    from ltx_train_lib.models.ltxv.family import LtxvFamily

    def failing_sampler(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 19.00 GiB")

    monkeypatch.setattr(LtxvFamily, "validation_sampler", failing_sampler)
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    out = tmp_path / "out"
    cfg = tiny_config_dict(root, out, optimization__steps=3, checkpoints__interval=None,
                           validation={"prompts": ["a red square"], "interval": 2, "video_dims": [64, 64, 9]})
    started = time.time()
    result = Trainer(config_from_dict(cfg)).train()
    assert result.status == "done" and result.step == 3 and time.time() - started < 300
    events = read_events(out / "events.jsonl")
    failed = [e for e in events if e["event"] == "validation_failed"]
    assert [e["step"] for e in failed] == [0, 2, 3] and "out of memory" in failed[0]["message"]
    assert (out / "lora_weights.safetensors").is_file() and events[-1]["event"] == "done"
