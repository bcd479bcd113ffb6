"""The LoRA health gate (ltx_train_lib/lora_health.py): the scan, the header it writes, the trainer's stop on an
unhealthy save, and ComfyUI's key-map check (its pure part; the real ComfyUI check is in test_comfyui_lora_keys)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ltx_train_lib import export
from ltx_train_lib.cli.train import train_main
from ltx_train_lib.config import config_from_dict
from ltx_train_lib.events import read_events
from ltx_train_lib.lora_health import (
    HEALTH_KEY,
    LoraHealth,
    LoraHealthError,
    check_files,
    comfy_key_check,
    scan_file,
    scan_state_dict,
)
from ltx_train_lib.training import checkpoint as ckpt
from ltx_train_lib.training.trainer import Trainer
from tests.conftest import tiny_config_dict

MODULES = ("transformer_blocks.0.attn1.to_q", "transformer_blocks.0.attn1.to_out.0", "proj_in")


def _peft_sd(zero_b: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sd = {}
    for m in MODULES:
        sd[f"{m}.lora_A.weight"] = torch.randn(4, 16, generator=g)
        sd[f"{m}.lora_B.weight"] = torch.zeros(16, 4) if m in zero_b else torch.randn(16, 4, generator=g)
    return sd


def _inject(path: Path, key: str, value: float, index: tuple[int, int] = (0, 0)) -> None:
    """Rewrite a saved file with one value of ``key`` replaced, header kept (what a corrupt save would look like)."""
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    sd = load_file(str(path))
    sd[key][index] = value
    save_file(sd, str(path), metadata=meta)


def test_healthy_nan_and_zero_state_dicts() -> None:
    ok = scan_state_dict(_peft_sd(), step=10)
    assert ok.ok and (ok.tensors, ok.modules) == (6, 3) and not ok.problems and not ok.warnings
    assert ok.summary() == "LoRA health: ok at step 10 (6 tensors, 3 modules, no NaN/Inf)"

    sd = _peft_sd()
    sd["proj_in.lora_B.weight"][3, 1] = float("nan")
    sd["transformer_blocks.0.attn1.to_q.lora_A.weight"][0, :2] = float("inf")
    bad = scan_state_dict(sd, step=10)
    assert not bad.ok
    assert bad.nonfinite == {"transformer_blocks.0.attn1.to_q.lora_A.weight": 2, "proj_in.lora_B.weight": 1}
    msg = bad.failure_message("run/lora.safetensors")
    assert "2 tensor(s) hold NaN/Inf values (3 values)" in msg and "proj_in.lora_B.weight" in msg
    assert "optimization.learning_rate" in msg and "bf16" in msg and "dataset" in msg

    # step 0: lora_B = 0 is peft's initialisation, not a problem
    fresh = scan_state_dict(_peft_sd(zero_b=MODULES), step=0)
    assert fresh.ok and fresh.zero_modules == sorted(MODULES) and not fresh.warnings
    assert "still zero as initialised" in fresh.summary()
    # trained, some modules zero: a warning; every module zero: the LoRA does nothing
    part = scan_state_dict(_peft_sd(zero_b=("proj_in",)), step=5)
    assert part.ok and part.zero_modules == ["proj_in"] and "1 of 3 modules are still zero after 5 steps" in part.warnings[0]
    dead = scan_state_dict(_peft_sd(zero_b=MODULES), step=5)
    assert not dead.ok and "none of the 3 LoRA modules changes the model after 5 training steps" in dead.problems[0]
    assert "lora.target_modules" in dead.failure_message("x")
    # ... unless no update is required (an intermediate checkpoint: fp16 loss scaling may skip the first steps)
    assert scan_state_dict(_peft_sd(zero_b=MODULES), step=5, require_update=False).ok
    # a zero alpha silences a module just as a zero lora_B does
    sd = {k.replace("lora_A", "lora_down").replace("lora_B", "lora_up"): v for k, v in _peft_sd().items()}
    sd["proj_in.alpha"] = torch.tensor(0.0)
    assert scan_state_dict(sd, step=3).zero_modules == ["proj_in"]
    assert "no LoRA modules found" in scan_state_dict({"x.weight": torch.ones(2)}).problems[0]


def test_files_of_both_layouts_and_the_header(tmp_path: Path) -> None:
    d, c = export.save_lora_pair(_peft_sd(), tmp_path, rank=4, alpha=8, metadata={"training_steps": 12})
    for path in (d, c):
        report = scan_file(path)
        assert report.ok and report.step == 12 and report.modules == 3
    assert scan_file(c).tensors == 9  # + three .alpha tensors
    _inject(c, "diffusion_model.patchify_proj.lora_B.weight", float("nan"))
    bad = scan_file(c)
    assert not bad.ok and list(bad.nonfinite) == ["diffusion_model.patchify_proj.lora_B.weight"]
    with pytest.raises(LoraHealthError, match=r"lora_weights_comfy.safetensors: LoRA health check failed: 1 tensor\(s\) "
                       r"hold NaN/Inf values \(1 values\): diffusion_model.patchify_proj.lora_B.weight.*Refusing to "
                       r"upload"):
        check_files([d, c], action="upload to the Hub")
    with pytest.raises(LoraHealthError, match="cannot be read as safetensors"):
        scan_file(tmp_path / "missing.safetensors")

    # the header form keeps exact counts and at most 20 names, and reads back
    many = scan_state_dict({f"m{i}.lora_{p}.weight": torch.full((2, 2), float("nan")) for i in range(15) for p in "AB"})
    meta = json.loads(many.to_metadata())
    assert meta["nonfinite_tensors"] == 30 and len(meta["nonfinite"]) == 20 and meta["ok"] is False
    back = LoraHealth.from_metadata({HEALTH_KEY: many.to_metadata()})
    assert back is not None and not back.ok and back.problems == many.problems
    assert LoraHealth.from_metadata({}) is None and LoraHealth.from_metadata({HEALTH_KEY: "{broken"}) is None


def test_a_tiny_training_run_scans_healthy_and_says_so(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "out"
    result = Trainer(config_from_dict(tiny_config_dict(precomputed_dataset, out, optimization__steps=4))).train()
    assert result.status == "done"
    files = [out / "lora_weights.safetensors", out / "lora_weights_comfy.safetensors",
             *sorted((out / "checkpoints").glob("lora_weights_step_*.safetensors"))]
    assert len(files) == 6
    for path in files:
        with safe_open(str(path), "pt") as fh:
            stored = LoraHealth.from_metadata(fh.metadata())
        assert stored is not None and stored.ok and stored.modules == 16 and stored.zero_modules == [], path
        assert scan_file(path).ok
        before = path.read_bytes()
        export.canonicalise_header(path)  # the header with the health entry is already canonical
        assert path.read_bytes() == before
    health = [e for e in read_events(out / "events.jsonl") if e["event"] == "health"]
    assert [(e["step"], e["final"], e["ok"]) for e in health] == [(2, False, True), (4, True, True)]
    assert health[-1]["summary"].startswith("LoRA health: ok at step 4 (32 tensors, 16 modules")
    kinds = [e["event"] for e in read_events(out / "events.jsonl")]
    assert kinds.index("health") < kinds.index("checkpoint")  # scanned before anything of the step is written


def test_a_nan_during_training_stops_the_run_with_exit_status_2(
    tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = tmp_path / "out"
    cfg = tiny_config_dict(precomputed_dataset, out, optimization__steps=6)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    original = Trainer._save_checkpoint

    def corrupt_then_save(self, step):
        if step == 4:  # an optimizer step went wrong: one lora_B weight is NaN, the loss has not seen it yet
            name, param = next((n, p) for n, p in self.unwrapped.named_parameters() if "lora_B" in n)
            with torch.no_grad():
                param[0, 0] = float("nan")
        return original(self, step)

    monkeypatch.setattr(Trainer, "_save_checkpoint", corrupt_then_save)
    assert train_main([str(config), "--disable_progress_bars"]) == 2
    err = capsys.readouterr().err
    assert "error: the LoRA at step 4: LoRA health check failed: 1 tensor(s) hold NaN/Inf values" in err
    assert "transformer_blocks.0.attn1.to_q.lora_B" in err and "Traceback" not in err
    assert "optimization.learning_rate" in err and "training_state_step_00002' (with its LoRA files" in err
    # nothing of step 4 was written; the healthy step-2 checkpoint and its LoRA are kept; no final LoRA
    assert [c.step for c in ckpt.list_state_checkpoints(out)] == [2]
    assert sorted(p.name for p in (out / "checkpoints").glob("lora_weights_step_*.safetensors")) == [
        "lora_weights_step_00002.safetensors", "lora_weights_step_00002_comfy.safetensors"]
    assert not (out / "lora_weights.safetensors").exists()
    events = read_events(out / "events.jsonl")
    assert [e["event"] for e in events][-2:] == ["health", "error"]
    assert events[-2]["ok"] is False and events[-2]["nonfinite"][0].endswith("lora_B.weight")
    assert "health check failed" in events[-1]["message"] and events[-1]["step"] == 4


def test_comfy_key_check_names_what_would_not_load() -> None:
    keys = ["diffusion_model.a.lora_A.weight", "diffusion_model.a.lora_B.weight", "diffusion_model.a.alpha",
            "diffusion_model.b.lora_down.weight", "diffusion_model.b.lora_up.weight",
            "diffusion_model.c.lora_A.weight", "diffusion_model.c.lora_B.weight"]
    key_map = {"diffusion_model.a": "diffusion_model.a.weight", "diffusion_model.b": ("diffusion_model.qkv.weight", (0, 0, 4)),
               "diffusion_model.c": "diffusion_model.c.weight"}
    patched = ["diffusion_model.a.weight", ("diffusion_model.qkv.weight", (0, 0, 4)), "diffusion_model.c.weight"]
    model_keys = ["diffusion_model.a.weight", "diffusion_model.qkv.weight", "diffusion_model.c.weight"]
    check = comfy_key_check(keys, key_map, patched, model_keys)
    assert check.ok and (check.keys, check.modules) == (7, 3)
    assert check.summary() == "ComfyUI key check: all 7 keys load (3 modules)"
    # c is not a weight of this model, b made no patch, and x is unknown to the key map
    check = comfy_key_check([*keys, "diffusion_model.x.lora_A.weight"], key_map, patched[:1] + patched[2:], model_keys[:2])
    assert check.not_loaded == sorted(keys[3:] + ["diffusion_model.x.lora_A.weight"])
    assert check.summary().startswith("ComfyUI key check: 5 of 8 keys would not load: diffusion_model.b.lora_down")


# ------------------------------------------------------------------------------ against a real ComfyUI (optional)

COMFYUI = os.environ.get("COMFYUI_PATH")


@pytest.mark.comfyui
@pytest.mark.skipif(not COMFYUI, reason="set COMFYUI_PATH to a ComfyUI checkout (and COMFYUI_PYTHON to its Python)")
def test_comfyuis_own_key_map_loads_every_key_of_our_lora(tmp_path: Path) -> None:
    """nodes/comfy.py's lora_load_check in a real ComfyUI, on the tiny LTXV model: our exported LoRA loads fully, and
    a key ComfyUI cannot place is named exactly as ComfyUI's own loader logs it."""
    from ltx_train_lib.models.ltxv.tiny import TRANSFORMER_CONFIG as C
    from ltx_train_lib.models.ltxv.tiny import tiny_model_dir

    python = os.environ.get("COMFYUI_PYTHON") or str(Path(COMFYUI).parent / "comfyui-venv" / "bin" / "python")
    base = load_file(str(tiny_model_dir() / "transformer" / "diffusion_pytorch_model.safetensors"))
    save_file({k: v.contiguous() for k, v in export.full_diffusers_to_comfy(base).items()}, str(tmp_path / "base.safetensors"))
    g = torch.Generator().manual_seed(0)
    dim = C["num_attention_heads"] * C["attention_head_dim"]
    peft = {}
    for m in ("transformer_blocks.0.attn1.to_q", "transformer_blocks.1.attn2.to_out.0"):
        peft[f"{m}.lora_A.weight"] = torch.randn(4, dim, generator=g)
        peft[f"{m}.lora_B.weight"] = torch.randn(dim, 4, generator=g)
    _, good = export.save_lora_pair(peft, tmp_path / "good", rank=4, alpha=8, metadata={"training_steps": 3})
    extra = load_file(str(good))
    extra["diffusion_model.transformer_blocks.0.attn1.nowhere.lora_A.weight"] = torch.randn(4, dim, generator=g)
    extra["diffusion_model.transformer_blocks.0.attn1.nowhere.lora_B.weight"] = torch.randn(dim, 4, generator=g)
    save_file(extra, str(tmp_path / "extra.safetensors"))
    keys = ("num_layers", "in_channels", "cross_attention_dim", "caption_channels", "num_attention_heads", "attention_head_dim")
    spec = {"comfyui": str(Path(COMFYUI).resolve()), "transformer_config": {k: C[k] for k in keys},
            "model": str(tmp_path / "base.safetensors"), "out": str(tmp_path / "report.json"),
            "loras": {"good": str(good), "extra": str(tmp_path / "extra.safetensors")}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([python, str(Path(__file__).with_name("comfyui_lora_keys.py")), str(tmp_path / "spec.json")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["good"]["check"]["not_loaded"] == [] and report["good"]["comfy_not_loaded"] == []
    assert report["good"]["check"]["modules"] == 2 and report["good"]["check"]["keys"] == 6
    assert report["extra"]["check"]["not_loaded"] == sorted(k for k in extra if ".nowhere." in k)
    assert report["extra"]["check"]["not_loaded"] == report["extra"]["comfy_not_loaded"]  # ComfyUI agrees
