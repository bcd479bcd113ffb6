"""Bad input and bad disks meet the trainer: one message naming the input, the problem and the fix (exit 2 on the
command line, never a traceback), and nothing already written is lost.

Real files and the real code path on the tiny model. Faked only what cannot exist here: a full disk (the lowest-level
writes raise ENOSPC) and a read-only file system (tests run as root, so a chmod would not stop a write).
"""

from __future__ import annotations

import errno
import io
import logging
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ltx_train_lib import events as events_module
from ltx_train_lib.cli.train import train_main
from ltx_train_lib.config import config_from_dict
from ltx_train_lib.errors import ConfigError, DatasetError, TrainingError
from ltx_train_lib.events import read_events
from ltx_train_lib.training import checkpoint as ckpt
from ltx_train_lib.training.trainer import Trainer
from tests.conftest import make_precomputed, tiny_config_dict


def _cli(tmp_path: Path, cfg: dict, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / f"cfg_{len(list(tmp_path.glob('cfg_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    code = train_main([str(path), "--disable_progress_bars"])
    return code, capsys.readouterr().err


def _one_message(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err and "Errno" not in lines[0], err
    return lines[0]


# ------------------------------------------------------------------------------------------------ output folder


def test_output_dir_that_cannot_be_created(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    data = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    code, err = _cli(tmp_path, tiny_config_dict(data, blocker / "out"), capsys)
    assert code == 2
    message = _one_message(err)
    assert f"error: output_dir {blocker / 'out'}: cannot be created: {blocker} is a file, not a folder." in message
    assert "Choose another folder" in message and blocker.read_text() == "keep me"


def test_read_only_output_dir_is_found_before_the_model_loads(tmp_path: Path, monkeypatch, capsys) -> None:
    data = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    out = tmp_path / "mounted"
    out.mkdir()
    real = tempfile.mkstemp

    def read_only(*args, **kwargs):  # the first file created in the folder: the write check's probe
        if kwargs.get("dir") is not None and Path(kwargs["dir"]).resolve() == out.resolve():
            raise OSError(errno.EROFS, "Read-only file system", str(out / ".probe"))
        return real(*args, **kwargs)

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load for a folder that cannot be written")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr("ltx_train_lib.models.loader.load_components", no_model)
    code, err = _cli(tmp_path, tiny_config_dict(data, out), capsys)
    assert code == 2
    message = _one_message(err)
    assert f"error: output_dir {out}: it is on a read-only file system. Choose a folder on a writable disk." in message
    assert list(out.iterdir()) == []


def test_too_little_free_space_stops_before_training(tmp_path: Path, tiny_model_dir: Path, monkeypatch, capsys) -> None:
    data = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    out = tmp_path / "out"
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    code, err = _cli(tmp_path, tiny_config_dict(data, out), capsys)
    assert code == 2
    message = _one_message(err)
    assert f"error: output_dir {out}: not enough free disk space: about " in message
    assert "only 1.0 KB is free. Free some disk space" in message
    assert not (out / "checkpoints").exists() and not (out / "training_config.yaml").exists()
    assert not any(e["event"] == "step" for e in read_events(out / "events.jsonl"))


def test_disk_full_mid_run_keeps_the_last_checkpoint_and_the_error_event_writer_does_not_raise(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch, capsys, caplog
) -> None:
    """The disk fills while the step-4 checkpoint is written (interval 2): one message naming output_dir and the
    checkpoint that is kept; the error event cannot be written either, and that is swallowed (EventWriter), not
    raised over the real error. Once there is room again, the same command resumes from step 2 and finishes."""
    import safetensors.torch

    data = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 4)
    out = tmp_path / "out"
    cfg = tiny_config_dict(data, out, optimization__steps=6, checkpoints__interval=2, checkpoints__keep_last_n=-1)
    disk = {"full": False}
    real_save, real_open = safetensors.torch.save_file, open

    def save_file(tensors, filename, metadata=None):  # where a checkpoint's bytes reach the disk
        if disk["full"] or "training_state_step_00004" in str(filename):
            disk["full"] = True
            raise OSError(errno.ENOSPC, "No space left on device", str(filename))
        return real_save(tensors, filename, metadata=metadata)

    class FullFile(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def events_open(file, mode="r", *args, **kwargs):  # events.jsonl's appends, once the disk is full
        if disk["full"] and "a" in mode:
            return FullFile()
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    monkeypatch.setattr(events_module, "open", events_open, raising=False)
    caplog.set_level(logging.WARNING, "ltx_train_lib.events")
    code, err = _cli(tmp_path, cfg, capsys)
    assert code == 2
    message = _one_message(err)
    kept = ckpt.checkpoints_dir(out) / "training_state_step_00002"
    assert f"error: output_dir {out}: the disk is full (" in message and "Free some disk space" in message
    assert f"the newest checkpoint ({kept}) is kept, and running again resumes from it." in message
    assert any("progress events cannot be written" in r.getMessage() for r in caplog.records)
    events = read_events(out / "events.jsonl")
    # the step-4 LoRA scanned healthy before the checkpoint's write failed; the error event could not be written
    assert [e["event"] for e in events][-2:] == ["step", "health"] and events[-1]["step"] == 4
    assert [c.step for c in ckpt.list_state_checkpoints(out)] == [2]
    assert load_file(str(kept / "trainable.safetensors"))
    assert [p for p in out.rglob("*") if ".tmp" in p.name] == []  # no half-written checkpoint or weights
    assert not (out / "lora_weights.safetensors").exists()

    monkeypatch.setattr(safetensors.torch, "save_file", real_save)
    disk["full"] = False
    code, err = _cli(tmp_path, cfg, capsys)
    assert code == 0, err
    started = [e for e in read_events(out / "events.jsonl") if e["event"] == "started"]
    assert started[-1]["step"] == 2 and started[-1]["resumed_from"] == str(kept)
    assert (out / "lora_weights.safetensors").is_file()


# ------------------------------------------------------------------------------------------------ data


@pytest.mark.parametrize("where", ["latents", "conditions"])
def test_nan_in_a_precomputed_file_names_the_file(tmp_path: Path, tiny_model_dir: Path, where: str, capsys) -> None:
    data = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    bad = data / ".precomputed" / where / "clip_001.mp4.pt"
    d = torch.load(bad, weights_only=True)
    key = "latents" if where == "latents" else "prompt_embeds"
    d[key][3] = float("nan")
    d[key][5] = float("inf")
    torch.save(d, bad)
    code, err = _cli(tmp_path, tiny_config_dict(data, tmp_path / "out", optimization__steps=2), capsys)
    assert code == 2
    message = _one_message(err)
    assert f"'{bad}'" in message and "are NaN or infinite" in message and "run preprocess_dataset.py again" in message
    assert "learning_rate" not in message
    with pytest.raises(DatasetError, match="clip_001.mp4.pt"):
        Trainer(config_from_dict(tiny_config_dict(data, tmp_path / "out2", optimization__steps=2))).train()


# ------------------------------------------------------------------------------------------------ limits


def test_rank_above_the_smallest_target_dimension_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    # The tiny model's attention is 32 -> 32: rank 32 is the limit, 33 is refused before any adapter is built.
    with pytest.raises(ConfigError, match=r"lora.rank 33 is larger than the limit of 32 .*module "
                                          r"'transformer_blocks.0.attn1.to_q' is 32 -> 32 features.*set lora.rank to 32 or less"):
        Trainer(config_from_dict(tiny_config_dict(data, tmp_path / "a", lora__rank=33))).train()
    with pytest.raises(ConfigError, match=r"lora.rank 100000 is larger than the limit of 8 .*module 'proj_in' is 8 -> 32"):
        Trainer(config_from_dict(tiny_config_dict(
            data, tmp_path / "b", lora={"rank": 100000, "alpha": 1, "target_modules": ["to_q", "proj_in"]}))).train()
    assert not list((tmp_path / "b").glob("**/*.safetensors"))
    with pytest.raises(ConfigError, match=r"lora.target_modules \['nope'\] matched no Linear module"):
        Trainer(config_from_dict(tiny_config_dict(data, tmp_path / "c", lora={"rank": 4, "alpha": 4, "target_modules": ["nope"]}))).train()
    result = Trainer(config_from_dict(tiny_config_dict(data, tmp_path / "d", lora__rank=32, optimization__steps=1))).train()
    assert result.status == "done"


def test_absurd_step_counts_are_refused_with_the_limit(tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match=r"optimization.steps: steps 100,000,000 is more than the limit of 10,000,000; "
                                          r"a LoRA typically needs a few hundred"):
        config_from_dict(tiny_config_dict(tmp_path, tmp_path / "o", optimization__steps=100_000_000))
    assert config_from_dict(tiny_config_dict(tmp_path, tmp_path / "o", optimization__steps=10_000_000)).optimization.steps == 10_000_000
    code, err = _cli(tmp_path, tiny_config_dict(tmp_path, tmp_path / "o", optimization__steps=10**12), capsys)
    assert code == 2 and "limit of 10,000,000" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ load_checkpoint


def test_load_checkpoint_with_fewer_lora_targets_names_the_missing_keys(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    data = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    small = {"rank": 4, "alpha": 4, "target_modules": ["to_q", "to_k"]}
    Trainer(config_from_dict(tiny_config_dict(data, tmp_path / "small", lora=small, optimization__steps=1))).train()
    weights = tmp_path / "small" / "lora_weights.safetensors"
    cfg = tiny_config_dict(data, tmp_path / "big", model__load_checkpoint=str(weights))  # to_q, to_k, to_v, to_out.0
    with pytest.raises(TrainingError) as info:
        Trainer(config_from_dict(cfg)).train()
    message = str(info.value)
    # 2 blocks x 2 attentions x 2 missing targets x (lora_A, lora_B) = 16 of 32 LoRA weights
    assert f"model.load_checkpoint: '{weights}' has no weights for 16 of this run's 32 LoRA weights (" in message
    assert "transformer_blocks.0.attn1.to_v.lora_A.weight" in message and ", ...)" in message
    assert "the file was trained with lora.rank 4 and lora.target_modules [to_q, to_k]" in message
    code, err = _cli(tmp_path, {**cfg, "output_dir": str(tmp_path / "big2")}, capsys)
    assert code == 2 and "has no weights for 16" in _one_message(err)

    # Same modules, another rank: the rank is named (not torch's size-mismatch traceback).
    with pytest.raises(TrainingError, match=r"does not fit this LoRA: .*lora_A.weight is \(4, 32\) in the file but "
                                            r"\(8, 32\) here \(another lora.rank\); the file was trained with lora.rank 4"):
        Trainer(config_from_dict(tiny_config_dict(data, tmp_path / "r8", lora={**small, "rank": 8},
                                                  model__load_checkpoint=str(weights)))).train()

    # The same settings load.
    ok = tiny_config_dict(data, tmp_path / "same", lora=small, optimization__steps=1, model__load_checkpoint=str(weights))
    assert Trainer(config_from_dict(ok)).train().status == "done"
