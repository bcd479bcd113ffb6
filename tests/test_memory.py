"""The memory plan against measurement on CPU: exact bytes of weights, gradients and optimizer state on the tiny
model; activations within the stated tolerance of what autograd keeps (saved-tensor hooks) on the tiny model and on
a mid-size random architecture; ``--plan`` without weights; budgets that pick a recipe or refuse with a fix."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import make_precomputed, tiny_config_dict

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def _family():
    from ltx_train_lib.models.registry import get_family

    return get_family("ltxv")


def _train_phase(plan):
    return next(p for p in plan.phases if p.name.startswith("train") and p.chosen)


# ------------------------------------------------------------------------------------------------ exact state bytes


@pytest.mark.parametrize(
    "mode,precision,quantization",
    [("lora", "no", None), ("lora", "bf16", None), ("full", "no", None), ("lora", "bf16", "int8-quanto"),
     ("lora", "bf16", "int8-torchao"), ("lora", "no", "int8-torchao"), ("lora", "bf16", "fp8-torchao")],
)
def test_weights_gradients_and_optimizer_bytes_equal_the_measured_ones(tmp_path, tiny_model_dir, mode, precision, quantization):
    """After one real optimizer step of the trainer's own setup, the plan's bytes are the tensors' bytes exactly."""
    if quantization:
        pytest.importorskip("torchao" if quantization.endswith("torchao") else "optimum.quanto")
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.memory.calibrate import training_loss
    from ltx_train_lib.memory.measure import state_bytes
    from ltx_train_lib.memory.plan import make_plan
    from ltx_train_lib.models.loader import load_components
    from ltx_train_lib.models.ltxv.memory import random_batch
    from ltx_train_lib.training.model_setup import build_optimizer, build_trainable_model

    cfg = config_from_dict(tiny_config_dict(tmp_path / "data", tmp_path / "out", model__training_mode=mode,
                                            acceleration__mixed_precision_mode=precision,
                                            acceleration__quantization=quantization))
    base = torch.bfloat16 if (mode == "lora" and precision == "bf16") else torch.float32
    transformer = load_components("tiny", ("transformer",), transformer_dtype=base).transformer
    model, params = build_trainable_model(cfg, _family(), transformer, torch.device("cpu"))
    optimizer, _ = build_optimizer(cfg.optimization, params)
    training_loss(_family(), model, random_batch(model, (2, 2, 2), 2, 256), precision == "bf16", base).backward()
    optimizer.step()
    measured = state_bytes(model, optimizer)

    gpu = _train_phase(make_plan(cfg, _family(), [(2, 2, 2)], device="cpu")).gpu
    assert gpu.get("weights", 0) == measured["frozen"]
    assert gpu["trainable"] == measured["trainable"] > 0
    assert gpu["gradients"] == measured["gradients"] == measured["trainable"]
    assert gpu["optimizer"] == measured["optimizer"]
    if mode == "lora":
        # rank 4 on q/k/v/out of both attentions in 2 blocks: 16 modules of 32 -> 32 features
        assert measured["trainable"] == 16 * 4 * (32 + 32) * 4


# ------------------------------------------------------------------------------------------------ activations

TINY = (4, 8, 2, 8, 32)  # heads, head dim, blocks, in channels, caption channels (the tiny model's)
MID = (16, 16, 3, 48, 96)  # hidden 256: larger than the calibration grid in heads, channels and blocks


def _arch_model(arch, *, mode, rank, dropout, amp, gc):
    """A random LTX-Video transformer of ``arch`` set up by the trainer's own build_trainable_model."""
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.models.ltxv.memory import build_meta_transformer
    from ltx_train_lib.training.model_setup import build_trainable_model

    heads, head_dim, blocks, cin, cap = arch
    torch.manual_seed(0)
    model = build_meta_transformer(dict(in_channels=cin, out_channels=cin, num_attention_heads=heads,
                                        attention_head_dim=head_dim, cross_attention_dim=heads * head_dim,
                                        num_layers=blocks, caption_channels=cap)).to_empty(device="cpu")
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    base = torch.bfloat16 if (amp and mode == "lora") else torch.float32
    cfg = config_from_dict({
        "model": {"model_source": "tiny", "training_mode": mode},
        "lora": {"rank": rank, "alpha": rank, "dropout": dropout, "target_modules": list(TARGETS)} if mode == "lora" else None,
        "optimization": {"enable_gradient_checkpointing": gc},
        "acceleration": {"mixed_precision_mode": "bf16" if amp else "no"},
        "data": {"preprocessed_data_root": "unused"},
    })
    model, _ = build_trainable_model(cfg, _family(), model.to(base), torch.device("cpu"))
    return model, base


