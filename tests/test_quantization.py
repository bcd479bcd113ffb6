"""A quantized frozen base (torchao int8/float8 weight-only, optimum-quanto) under a full-precision LoRA, and the
start-time refusals of what a machine cannot run (float8 without a float8 GPU, a missing library, 8-bit AdamW
without CUDA or bitsandbytes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ltx_train_lib.config import config_from_dict
from ltx_train_lib.errors import ConfigError
from ltx_train_lib.events import read_events
from ltx_train_lib.training.model_setup import build_optimizer, build_trainable_model, check_optimizer
from ltx_train_lib.training.quantization import check_quantization
from ltx_train_lib.training.trainer import Trainer
from tests.conftest import make_precomputed, tiny_config_dict

# torchao is in requirements.txt; the refusals (and the run without it) are tested whether or not it is installed.
needs_torchao = pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao not installed")


def _family():
    from ltx_train_lib.models.registry import get_family

    return get_family("ltxv")


def _quantized_model(tmp_path: Path, mode: str, dtype: torch.dtype = torch.float32):
    from ltx_train_lib.models.loader import load_components

    cfg = config_from_dict(tiny_config_dict(tmp_path / "d", tmp_path / "o", acceleration__quantization=mode))
    transformer = load_components("tiny", ("transformer",), transformer_dtype=dtype).transformer
    model, params = build_trainable_model(cfg, _family(), transformer, torch.device("cpu"))
    return cfg, model, params


@needs_torchao
@pytest.mark.parametrize("mode,tensor_type", [("int8-torchao", "Int8Tensor"), ("fp8-torchao", "Float8Tensor")])
def test_torchao_base_is_quantized_outside_the_exclusions_and_only_the_lora_gets_gradients(
    tmp_path: Path, tiny_model_dir: Path, mode: str, tensor_type: str
) -> None:
    from ltx_train_lib.memory.calibrate import training_loss
    from ltx_train_lib.models.ltxv.memory import random_batch

    cfg, model, params = _quantized_model(tmp_path, mode)
    to_q = model.transformer_blocks[0].attn1.to_q
    assert type(to_q).__name__ == "TorchaoLoraLinear"  # peft's LoRA layer over a torchao weight
    assert type(to_q.base_layer.weight).__name__ == tensor_type
    assert type(model.transformer_blocks[0].ff.net[2].weight).__name__ == tensor_type  # not adapted, still quantized
    assert type(model.proj_in.weight) is torch.nn.Parameter and model.proj_in.weight.dtype == torch.float32  # excluded
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {n for n, p in model.named_parameters() if "lora_" in n}
    assert all(p.dtype == torch.float32 for p in params) and len(params) == 32
    before = to_q.base_layer.weight.dequantize().clone()
    optimizer, _ = build_optimizer(cfg.optimization, params)
    training_loss(_family(), model, random_batch(model, (2, 2, 2), 2, 256), False, torch.float32).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is None for n, g in grads.items() if "lora_" not in n)
    assert all(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)
    optimizer.step()
    assert torch.equal(to_q.base_layer.weight.dequantize(), before)  # the frozen base never moves
    assert to_q.lora_B["default"].weight.abs().sum() > 0


@needs_torchao
def test_lora_on_an_int8_torchao_base_trains_exports_full_precision_and_loads_back(tmp_path: Path, tiny_model_dir: Path) -> None:
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)])
    cfg = tiny_config_dict(
        root, tmp_path / "a", optimization__steps=40, optimization__batch_size=1, optimization__learning_rate=1e-2,
        checkpoints__interval=None, acceleration__quantization="int8-torchao",
        flow_matching__timestep_sampling_mode="uniform", flow_matching__timestep_sampling_params={"min_value": 0.5, "max_value": 0.5},
    )
    trainer = Trainer(config_from_dict(cfg))
    result = trainer.train()
    assert result.status == "done"
    assert type(trainer.unwrapped.transformer_blocks[0].attn1.to_q.base_layer.weight).__name__ == "Int8Tensor"
    assert np.mean(result.losses[-10:]) < 0.92 * np.mean(result.losses[:10])
    for name in ("lora_weights.safetensors", "lora_weights_comfy.safetensors"):
        tensors = load_file(str(tmp_path / "a" / name))
        assert tensors and all(t.is_floating_point() and t.dtype in (torch.float32, torch.bfloat16) for t in tensors.values()), name
        assert any(t.abs().sum() > 0 for k, t in tensors.items() if "lora_B" in k)
    # The exported LoRA loads back onto a quantized base (model.load_checkpoint) and continues from those weights.
    start = load_file(str(tmp_path / "a" / "lora_weights_comfy.safetensors"))
    again = tiny_config_dict(root, tmp_path / "b", optimization__steps=1, optimization__batch_size=1, optimization__learning_rate=1e-12,
                             checkpoints__interval=None, acceleration__quantization="int8-torchao",
                             model__load_checkpoint=str(tmp_path / "a" / "lora_weights_comfy.safetensors"))
    assert Trainer(config_from_dict(again)).train().status == "done"
    end = load_file(str(tmp_path / "b" / "lora_weights_comfy.safetensors"))
    assert start.keys() == end.keys()
    for k in start:
        assert torch.allclose(start[k], end[k], atol=1e-6), k


@needs_torchao
def test_cancel_and_resume_over_an_int8_torchao_base_equals_the_uninterrupted_run(
    tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path
) -> None:
    common = dict(optimization__steps=6, checkpoints__interval=None, acceleration__quantization="int8-torchao")
    Trainer(config_from_dict(tiny_config_dict(precomputed_dataset, tmp_path / "full", **common))).train()
    trainer = Trainer(config_from_dict(tiny_config_dict(precomputed_dataset, tmp_path / "cut", **common)))

    def stop(record: dict) -> None:
        if record["event"] == "step" and record["step"] == 3:
            trainer.stop.reason = "test"

    trainer.listeners = [stop]
    assert trainer.train().status == "cancelled"
    resumed = Trainer(config_from_dict(tiny_config_dict(precomputed_dataset, tmp_path / "cut", **common))).train()
    assert resumed.status == "done"
    started = [e for e in read_events(tmp_path / "cut" / "events.jsonl") if e["event"] == "started"]
    assert started[-1]["step"] == 3
    a = load_file(str(tmp_path / "full" / "lora_weights.safetensors"))
    b = load_file(str(tmp_path / "cut" / "lora_weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("capability", [None, (8, 6), (7, 0)])
def test_fp8_torchao_is_refused_without_a_float8_gpu(capability) -> None:
    with pytest.raises(ConfigError, match=r"acceleration.quantization 'fp8-torchao' needs a GPU with float8 support .* "
                                          r"use 'int8-torchao' instead") as err:
        check_quantization("fp8-torchao", capability)
    assert ("no CUDA GPU" if capability is None else f"compute capability {capability[0]}.{capability[1]}") in str(err.value)
    check_quantization("fp8-torchao", (8, 9))  # Ada and newer pass
    check_quantization("fp8-torchao", (9, 0))
    check_quantization("int8-torchao", capability)  # int8 runs everywhere


def test_fp8_torchao_run_on_this_cpu_machine_stops_before_writing(tmp_path: Path, precomputed_dataset: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a machine with a GPU may support float8")
    cfg = tiny_config_dict(precomputed_dataset, tmp_path / "o", acceleration__quantization="fp8-torchao")
    with pytest.raises(ConfigError, match="needs a GPU with float8 support"):
        Trainer(config_from_dict(cfg)).train()
    assert not (tmp_path / "o").exists()


def test_missing_quantization_library_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import ltx_train_lib.training.quantization as q

    monkeypatch.setattr(q, "_installed", lambda module: False)
    with pytest.raises(ConfigError, match=r"'int8-torchao' needs the torchao package, which is not installed; pip install torchao"):
        check_quantization("int8-torchao", None)
    with pytest.raises(ConfigError, match=r"'int8-quanto' needs optimum-quanto.*pip install optimum-quanto, or use 'int8-torchao'"):
        check_quantization("int8-quanto", None)
    check_quantization(None, None)
    check_quantization("no_change", None)


@needs_torchao
def test_budget_picks_the_torchao_int8_base_and_says_what_is_missing_without_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import ltx_train_lib.memory.budget as budget

    cfg = config_from_dict(tiny_config_dict(tmp_path / "d", tmp_path / "o"))
    steps, _ = budget.recipes(cfg, "cpu", {})
    assert any(changes.get("acceleration.quantization") == "int8-torchao" for _, changes in steps)
    monkeypatch.setattr(budget, "_can", lambda module: False)
    steps, skipped = budget.recipes(cfg, "cpu", {})
    assert not any("acceleration.quantization" in changes for _, changes in steps)
    assert "int8 base: needs torchao (pip install torchao)" in skipped


def test_adamw8bit_is_refused_at_start_without_cuda_or_bitsandbytes(tmp_path: Path, precomputed_dataset: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"optimization.optimizer_type 'adamw8bit' needs a CUDA GPU .* set "
                                          r"optimization.optimizer_type to 'adamw'"):
        check_optimizer("adamw8bit", cuda=False)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # behaves as "not installed"
    with pytest.raises(ConfigError, match=r"needs the bitsandbytes package, which is not installed; pip install bitsandbytes"):
        check_optimizer("adamw8bit", cuda=True)
    check_optimizer("adamw", cuda=False)
    if not torch.cuda.is_available():
        cfg = tiny_config_dict(precomputed_dataset, tmp_path / "o", optimization__optimizer_type="adamw8bit")
        with pytest.raises(ConfigError, match="'adamw8bit' needs a CUDA GPU"):
            Trainer(config_from_dict(cfg)).train()
        assert not (tmp_path / "o").exists()


def test_without_torchao_a_torchao_mode_stops_at_start_and_plain_lora_still_trains(
    tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    for name in [m for m in sys.modules if m == "torchao" or m.startswith("torchao.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchao", None)  # behaves as "not installed", for peft's check too
    from peft import import_utils

    # peft caches whether torchao is there (lru_cache): forget it now and again afterwards
    import_utils.is_torchao_available.cache_clear()
    request.addfinalizer(import_utils.is_torchao_available.cache_clear)
    cfg = tiny_config_dict(precomputed_dataset, tmp_path / "o", acceleration__quantization="int8-torchao")
    with pytest.raises(ConfigError, match=r"acceleration.quantization 'int8-torchao' needs the torchao package, which is "
                                          r"not installed; pip install torchao"):
        Trainer(config_from_dict(cfg)).train()
    assert not (tmp_path / "o").exists()
    result = Trainer(config_from_dict(tiny_config_dict(precomputed_dataset, tmp_path / "p", optimization__steps=1))).train()
    assert result.status == "done" and (tmp_path / "p" / "lora_weights_comfy.safetensors").is_file()
