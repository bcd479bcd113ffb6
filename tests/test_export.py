"""LoRA / full-model key conversion (ltx_train_lib.export) and the convert_checkpoint CLI.

The loaders are the real ones where they run here: diffusers' LTX LoRA loading on a tiny random
``LTXVideoTransformer3DModel``. ComfyUI is not installed, so its LoRA rule (key ``diffusion_model.X`` patches model
weight ``diffusion_model.X.weight``, scaled by alpha/rank, 1.0 without ``.alpha``; reference/comfyui.md §2.10) is
re-implemented in ``_comfy_apply`` and checked against peft's forward pass.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ltx_train_lib import export
from ltx_train_lib.cli.convert import main as convert_main
from ltx_train_lib.errors import ConversionError
from ltx_train_lib.models.ltxv.tiny import TRANSFORMER_CONFIG

REPO = Path(__file__).resolve().parents[1]
TINY = TRANSFORMER_CONFIG  # the tiny model's transformer architecture
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "time_embed.linear"]
RANK, ALPHA = 4, 8

# Every target module and the names it must have in each layout (diffusers module, ComfyUI module).
EXPECTED_MODULES = [
    ("transformer_blocks.0.attn1.to_q", "transformer_blocks.0.attn1.to_q"),
    ("transformer_blocks.0.attn1.to_k", "transformer_blocks.0.attn1.to_k"),
    ("transformer_blocks.0.attn1.to_v", "transformer_blocks.0.attn1.to_v"),
    ("transformer_blocks.0.attn1.to_out.0", "transformer_blocks.0.attn1.to_out.0"),
    ("transformer_blocks.1.attn2.to_q", "transformer_blocks.1.attn2.to_q"),
    ("transformer_blocks.1.attn2.to_out.0", "transformer_blocks.1.attn2.to_out.0"),
    ("transformer_blocks.0.ff.net.0.proj", "transformer_blocks.0.ff.net.0.proj"),
    ("transformer_blocks.1.ff.net.2", "transformer_blocks.1.ff.net.2"),
    ("proj_in", "patchify_proj"),
    ("time_embed.linear", "adaln_single.linear"),
]


# --------------------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models():
    """(base transformer without LoRA, same weights + a peft adapter with random lora_B, its peft state dict)."""
    from diffusers import LTXVideoTransformer3DModel
    from peft import LoraConfig, get_peft_model_state_dict

    torch.manual_seed(0)
    base = LTXVideoTransformer3DModel(**TINY).eval()
    lora_model = copy.deepcopy(base)
    lora_model.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS))
    with torch.no_grad():
        for name, p in lora_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)  # peft initialises lora_B to zero: the adapter would be a no-op
    return base, lora_model, get_peft_model_state_dict(lora_model)


def _forward(model) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(1, 2 * 4 * 4, 8, generator=g)
    text = torch.randn(1, 5, 32, generator=g)
    with torch.no_grad():
        return model(
            hidden_states=hidden,
            encoder_hidden_states=text,
            timestep=torch.tensor([500]),
            encoder_attention_mask=torch.ones(1, 5),
            num_frames=2,
            height=4,
            width=4,
            return_dict=False,
        )[0]


def _comfy_apply(comfy_full: dict[str, torch.Tensor], comfy_lora: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ComfyUI's LoRA rule on a single-file checkpoint.

    Its loader maps ``model.diffusion_model.X`` to the model's ``diffusion_model.X``; LoRA key ``diffusion_model.X``
    patches ``diffusion_model.X.weight`` by alpha/rank * up@down (1.0 without ``.alpha``).
    """
    model = {k.removeprefix("model."): v.clone() for k, v in comfy_full.items()}
    prefixes = {k[: -len(".lora_A.weight")] for k in comfy_lora if k.endswith(".lora_A.weight")}
    assert len(prefixes) * 2 + sum(k.endswith(".alpha") for k in comfy_lora) == len(comfy_lora), (
        "ComfyUI would skip keys"
    )
    for prefix in prefixes:
        target = prefix + ".weight"
        assert target in model, f"ComfyUI has no weight {target}: the LoRA key would be ignored"
        down, up = comfy_lora[prefix + ".lora_A.weight"], comfy_lora[prefix + ".lora_B.weight"]
        alpha = comfy_lora.get(prefix + ".alpha")
        scale = alpha.item() / down.shape[0] if alpha is not None else 1.0
        model[target] += scale * (up.float() @ down.float())
    return {"model." + k: v for k, v in model.items()}


