"""`scripts/train_distributed.py`: 2 processes on the CPU with gloo end with identical weights; only rank 0 writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ltx_train_lib.events import read_events
from ltx_train_lib.jobs import build_launch_command
from tests.conftest import tiny_config_dict

ROOT = Path(__file__).resolve().parents[1]


def test_launch_command_flags() -> None:
    one = build_launch_command("c.yaml", 1, cuda=False)
    assert "--cpu" in one and "--multi_gpu" not in one and one[-2:] == ["ltx_train_lib.cli.train", "c.yaml"]
    two = build_launch_command("c.yaml", 2, cuda=False, disable_progress_bars=True, events_stdout=True)
    assert "--multi_gpu" in two and "--cpu" not in two and two[two.index("--num_processes") + 1] == "2"
    assert two[-2:] == ["--disable_progress_bars", "--events-stdout"]
    nodes = build_launch_command("c.yaml", 4, cuda=True, num_machines=2, machine_rank=1, main_process_ip="10.0.0.1", main_process_port=29555)
    assert nodes[nodes.index("--num_processes") + 1] == "8" and nodes[nodes.index("--machine_rank") + 1] == "1"
    assert nodes[nodes.index("--main_process_ip") + 1] == "10.0.0.1"
    fsdp = build_launch_command("c.yaml", 2, cuda=True, fsdp=True)
    assert "--use_fsdp" in fsdp and "LTXVideoTransformerBlock" in fsdp
    assert fsdp[fsdp.index("--fsdp_version") + 1] == "2"  # FSDP2: what ltx_train_lib.training.checkpoint_io shards
    assert fsdp[fsdp.index("--fsdp_state_dict_type") + 1] == "SHARDED_STATE_DICT"


def test_fsdp_block_class_is_the_callers() -> None:
    cmd = build_launch_command("c.yaml", 2, cuda=True, fsdp=True, fsdp_block_class="OtherFamilyBlock")
    assert cmd[cmd.index("--fsdp_transformer_layer_cls_to_wrap") + 1] == "OtherFamilyBlock"
    assert "LTXVideoTransformerBlock" not in cmd
    plain = build_launch_command("c.yaml", 2, cuda=True, fsdp_block_class="OtherFamilyBlock")
    assert "--use_fsdp" not in plain and "OtherFamilyBlock" not in plain  # only FSDP wraps blocks


def test_missing_config_is_reported(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_distributed.py"), str(tmp_path / "x.yaml")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "config file not found" in res.stderr


@pytest.mark.slow
def test_two_processes_end_with_identical_weights(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    cfg = tiny_config_dict(precomputed_dataset, tmp_path / "out", optimization__batch_size=1, optimization__gradient_accumulation_steps=2, optimization__steps=3)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_distributed.py"), str(path), "--num_processes", "2", "--disable_progress_bars"],
        capture_output=True, text=True, timeout=400,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    events = read_events(tmp_path / "out" / "events.jsonl")
    started = [e for e in events if e["event"] == "started"]
    assert len(started) == 1, "only rank 0 writes events"
    assert started[0]["num_processes"] == 2 and started[0]["effective_batch_size"] == 1 * 2 * 2
    done = events[-1]
    assert done["event"] == "done" and len(done["rank_digests"]) == 2
    assert done["rank_digests"][0] == done["rank_digests"][1], "ranks diverged"
    assert (tmp_path / "out" / "lora_weights_comfy.safetensors").is_file()