CASES = [  # (arch, mode, amp, checkpointing, dropout)
    (TINY, "lora", False, False, 0.0),
    (TINY, "lora", True, True, 0.0),
    (TINY, "full", True, False, 0.0),
    (MID, "lora", True, False, 0.0),
    (MID, "lora", False, True, 0.1),
    (MID, "lora", True, False, 0.2),
    (MID, "full", False, False, 0.0),
]


@pytest.mark.parametrize("arch,mode,amp,gc,dropout", CASES)
def test_activation_estimate_is_within_its_tolerance_of_the_saved_tensors(arch, mode, amp, gc, dropout):
    from ltx_train_lib.memory.calibrate import measure_step_peak, measure_training
    from ltx_train_lib.memory.profile import LinearActivations, StepShape
    from ltx_train_lib.models.ltxv.memory import COEFFICIENTS, LtxvArchitecture, random_batch

    rank = 8 if mode == "lora" else 0
    model, base = _arch_model(arch, mode=mode, rank=max(rank, 1), dropout=dropout, amp=amp, gc=gc)
    latent = (5, 8, 8) if arch == MID else (2, 2, 2)
    batch = random_batch(model, latent, 2, 256)
    shape = StepShape(2, latent[0] * latent[1] * latent[2], 256, amp, mode, rank, dropout > 0, gc, False, TARGETS)
    arch_terms = LtxvArchitecture(model)
    activations = LinearActivations(arch_terms.num_blocks, arch_terms.terms, COEFFICIENTS, tolerance=0.05)
    estimate = activations.training(shape)

    saved = measure_training(_family(), model, batch, amp=amp, model_dtype=base, checkpointing=gc)
    assert saved.total > 0
    assert abs(estimate.kept - saved.total) <= activations.tolerance * saved.total, (estimate.kept, saved.total)
    if not gc:  # one block's share, which checkpointing recomputes block by block
        assert abs(estimate.block - saved.per_block[-1]) <= activations.tolerance * saved.per_block[-1]
    # The peak of forward + backward (what a GPU must hold): the backward share is a rule measured the same way.
    after_forward, peak = measure_step_peak(_family(), model, batch, amp=amp, model_dtype=base)
    # What the hooks count is all that stays alive (but the batch, made before: a full fine-tune keeps the embeddings).
    assert after_forward == pytest.approx(saved.total, rel=0.01)
    grads = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
    assert 0.65 * peak <= estimate.peak + grads <= 1.3 * peak, (estimate.peak + grads, peak)


def test_sampling_bound_holds_a_no_grad_forward():
    from ltx_train_lib.memory.calibrate import measure_sampling
    from ltx_train_lib.memory.profile import LinearActivations
    from ltx_train_lib.models.family import ForwardInputs
    from ltx_train_lib.models.ltxv.memory import COEFFICIENTS, LtxvArchitecture

    model, base = _arch_model(MID, mode="lora", rank=8, dropout=0.0, amp=True, gc=False)
    model.eval()
    arch = LtxvArchitecture(model)
    bound = LinearActivations(arch.num_blocks, arch.terms, COEFFICIENTS).sampling(2, 5 * 8 * 8, 256, True)
    inputs = ForwardInputs(tokens=torch.randn(2, 320, 48), timesteps=torch.full((2, 320), 500.0),
                           prompt_embeds=torch.randn(2, 256, 96), prompt_attention_mask=torch.ones(2, 256, dtype=torch.bool),
                           latent_shape=(5, 8, 8), fps=24.0)
    measured = measure_sampling(_family(), model, inputs, amp=True, model_dtype=base)
    assert measured <= bound <= 1.35 * measured, (bound, measured)