def _lora_sd(modules: list[str], prefix: str, rank: int = RANK, dtype=torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    sd = {}
    for m in modules:
        sd[f"{prefix}{m}.lora_A.weight"] = torch.randn(rank, 16, generator=g).to(dtype)
        sd[f"{prefix}{m}.lora_B.weight"] = torch.randn(24, rank, generator=g).to(dtype)
    return sd


def _no_temp_files(folder: Path) -> bool:
    return not list(folder.glob(".*.tmp"))


# --------------------------------------------------------------------------------------------------------------------
# Key names
# --------------------------------------------------------------------------------------------------------------------


def test_peft_to_diffusers_exact_keys_and_wrappers_stripped():
    peft_sd = {
        "base_model.model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 16),
        "base_model.model.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(24, 4),
        "transformer_blocks.0._orig_mod.attn1.to_out.0.lora_A.default.weight": torch.zeros(4, 16),
        "_orig_mod.transformer_blocks.0.attn1.to_out.0.lora_B.default.weight": torch.zeros(24, 4),
        "proj_in.lora_A.weight": torch.zeros(4, 16),
        "proj_in.lora_B.weight": torch.zeros(24, 4),
    }
    assert export.detect_layout(peft_sd) == "peft_lora"
    assert sorted(export.peft_to_diffusers_lora(peft_sd)) == [
        "transformer.proj_in.lora_A.weight",
        "transformer.proj_in.lora_B.weight",
        "transformer.transformer_blocks.0.attn1.to_out.0.lora_A.weight",
        "transformer.transformer_blocks.0.attn1.to_out.0.lora_B.weight",
        "transformer.transformer_blocks.0.attn1.to_q.lora_A.weight",
        "transformer.transformer_blocks.0.attn1.to_q.lora_B.weight",
    ]


def test_every_target_module_gets_the_exact_names_in_both_layouts(models):
    _, _, peft_sd = models
    diffusers_sd = export.peft_to_diffusers_lora(peft_sd)
    comfy_sd = export.diffusers_lora_to_comfy(diffusers_sd, alpha=ALPHA)
    for diffusers_module, comfy_module in EXPECTED_MODULES:
        for part in ("lora_A.weight", "lora_B.weight"):
            assert f"transformer.{diffusers_module}.{part}" in diffusers_sd
            assert f"diffusion_model.{comfy_module}.{part}" in comfy_sd
        assert comfy_sd[f"diffusion_model.{comfy_module}.alpha"].item() == ALPHA
    # 2 blocks x (2 attn x 4 + 2 ff) + proj_in + time_embed.linear = 22 modules
    assert len(diffusers_sd) == 44 and len(comfy_sd) == 44 + 22
    assert not any(k.startswith("diffusion_model.proj_in") or ".time_embed." in k for k in comfy_sd)


def test_alpha_tensors_only_when_alpha_differs_from_rank():
    sd = _lora_sd(["transformer_blocks.0.attn1.to_q", "proj_in"], "transformer.")
    assert not any(k.endswith(".alpha") for k in export.diffusers_lora_to_comfy(sd))
    assert not any(k.endswith(".alpha") for k in export.diffusers_lora_to_comfy(sd, alpha=RANK))
    with_alpha = export.diffusers_lora_to_comfy(sd, alpha=16)
    alphas = {k: v for k, v in with_alpha.items() if k.endswith(".alpha")}
    assert sorted(alphas) == [
        "diffusion_model.patchify_proj.alpha",
        "diffusion_model.transformer_blocks.0.attn1.to_q.alpha",
    ]
    for v in alphas.values():
        assert v.dtype == torch.float32 and v.shape == () and v.item() == 16.0
    # peft-style per-module alpha: only the module whose alpha differs from its rank gets a tensor
    mixed = export.diffusers_lora_to_comfy(sd, alpha={"proj_in": 2, "*": RANK})
    assert [k for k in mixed if k.endswith(".alpha")] == ["diffusion_model.patchify_proj.alpha"]


def test_comfy_to_diffusers_folds_alpha_into_lora_b_and_accepts_up_down_names():
    a = torch.randn(4, 16)
    b = torch.randn(24, 4, dtype=torch.bfloat16)
    comfy = {
        "diffusion_model.transformer_blocks.0.attn1.to_q.lora_down.weight": a,
        "diffusion_model.transformer_blocks.0.attn1.to_q.lora_up.weight": b,
        "diffusion_model.transformer_blocks.0.attn1.to_q.alpha": torch.tensor(12.0),
        "diffusion_model.adaln_single.linear.lora_A.weight": a,
        "diffusion_model.adaln_single.linear.lora_B.weight": b,
    }
    assert export.detect_layout(comfy) == "comfy_lora"
    out = export.comfy_lora_to_diffusers(comfy)
    assert sorted(out) == [
        "transformer.time_embed.linear.lora_A.weight",
        "transformer.time_embed.linear.lora_B.weight",
        "transformer.transformer_blocks.0.attn1.to_q.lora_A.weight",
        "transformer.transformer_blocks.0.attn1.to_q.lora_B.weight",
    ]
    folded = out["transformer.transformer_blocks.0.attn1.to_q.lora_B.weight"]
    assert folded.dtype == torch.bfloat16
    torch.testing.assert_close(folded.float(), (b.float() * 3.0).bfloat16().float())  # alpha 12 / rank 4
    assert torch.equal(out["transformer.time_embed.linear.lora_B.weight"], b)  # no alpha: scale 1
    assert torch.equal(out["transformer.transformer_blocks.0.attn1.to_q.lora_A.weight"], a)


def test_lora_round_trip_both_ways():
    modules = [d for d, _ in EXPECTED_MODULES]
    diffusers_sd = _lora_sd(modules, "transformer.")
    back = export.comfy_lora_to_diffusers(export.diffusers_lora_to_comfy(diffusers_sd))
    assert back.keys() == diffusers_sd.keys()
    assert all(torch.equal(back[k], diffusers_sd[k]) for k in back)

    comfy_sd = _lora_sd([c for _, c in EXPECTED_MODULES], "diffusion_model.")
    again = export.diffusers_lora_to_comfy(export.comfy_lora_to_diffusers(comfy_sd))
    assert again.keys() == comfy_sd.keys()
    assert all(torch.equal(again[k], comfy_sd[k]) for k in again)


def test_lora_conversion_rejects_what_it_cannot_express():
    sd = _lora_sd(["proj_in"], "diffusion_model.")
    sd["diffusion_model.proj_in.dora_scale"] = torch.ones(1, 16)
    with pytest.raises(ConversionError, match="dora_scale"):
        export.comfy_lora_to_diffusers(sd)
    incomplete = {"transformer.proj_in.lora_A.weight": torch.zeros(4, 16)}
    with pytest.raises(ConversionError, match="proj_in has no lora_B"):
        export.diffusers_lora_to_comfy(incomplete)


# --------------------------------------------------------------------------------------------------------------------
# Full model
# --------------------------------------------------------------------------------------------------------------------


def test_full_model_round_trip_and_comfy_names(models):
    base, _, _ = models
    sd = base.state_dict()
    comfy = export.full_diffusers_to_comfy(sd)
    assert export.detect_layout(sd) == "diffusers_full" and export.detect_layout(comfy) == "comfy_full"
    for key in (
        "model.diffusion_model.patchify_proj.weight",
        "model.diffusion_model.adaln_single.emb.timestep_embedder.linear_1.bias",
        "model.diffusion_model.adaln_single.linear.weight",
        "model.diffusion_model.transformer_blocks.1.attn1.q_norm.weight",
        "model.diffusion_model.transformer_blocks.1.attn2.k_norm.weight",
        "model.diffusion_model.transformer_blocks.0.ff.net.0.proj.weight",
        "model.diffusion_model.caption_projection.linear_1.weight",
        "model.diffusion_model.scale_shift_table",
        "model.diffusion_model.proj_out.bias",
    ):
        assert key in comfy, key
    assert not any(".norm_q." in k or "proj_in" in k or "time_embed" in k for k in comfy)
    back = export.full_comfy_to_diffusers(comfy)
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)

    # bare ComfyUI names (a diffusion_models file without prefix), plus VAE keys of a single-file checkpoint
    bare = {k.removeprefix("model.diffusion_model."): v for k, v in comfy.items()}
    assert export.detect_layout(bare) == "comfy_full"
    assert export.full_comfy_to_diffusers(bare).keys() == sd.keys()
    with_vae = {**comfy, "vae.decoder.conv_in.weight": torch.zeros(1)}
    assert export.full_comfy_to_diffusers(with_vae).keys() == sd.keys()

    # torch.compile'd blocks and a transformer. prefix are stripped
    compiled = {
        f"transformer.{k.replace('transformer_blocks.0.', 'transformer_blocks.0._orig_mod.')}": v for k, v in sd.items()
    }
    assert export.detect_layout(compiled) == "diffusers_full"
    assert export.full_diffusers_to_comfy(compiled).keys() == comfy.keys()


