"""FSDP2 with 2 processes on the CPU (gloo), through `scripts/train_distributed.py --fsdp`: sharded checkpoints
(torch.distributed.checkpoint, one file per rank) that resume exactly after a SIGKILL, the consolidated full-precision
`model_weights.safetensors`, LoRA under FSDP, and the refusals (another launch mode, FSDP1, validation)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from ltx_train_lib.config import config_from_dict
from ltx_train_lib.errors import TrainingError
from ltx_train_lib.events import read_events
from ltx_train_lib.training import checkpoint as ckpt
from ltx_train_lib.training.checkpoint_io import SHARDED_DIR, SHARDED_FORMAT, _check_format
from ltx_train_lib.training.trainer import Trainer
from tests.conftest import tiny_config_dict
from tests.test_trainer import _wait_for_event

ROOT = Path(__file__).resolve().parents[1]


def _fsdp_cfg(data: Path, out: Path, **overrides) -> dict:
    full = dict(model__training_mode="full", optimization__batch_size=1, optimization__max_grad_norm=0.05,
                optimization__scheduler_type="cosine", checkpoints__interval=2, checkpoints__keep_last_n=2)
    cfg = tiny_config_dict(data, out, **{**full, **overrides})
    cfg["lora"] = None
    return cfg


def _launch(cfg: dict, path: Path, *extra: str) -> subprocess.Popen:
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train_distributed.py"), str(path), "--num_processes", "2", "--fsdp",
         "--disable_progress_bars", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,  # one process group: the launcher, torchrun and both ranks, killed together
    )


def _finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        _kill_tree(proc.pid)  # nothing of a failed or hung run outlives the test
    assert proc.returncode == 0, out[-4000:]
    return out


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (the launcher, torchrun's agent and the ranks, whatever their process
    group: a hard kill of a machine takes them all), read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def _kill_tree(pid: int) -> None:
    for p in _tree(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the run's processes in /proc")
def test_fsdp_full_finetune_sigkill_then_resume_gives_identical_consolidated_weights(
    tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path
) -> None:
    """Gradient clipping (a small max_grad_norm clips every step) on the sharded parameters, a cosine schedule and
    per-rank noise: a run killed after a checkpoint and resumed ends with the weights of one never interrupted."""
    steps = 40  # a tiny step takes ~0.1 s: room for the kill to land before the end on a loaded machine
    cfg = {name: _fsdp_cfg(precomputed_dataset, tmp_path / name, optimization__steps=steps, checkpoints__interval=4)
           for name in ("full", "kill")}
    victim = _launch(cfg["kill"], tmp_path / "kill.yaml")
    _wait_for_event(tmp_path / "kill" / "events.jsonl", lambda e: e["event"] == "step" and e["step"] >= 6, victim)
    _kill_tree(victim.pid)  # every process of the run at once, as a power cut or the OOM killer would
    victim.wait(30)
    assert not (tmp_path / "kill" / "model_weights.safetensors").exists(), "the victim finished before the kill"
    latest = ckpt.latest_state_checkpoint(tmp_path / "kill")
    assert latest is not None and 4 <= latest.step < steps
    full = _launch(cfg["full"], tmp_path / "full.yaml")  # the uninterrupted run, beside the resume
    # one DCP file per rank, and the format recorded; a leftover temp folder (a kill mid-save) is never picked up
    assert json.loads((latest.path / "meta.json").read_text())["checkpoint_format"] == SHARDED_FORMAT
    assert sorted(p.name for p in (latest.path / SHARDED_DIR).iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    (tmp_path / "kill" / "checkpoints" / f".training_state_step_{latest.step + 2:05d}.abc.tmp").mkdir()

    out = _finish(_launch(cfg["kill"], tmp_path / "kill.yaml"))
    _finish(full)
    assert "resumed from" in out
    started = [e for e in read_events(tmp_path / "kill" / "events.jsonl") if e["event"] == "started"]
    assert started[-1]["step"] == latest.step and started[-1]["num_processes"] == 2
    assert not list((tmp_path / "kill" / "checkpoints").glob(".*.tmp")), "the interrupted write was not cleaned"

    a = load_file(str(tmp_path / "full" / "model_weights.safetensors"))
    b = load_file(str(tmp_path / "kill" / "model_weights.safetensors"))
    # the consolidated file is the whole transformer (as a single-process run writes it), in float32
    base = load_file(str(tiny_model_dir / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() == base.keys()
    assert all(v.dtype == torch.float32 for v in a.values())
    assert any(not torch.equal(a[k], base[k].float()) for k in a), "training changed nothing"
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    done = read_events(tmp_path / "kill" / "events.jsonl")[-1]
    assert done["event"] == "done" and done["rank_digests"][0] == done["rank_digests"][1]

    # The sharded checkpoints cannot be resumed by a run launched without FSDP: refused, naming both launch modes.
    again = _fsdp_cfg(precomputed_dataset, tmp_path / "kill", optimization__steps=steps + 2, checkpoints__interval=4)
    with pytest.raises(TrainingError, match=r"written with FSDP \(--fsdp\) but this run is launched without FSDP"):
        Trainer(config_from_dict(again)).train()


@pytest.mark.slow
def test_fsdp_lora_writes_the_lora_files_of_the_gathered_adapter(tmp_path: Path, precomputed_dataset: Path,
                                                                tiny_model_dir: Path) -> None:
    cfg = tiny_config_dict(precomputed_dataset, tmp_path / "out", optimization__steps=3, optimization__batch_size=1,
                           optimization__max_grad_norm=1.0, checkpoints__interval=2)
    _finish(_launch(cfg, tmp_path / "c.yaml"))
    out = tmp_path / "out"
    events = read_events(out / "events.jsonl")
    assert [e["ok"] for e in events if e["event"] == "health"] == [True, True]
    done = events[-1]
    assert done["event"] == "done" and done["rank_digests"][0] == done["rank_digests"][1]
    final = load_file(str(out / "lora_weights.safetensors"))
    at2 = load_file(str(out / "checkpoints" / "lora_weights_step_00002.safetensors"))
    # every adapter tensor whole (A: rank x in, B: out x rank of the layer it adapts), not one rank's shard of it
    base = load_file(str(tiny_model_dir / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert final
    for key, value in final.items():
        module, which = key.removeprefix("transformer.").split(".lora_")
        out_dim, in_dim = base[f"{module}.weight"].shape
        assert tuple(value.shape) == ((4, in_dim) if which.startswith("A") else (out_dim, 4)), key
    assert final.keys() == at2.keys() and any(not torch.equal(final[k], at2[k]) for k in final)
    assert safe_open(str(out / "lora_weights_comfy.safetensors"), "pt").metadata()["training_steps"] == "3"
    # the LoRA checkpoint holds only the adapter (and its optimizer state), not the frozen base
    from torch.distributed.checkpoint import FileSystemReader

    saved = FileSystemReader(str(ckpt.latest_state_checkpoint(out).path / SHARDED_DIR)).read_metadata().state_dict_metadata
    weights = [k for k in saved if k.startswith("model.")]
    assert len(weights) == len(final) and all(".lora_" in k for k in weights)


def test_checkpoint_format_mismatch_is_refused_both_ways() -> None:
    _check_format({"checkpoint_format": "sharded"}, "x", "sharded")
    _check_format({}, "x", "plain")  # checkpoints written before the format was recorded are plain
    with pytest.raises(TrainingError, match=r"'x' was written without FSDP but this run is launched with FSDP"):
        _check_format({}, "x", "sharded")


def test_fsdp_refuses_fsdp1_and_validation() -> None:
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from ltx_train_lib.errors import ConfigError
    from ltx_train_lib.training.checkpoint_io import PlainIO, ShardedIO, checkpoint_io_for

    cfg = config_from_dict(tiny_config_dict(Path("/nonexistent"), Path("/nonexistent/out")))
    plain = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU, is_fsdp2=False)
    assert isinstance(checkpoint_io_for(plain, cfg), PlainIO)
    fsdp2 = SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=True)
    assert isinstance(checkpoint_io_for(fsdp2, cfg), ShardedIO)
    with pytest.raises(ConfigError, match="FSDP1 is not supported"):
        checkpoint_io_for(SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=False), cfg)
    sampled = cfg.model_copy(update={"validation": cfg.validation.model_copy(update={"prompts": ["a"], "interval": 2})})
    with pytest.raises(ConfigError, match="validation samples cannot be generated under FSDP"):
        checkpoint_io_for(fsdp2, sampled)


def test_resume_with_another_process_count_is_refused() -> None:
    """DCP could reshard the files, but the data order and noise streams are per process: refused, naming the fix."""
    from ltx_train_lib.training.state import check_resumable

    meta = {"fingerprint": "f", "world_size": 2, "step": 4, "checkpoint_format": SHARDED_FORMAT}
    check_resumable(meta, "ck", "f", 2)
    with pytest.raises(TrainingError, match=r"made with 2 process\(es\) but this run has 4; resume with the same --num_processes"):
        check_resumable(meta, "ck", "f", 4)