def test_a_family_without_a_profile_gets_the_generic_estimate():
    """What another family (LTX-2) gets before it describes itself: exact parameters, rough activations."""
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.memory.plan import make_plan
    from ltx_train_lib.models.family import ModelFamily
    from ltx_train_lib.models.ltxv.family import LtxvFamily

    class Plain(LtxvFamily):
        def memory_profile(self, source, *, vae_path=None):
            return ModelFamily.memory_profile(self, source, vae_path=vae_path)

        def build_random_transformer(self, size, dtype=None):  # knows "tiny" too
            from ltx_train_lib.models.ltxv import tiny
            from ltx_train_lib.models.ltxv.memory import build_meta_transformer

            return build_meta_transformer(tiny.TRANSFORMER_CONFIG) if size == "tiny" else super().build_random_transformer(size, dtype)

    cfg = config_from_dict(tiny_config_dict(Path("unused"), Path("unused")))
    generic = make_plan(cfg, Plain(), [(2, 2, 2)], device="cpu")
    exact = make_plan(cfg, _family(), [(2, 2, 2)], device="cpu")
    g, e = _train_phase(generic).gpu, _train_phase(exact).gpu
    assert {k: g.get(k) for k in ("weights", "trainable", "optimizer")} == {k: e.get(k) for k in ("weights", "trainable", "optimizer")}
    assert not generic.activations_calibrated and generic.notes and g["activations"] > 0
    assert generic.architecture == "LTX-Video tiny: 2 blocks, hidden 32"
    big = make_plan(config_from_dict({**tiny_config_dict(Path("u"), Path("u")), "model": {"model_source": "LTXV_2B_0.9.6_DEV"}}),
                    Plain(), [(12, 14, 24)], device="cuda")
    assert "28 blocks, hidden 2048" in big.architecture


# ------------------------------------------------------------------------------------------------ --plan and budgets