def test_comfyui_rule_on_converted_files_reproduces_the_peft_model(models):
    """The ComfyUI LoRA file applied to the ComfyUI checkpoint, as ComfyUI does, equals the trained peft model."""
    base, lora_model, peft_sd = models
    comfy_lora = export.diffusers_lora_to_comfy(export.peft_to_diffusers_lora(peft_sd), alpha=ALPHA)
    merged = _comfy_apply(export.full_diffusers_to_comfy(base.state_dict()), comfy_lora)
    fresh = copy.deepcopy(base)
    fresh.load_state_dict(export.full_comfy_to_diffusers(merged), strict=True)
    expected = _forward(lora_model)
    assert not torch.allclose(_forward(base), expected, atol=1e-3), "the adapter must change the output"
    torch.testing.assert_close(_forward(fresh), expected, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------------------------------------------------
# Saving and diffusers loading
# --------------------------------------------------------------------------------------------------------------------


def test_save_lora_pair_loads_in_diffusers_with_alpha_scaling(models, tmp_path):
    from diffusers import LTXPipeline

    base, lora_model, peft_sd = models
    meta = {
        "base_model": "LTXV_2B_0.9.6_DEV",
        "trigger_word": "zxq",
        "training_steps": 10,
        "resolution_buckets": ["768x512x49"],
    }
    dpath, cpath = export.save_lora_pair(peft_sd, tmp_path, rank=RANK, alpha=ALPHA, metadata=meta)
    assert (dpath.name, cpath.name) == ("lora_weights.safetensors", "lora_weights_comfy.safetensors")
    assert _no_temp_files(tmp_path) and oct(dpath.stat().st_mode & 0o777) == "0o644"

    with safe_open(str(dpath), "pt") as f:
        header = f.metadata()
    assert header["format"] == "pt" and header["rank"] == "4" and header["alpha"] == "8"
    assert header["trigger_word"] == "zxq" and header["training_steps"] == "10"
    assert json.loads(header["resolution_buckets"]) == ["768x512x49"]
    assert set(json.loads(header["target_modules"])) == set(TARGETS)
    adapter = json.loads(header["lora_adapter_metadata"])
    assert adapter["transformer.r"] == RANK and adapter["transformer.lora_alpha"] == ALPHA
    assert "transformer.transformer_blocks.0.attn1.to_q" not in adapter  # keys are config fields, not modules
    assert "transformer_blocks.0.attn1.to_q" in adapter["transformer.target_modules"]
    with safe_open(str(cpath), "pt") as f:
        comfy_header, comfy_keys = f.metadata(), list(f.keys())
    assert comfy_header["trigger_word"] == "zxq" and "lora_adapter_metadata" not in comfy_header
    assert all(k.startswith("diffusion_model.") for k in comfy_keys)
    assert sum(k.endswith(".alpha") for k in comfy_keys) == 22

    # what pipe.load_lora_weights(dpath) does, without building a whole pipeline
    expected = _forward(lora_model)
    state, adapter_meta = LTXPipeline.lora_state_dict(str(dpath), return_lora_metadata=True)
    fresh = copy.deepcopy(base)
    LTXPipeline.load_lora_into_transformer(state, transformer=fresh, metadata=adapter_meta)
    torch.testing.assert_close(_forward(fresh), expected, atol=1e-6, rtol=1e-5)

    # without the header diffusers assumes alpha = rank: the header is what makes the outputs equal
    stripped = copy.deepcopy(base)
    LTXPipeline.load_lora_into_transformer(load_file(dpath), transformer=stripped, metadata=None)
    assert not torch.allclose(_forward(stripped), expected, atol=1e-3)

    # the ComfyUI file converted back to diffusers (alpha folded) loads with the same result, header or not
    back = tmp_path / "back.safetensors"
    export.convert_file(cpath, to="diffusers", output_path=back)
    state, adapter_meta = LTXPipeline.lora_state_dict(str(back), return_lora_metadata=True)
    assert adapter_meta is None
    fresh2 = copy.deepcopy(base)
    LTXPipeline.load_lora_into_transformer(state, transformer=fresh2, metadata=adapter_meta)
    torch.testing.assert_close(_forward(fresh2), expected, atol=1e-5, rtol=1e-4)


def test_save_lora_pair_rejects_a_wrong_rank(models, tmp_path):
    _, _, peft_sd = models
    with pytest.raises(ConversionError, match="rank other than 8"):
        export.save_lora_pair(peft_sd, tmp_path, rank=8, alpha=8, metadata={})
    assert not list(tmp_path.iterdir())


def test_save_full_model_strips_wrappers_and_keeps_metadata(models, tmp_path):
    base, _, _ = models
    sd = {f"_orig_mod.{k}": v for k, v in base.state_dict().items()}
    path = export.save_full_model(sd, tmp_path / "model_weights.safetensors", {"training_steps": 5})
    loaded = load_file(path)
    assert loaded.keys() == base.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in base.state_dict().items())
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["training_steps"] == "5" and f.metadata()["ltx_trainer_layout"] == "diffusers_full"
    assert _no_temp_files(tmp_path)


# --------------------------------------------------------------------------------------------------------------------
# Layout detection, convert_file, CLI
# --------------------------------------------------------------------------------------------------------------------


def test_detect_layout():
    diffusers_lora = _lora_sd(["proj_in"], "transformer.")
    assert export.detect_layout(diffusers_lora) == "diffusers_lora"
    assert export.detect_layout(export.diffusers_lora_to_comfy(diffusers_lora, alpha=8)) == "comfy_lora"
    assert export.detect_layout(_lora_sd(["proj_in"], "")) == "peft_lora"
    assert export.detect_layout({"transformer_blocks.0.attn1.to_q.weight": 0, "proj_in.weight": 0}) == "diffusers_full"
    assert export.detect_layout({"model.diffusion_model.patchify_proj.weight": 0}) == "comfy_full"
    assert export.detect_layout({}) is None
    assert export.detect_layout({"encoder.layer.0.weight": 0}) is None
    assert export.detect_layout({**diffusers_lora, "proj_in.weight": 0}) is None  # LoRA mixed with model weights
    assert export.detect_layout({**diffusers_lora, **_lora_sd(["x"], "diffusion_model.")}) is None


def test_convert_file_default_names_and_metadata(tmp_path):
    src = tmp_path / "lora_weights.safetensors"
    adapter = json.dumps({"transformer.r": 4, "transformer.lora_alpha": 16})
    save_file(
        _lora_sd(["transformer_blocks.0.attn1.to_q", "proj_in"], "transformer."),
        src,
        metadata={"trigger_word": "zxq", "lora_adapter_metadata": adapter},
    )
    comfy_path = export.convert_file(src)
    assert comfy_path == tmp_path / "lora_weights_comfy.safetensors"
    with safe_open(str(comfy_path), "pt") as f:
        meta, keys = f.metadata(), set(f.keys())
        alpha = f.get_tensor("diffusion_model.patchify_proj.alpha")
    assert meta["trigger_word"] == "zxq" and meta["lora_adapter_metadata"] == adapter
    assert meta["ltx_trainer_layout"] == "comfy_lora" and meta["ltx_trainer_converted_from"] == "diffusers_lora"
    assert alpha.item() == 16.0 and "diffusion_model.transformer_blocks.0.attn1.to_q.alpha" in keys

    back = export.convert_file(comfy_path)  # the _comfy suffix is replaced, not stacked
    assert back == tmp_path / "lora_weights_diffusers.safetensors"
    with safe_open(str(back), "pt") as f:
        meta = f.metadata()
        b = f.get_tensor("transformer.proj_in.lora_B.weight")
    assert (
        "lora_adapter_metadata" not in meta
        and meta["trigger_word"] == "zxq"
        and meta["ltx_trainer_alpha_folded"] == "true"
    )
    torch.testing.assert_close(b, load_file(src)["transformer.proj_in.lora_B.weight"] * 4)  # alpha 16 / rank 4

    ref_name = tmp_path / "comfy_lora_weights_step_00010.safetensors"  # the reference trainer's prefix naming
    save_file(_lora_sd(["proj_in"], "diffusion_model."), ref_name)
    assert export.convert_file(ref_name) == tmp_path / "lora_weights_step_00010_diffusers.safetensors"
    assert export.default_output_path("/x/model_weights_diffusers.safetensors", "comfy") == Path(
        "/x/model_weights_comfy.safetensors"
    )
    assert _no_temp_files(tmp_path)