def _template_config(tmp_path: Path, **memory) -> Path:
    """configs/ltxv_13b_lora_template.yaml with its placeholders filled; the dataset does not exist."""
    text = (ROOT / "configs" / "ltxv_13b_lora_template.yaml").read_text()
    text = text.replace("[RANK]", "32").replace("[BASENAME]", str(tmp_path / "missing"))
    data = yaml.safe_load(text)
    if memory:
        data["memory"] = memory
    path = tmp_path / "13b.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_plan_of_the_13b_template_reads_no_weights(tmp_path, monkeypatch, capsys):
    import safetensors
    import safetensors.torch

    from ltx_train_lib.cli.train import train_main
    from ltx_train_lib.models import loader

    def refuse(*args, **kwargs):
        raise AssertionError("the plan opened a weights file or loaded a model")

    for module, name in ((safetensors, "safe_open"), (safetensors.torch, "load_file"), (safetensors.torch, "safe_open"),
                         (loader, "load_components"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    t0 = time.perf_counter()
    rc = train_main([str(_template_config(tmp_path)), "--plan", "--buckets", "768x448x89;512x512x49", "--device", "cuda"])
    seconds = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert rc == 0
    assert "LTX-Video 13B: 48 blocks, hidden 4096 on cuda" in out
    for phase in ("encode prompts", "train 768x448x89", "train 512x512x49 without checkpointing", "validation decode 576x576x121"):
        assert phase in out
    assert "GPU memory (GB)" in out and "system RAM (GB)" in out and "the run needs" in out
    assert seconds < 20, seconds  # shapes only: no weights, nothing downloaded


def test_plan_without_buckets_uses_the_validation_size_and_says_so(tmp_path, capsys):
    from ltx_train_lib.cli.train import train_main

    assert train_main([str(_template_config(tmp_path)), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "buckets from validation.video_dims" in out and "train 576x576x121" in out


def test_budget_16_picks_a_recipe_the_plan_says_fits(tmp_path, capsys):
    from ltx_train_lib.cli.train import train_main
    from ltx_train_lib.config import load_config
    from ltx_train_lib.memory.budget import budget_bytes, resolve
    from ltx_train_lib.memory.plan import GIB, make_plan

    path = _template_config(tmp_path, budget_gb=16)
    cfg = load_config(path)
    buckets = [(12, 14, 24), (7, 16, 16)]  # 768x448x89, 512x512x49
    budget, _ = budget_bytes(cfg, "cuda")
    assert budget == 16 * GIB
    res = resolve(cfg, _family(), buckets, device="cuda", budget=budget)
    assert res.plan.fits(budget) and res.recipe != "as configured"
    # The chosen config, planned again from scratch, fits too: the recipe is what the trainer will run.
    again = make_plan(res.config, _family(), buckets, device="cuda")
    assert again.needed == res.plan.needed <= budget
    assert res.config.memory.blocks_to_swap > 0 or res.config.acceleration.quantization in ("int8-torchao", "int8-quanto")
    # As configured it would not fit: 13B bf16 weights alone are 24 GB.
    assert not make_plan(cfg, _family(), buckets, device="cuda").fits(budget)
    assert train_main([str(path), "--plan", "--buckets", "768x448x89;512x512x49", "--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "memory budget 16.0 GB" in out and "the trainer would train with:" in out


def test_a_budget_no_recipe_meets_is_refused_naming_what_would_fit(tmp_path, capsys):
    from ltx_train_lib.cli.train import train_main

    rc = train_main([str(_template_config(tmp_path, budget_gb=4)), "--plan", "--buckets", "768x448x89", "--device", "cuda"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "memory.budget_gb: the run does not fit in 4.0 GB" in err
    assert "validation.interval null" in err and "resolution buckets of at most" in err
    assert "Traceback" not in err


def test_budget_auto_on_a_machine_without_cuda_says_so(tmp_path, capsys, monkeypatch):
    from ltx_train_lib.cli.train import train_main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train_main([str(_template_config(tmp_path, budget_gb="auto")), "--plan", "--buckets", "512x512x49"]) == 0
    assert "no CUDA device on this machine, so no budget applies" in capsys.readouterr().out


def test_trainer_applies_the_budget_and_writes_the_choice(tmp_path, tiny_model_dir):
    """A budget just below what the tiny run needs without checkpointing: the trainer turns it on, records it in
    training_config.yaml (the values and a comment saying why) and trains."""
    from ltx_train_lib.config import config_from_dict, load_config
    from ltx_train_lib.memory.plan import GIB, make_plan
    from ltx_train_lib.training.trainer import Trainer

    data = make_precomputed(tmp_path / "data", [(2, 2, 2)] * 2)
    base = tiny_config_dict(data, tmp_path / "out", optimization__steps=2)
    without = make_plan(config_from_dict(base), _family(), [(2, 2, 2)], device="cpu")
    with_gc = make_plan(config_from_dict({**base, "optimization": {**base["optimization"], "enable_gradient_checkpointing": True}}),
                        _family(), [(2, 2, 2)], device="cpu")
    assert with_gc.needed < without.needed
    budget = (with_gc.needed + without.needed) / 2 / GIB
    cfg = config_from_dict({**base, "memory": {"budget_gb": budget}})
    result = Trainer(cfg).train()
    assert result.status == "done"
    written = (tmp_path / "out" / "training_config.yaml").read_text()
    assert written.startswith(f"# memory budget {budget:.1f} GB") and "gradient checkpointing" in written.splitlines()[0]
    resolved = load_config(tmp_path / "out" / "training_config.yaml")
    assert resolved.optimization.enable_gradient_checkpointing is True
    assert resolved.memory.budget_gb == pytest.approx(budget)

    # Too small for any recipe: refused before anything is written, naming the fix.
    from ltx_train_lib.memory.budget import MemoryBudgetError

    with pytest.raises(MemoryBudgetError, match=r"does not fit in 0\.5 GB.*Or give it a GPU with at least"):
        Trainer(config_from_dict({**base, "output_dir": str(tmp_path / "out2"), "memory": {"budget_gb": 0.5}})).train()
    assert not (tmp_path / "out2").exists()


def test_memory_section_leaves_fingerprints_and_job_ids_of_existing_configs_alone(tmp_path):
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.jobs.layout import job_id_for
    from ltx_train_lib.training.state import config_fingerprint

    base = tiny_config_dict(tmp_path, tmp_path)
    plain = config_from_dict(base)
    swapping = config_from_dict({**base, "memory": {"blocks_to_swap": 1}})
    budget = config_from_dict({**base, "memory": {"budget_gb": 12}})
    assert config_fingerprint(plain) == config_fingerprint(swapping) == config_fingerprint(budget)  # math unchanged
    assert job_id_for(plain) != job_id_for(budget)  # another budget is another job
    data = plain.model_dump(mode="json")
    data.pop("memory")
    data.pop("distributed")  # the other sections and fields that came later, at their defaults
    data["model"].pop("audio_vae_path")
    data["optimization"].pop("optimizer_implementation")
    import hashlib
    import json

    legacy = hashlib.sha256(json.dumps({"config": {k: v for k, v in data.items() if k != "output_dir"}, "num_processes": 1,
                                        "identity": None}, sort_keys=True).encode()).hexdigest()[:16]
    assert job_id_for(plain) == legacy  # a config without memory settings keeps the id it had


def test_memory_config_messages():
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.errors import ConfigError

    base = tiny_config_dict(Path("d"), Path("o"))
    assert config_from_dict({**base, "memory": {"budget_gb": "24GB"}}).memory.budget_gb == 24.0
    assert config_from_dict({**base, "memory": {"budget_gb": " Auto"}}).memory.budget_gb == "auto"
    for bad, text in (({"budget_gb": 0}, "positive number of GB"), ({"budget_gb": "lots"}, "a number of GB, 'auto' or null"),
                      ({"blocks_to_swap": -1}, "greater than or equal to 0")):
        with pytest.raises(ConfigError, match=text):
            config_from_dict({**base, "memory": bad})
    with pytest.raises(ConfigError, match="blocks_to_swap works with training_mode 'lora' only"):
        config_from_dict({**base, "model": {"model_source": "tiny", "training_mode": "full"}, "memory": {"blocks_to_swap": 1}})
    with pytest.raises(ConfigError, match="cannot be combined with acceleration.compile_with_inductor"):
        config_from_dict({**base, "acceleration": {"compile_with_inductor": True}, "memory": {"blocks_to_swap": 1}})


def test_vae_decode_trace_and_t5_count_match_the_real_modules():
    """The two figures the LTX-Video profile computes without building real modules: T5's parameter count from
    its config, the VAE decode peak traced on the meta device (checked against a real decode of the tiny VAE)."""
    from transformers import T5Config, T5EncoderModel

    from ltx_train_lib.memory.measure import LiveTensors
    from ltx_train_lib.models.ltxv import memory as lm
    from ltx_train_lib.models.ltxv import tiny
    from ltx_train_lib.models.registry import resolve_source

    cfg = lm.text_encoder_config(resolve_source("tiny"))
    assert lm.t5_parameters(cfg) == sum(p.numel() for p in T5EncoderModel(T5Config(**cfg)).parameters())
    xxl = lm.text_encoder_config(resolve_source("LTXV_2B_0.9.6_DEV"))
    assert lm.t5_parameters(xxl) == 4_762_310_656  # T5-XXL's encoder

    from diffusers import AutoencoderKLLTXVideo

    vae = AutoencoderKLLTXVideo(**tiny.VAE_CONFIG).to(torch.float32).eval()
    vae.use_framewise_decoding = False
    latents = torch.randn(1, 8, 2, 2, 3)
    live = LiveTensors()
    with torch.no_grad(), live:
        vae.decode(latents, return_dict=False)
    assert lm.vae_decode_bytes(tiny.VAE_CONFIG, 96, 64, 9, 4) == live.peak > 0


def test_plan_reports_swapped_blocks_in_ram(tmp_path):
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.memory.plan import make_plan

    base = tiny_config_dict(tmp_path, tmp_path)
    plain = make_plan(config_from_dict(base), _family(), [(2, 2, 2)], device="cuda")
    swapped = make_plan(config_from_dict({**base, "memory": {"blocks_to_swap": 2}}), _family(), [(2, 2, 2)], device="cuda")
    p, s = _train_phase(plain), _train_phase(swapped)
    # Both blocks leave the GPU but two at a time come back: the peak holds them; RAM holds their masters.
    assert s.gpu["weights"] == p.gpu["weights"] and s.ram["swapped blocks"] > 0
    with pytest.raises(Exception, match="has 2 blocks"):
        make_plan(config_from_dict({**base, "memory": {"blocks_to_swap": 3}}), _family(), [(2, 2, 2)], device="cuda")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_resumed_run_keeps_the_settings_its_budget_chose(tmp_path, tiny_model_dir):
    """The budget picked gradient checkpointing for the first part; resumed under a budget that would not need it
    (more free memory), the run keeps it: checkpointing is part of the checkpoint's fingerprint."""
    from ltx_train_lib.config import config_from_dict, load_config
    from ltx_train_lib.memory.plan import GIB, make_plan
    from ltx_train_lib.training.trainer import Trainer

    data = make_precomputed(tmp_path / "data", [(2, 2, 2)] * 2)
    base = tiny_config_dict(data, tmp_path / "out", optimization__steps=2, checkpoints__interval=1)
    without = make_plan(config_from_dict(base), _family(), [(2, 2, 2)], device="cpu")
    with_gc = make_plan(config_from_dict({**base, "optimization": {**base["optimization"], "enable_gradient_checkpointing": True}}),
                        _family(), [(2, 2, 2)], device="cpu")
    tight = (with_gc.needed + without.needed) / 2 / GIB
    assert Trainer(config_from_dict({**base, "memory": {"budget_gb": tight}})).train().status == "done"
    more = {**base, "optimization": {**base["optimization"], "steps": 4}, "memory": {"budget_gb": 64}}
    result = Trainer(config_from_dict(more)).train()
    assert result.status == "done" and result.step == 4 and len(result.losses) == 4  # resumed, not refused
    assert load_config(tmp_path / "out" / "training_config.yaml").optimization.enable_gradient_checkpointing is True