def test_convert_file_full_model(models, tmp_path):
    base, _, _ = models
    src = tmp_path / "model_weights.safetensors"
    export.save_full_model(base.state_dict(), src, {"training_steps": 3})
    comfy = export.convert_file(src)
    assert comfy.name == "model_weights_comfy.safetensors"
    with safe_open(str(comfy), "pt") as f:
        assert "model.diffusion_model.adaln_single.linear.weight" in f.keys()  # noqa: SIM118
        assert f.metadata()["training_steps"] == "3"
    back = load_file(export.convert_file(comfy))
    assert back.keys() == base.state_dict().keys()


def test_cli_converts_with_default_and_explicit_names(tmp_path, capsys):
    src = tmp_path / "my_lora.safetensors"
    save_file(_lora_sd(["proj_in"], "transformer."), src)
    assert convert_main([str(src)]) == 0
    assert (tmp_path / "my_lora_comfy.safetensors").is_file()
    assert "my_lora_comfy.safetensors" in capsys.readouterr().out

    out = tmp_path / "sub" / "explicit.safetensors"
    assert convert_main([str(src), "--to-comfy", "--output_path", str(out)]) == 0
    assert set(load_file(out)) == set(load_file(tmp_path / "my_lora_comfy.safetensors"))

    assert convert_main([str(tmp_path / "my_lora_comfy.safetensors"), "--to-comfy"]) == 1
    assert "already in the comfy layout" in capsys.readouterr().err
    assert convert_main([str(src), "--to-comfy", "--to-diffusers"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_errors_on_a_non_lora_file_and_a_missing_file(tmp_path, capsys):
    other = tmp_path / "text_encoder.safetensors"
    save_file({"encoder.block.0.layer.0.weight": torch.zeros(2), "shared.weight": torch.zeros(2)}, other)
    assert convert_main([str(other)]) == 1
    err = capsys.readouterr().err
    assert str(other) in err and "not an LTX-Video LoRA or transformer file" in err
    assert "found 2 tensors, 0 LoRA-like" in err and "encoder.block.0.layer.0.weight" in err
    assert "accepted layouts: diffusers LoRA" in err and "ComfyUI LoRA" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text_encoder.safetensors"]  # nothing written

    missing = tmp_path / "nope.safetensors"
    assert convert_main([str(missing)]) == 1
    assert f"{missing}: file not found" in capsys.readouterr().err

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    assert convert_main([str(garbage)]) == 1
    assert "cannot be read as safetensors" in capsys.readouterr().err


def test_script_wrapper_runs_and_explains_failures(tmp_path):
    missing = tmp_path / "absent.safetensors"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "convert_checkpoint.py"), str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert proc.returncode == 1
    assert "file not found" in proc.stderr and str(missing) in proc.stderr
