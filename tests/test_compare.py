"""CompareCheckpoints without ComfyUI: real LoRA files in a job folder laid out as the trainer writes it, a real
precomputed dataset for the cached-conditioning fallback, and stand-ins for the ComfyUI modules the node reaches
through nodes/comfy.py (``comfy.lora``, ``comfy.sample``, ``comfy.samplers``, ``comfy.utils``), as
tests/test_nodes.py does for ConvertComfy. The real ComfyUI run is in tests/test_comfyui_integration.py."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from ltx_train_lib import export
from ltx_train_lib.lora_health import LoraHealthError
from nodes import NODE_CLASS_MAPPINGS, comfy, compare
from nodes import types as T
from tests.conftest import make_precomputed, tiny_config_dict

MODULES = [f"transformer_blocks.{b}.attn1.{p}" for b in range(2) for p in ("to_q", "to_k")]
WEIGHTS = [f"diffusion_model.{m}.weight" for m in MODULES]
STEPS = (10, 20, 30)  # checkpoints; 30 is also the final step


@pytest.fixture(autouse=True)
def _clean(monkeypatch, tmp_path):
    monkeypatch.setenv(comfy.ROOT_ENV, str(tmp_path / "comfy"))
    monkeypatch.setattr(compare, "_runs", {})
    comfy.clear_interrupt()
    comfy.interrupt_hook = None
    yield
    comfy.clear_interrupt()
    comfy.interrupt_hook = None


def _save_lora(folder: Path, step: int, suffix: str) -> tuple[Path, Path]:
    g = torch.Generator().manual_seed(step)
    sd = {}
    for m in MODULES:
        sd[f"{m}.lora_A.weight"] = torch.randn(4, 32, generator=g)
        sd[f"{m}.lora_B.weight"] = torch.randn(32, 4, generator=g)
    meta = {"base_model": "tiny", "model_family": "ltxv", "training_steps": str(step), "frame_rate": "24"}
    return export.save_lora_pair(sd, folder, rank=4, alpha=8, metadata=meta,
                                 diffusers_name=f"lora_weights{suffix}.safetensors",
                                 comfy_name=f"lora_weights{suffix}_comfy.safetensors")


@pytest.fixture
def run(tmp_path) -> T.LoraResult:
    """A finished run as the trainer leaves it: checkpoints at 10, 20, 30 (the final step), the final LoRA pair,
    its training config naming a precomputed dataset."""
    job = tmp_path / "job"
    for step in STEPS:
        _save_lora(job / "checkpoints", step, f"_step_{step:05d}")
    d, c = _save_lora(job, STEPS[-1], "")
    data = make_precomputed(tmp_path / "dataset", [(2, 2, 2)] * 2, text_dim=32)
    config = job / "training_config.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(data / ".precomputed", job)))
    return T.LoraResult("job", job, d, c, STEPS[-1], "tiny", 4, 8, config_file=config, name="run")


# ------------------------------------------------------------------------------------- ComfyUI's modules, faked


class FakeComfyLora:
    """comfy.lora: the key map names each module of the model; load_lora gives one patch per module (its lora_B)."""

    def model_lora_keys_unet(self, model, key_map):
        key_map.update({f"diffusion_model.{m}": f"diffusion_model.{m}.weight" for m in MODULES})
        return key_map

    def load_lora(self, sd, key_map, log_missing=True):
        return {t: sd[f"{p}.lora_B.weight"] for p, t in key_map.items() if f"{p}.lora_A.weight" in sd}


class FakeModel:
    """A ModelPatcher: clone() copies the patches, add_patches accepts those whose weight the model has."""

    def __init__(self, weights=WEIGHTS, patches=None) -> None:
        self.weights = list(weights)
        self.model = types.SimpleNamespace(state_dict=lambda: dict.fromkeys(self.weights))
        self.patches = dict(patches or {})

    def clone(self):
        return FakeModel(self.weights, self.patches)

    def add_patches(self, patches, strength):
        accepted = [k for k in patches if k in self.weights]
        self.patches.update({k: (patches[k], strength) for k in accepted})
        return accepted


class FakeSample:
    """comfy.sample with 0.3.64's signatures. The "sample" is the noise moved by the sum of the model's patches and
    the prompt's mean, so it depends on exactly what the node passed."""

    def __init__(self, ratio_args: bool = False) -> None:
        self.calls: list[dict] = []
        if ratio_args:  # ComfyUI 0.33's fix_empty_latent_channels
            def fix(model, latent_image, downscale_ratio_spacial=None, downscale_ratio_temporal=None):
                self.calls.append({"fix": (downscale_ratio_spacial, downscale_ratio_temporal)})
                return latent_image

            self.fix_empty_latent_channels = fix

    def fix_empty_latent_channels(self, model, latent_image):
        return latent_image

    def prepare_noise(self, latent_image, seed, batch_inds=None):
        return torch.randn(latent_image.shape, generator=torch.Generator().manual_seed(seed))

    def sample(self, model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0,
               noise_mask=None, callback=None, disable_pbar=False, seed=None):
        self.calls.append({"model": model, "steps": steps, "cfg": cfg, "sampler": sampler_name, "scheduler": scheduler,
                           "positive": positive, "negative": negative, "seed": seed, "denoise": denoise,
                           "noise_mask": noise_mask})
        for s in range(steps):
            callback(s, None, None, steps)
        shift = sum(float(t.sum()) * strength for t, strength in model.patches.values())
        return noise + shift + float(positive[0][0].mean())


class FakeBar:
    values: list[tuple[int, int]] = []

    def __init__(self, total, node_id=None) -> None:
        self.total = total

    def update_absolute(self, value, total=None, preview=None) -> None:
        FakeBar.values.append((value, total))


@pytest.fixture
def fake_comfy(monkeypatch) -> FakeSample:
    sample = FakeSample()
    FakeBar.values = []
    utils = types.SimpleNamespace(load_torch_file=lambda path, safe_load=True: load_file(path), ProgressBar=FakeBar,
                                  PROGRESS_BAR_ENABLED=False)
    for name, module in (("comfy.lora", FakeComfyLora()), ("comfy.lora_convert", None), ("comfy.sample", sample),
                         ("comfy.utils", utils)):
        monkeypatch.setitem(comfy._modules, name, module)
    return sample


def _inputs(**overrides) -> dict:
    values = {"sampling_seed": 5, "steps": 4, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple",
              "denoise": 1.0, "latent_image": {"samples": torch.zeros(1, 8, 2, 2, 3)}, "strength": 1.0,
              "include_base_model": True, "pick_step": 0, "save_as": "", "overwrite": False, "unique_id": "7"}
    values.update(overrides)
    return values


def node():
    return NODE_CLASS_MAPPINGS["LTXTrainer_CompareCheckpoints"]()


# -------------------------------------------------------------------------------------------------------- tests


def test_entries_in_step_order_with_the_final_step_once(run):
    entries = compare.comparison_entries(run, include_base=True)
    assert [(e.step, e.final) for e in entries] == [(0, False), (10, False), (20, False), (30, True)]
    assert entries[0].lora is None and entries[-1].lora == run.lora_comfy  # not checkpoints/..._step_00030_comfy
    assert [e.lora.name for e in entries[1:3]] == ["lora_weights_step_00010_comfy.safetensors",
                                                   "lora_weights_step_00020_comfy.safetensors"]
    assert all(e.healthy for e in entries[1:]) and entries[1].health.step == 10
    assert [e.step for e in compare.comparison_entries(run, include_base=False)] == [10, 20, 30]
    # a save being written (fileio's .name.random.tmp) and full-model weights are not LoRA checkpoints
    (run.job_dir / "checkpoints" / ".lora_weights_step_00040_comfy.safetensors.x1.tmp").write_bytes(b"partial")
    (run.job_dir / "checkpoints" / "model_weights_step_00005.safetensors").write_bytes(b"other")
    assert [e.step for e in compare.comparison_entries(run, include_base=False)] == [10, 20, 30]
    # a checkpoint kept only in the diffusers layout is converted beside it, to the same ComfyUI weights
    ckpt = run.job_dir / "checkpoints" / "lora_weights_step_00010_comfy.safetensors"
    original = load_file(str(ckpt))
    ckpt.unlink()
    again = compare.comparison_entries(run, include_base=False)
    assert again[0].lora == ckpt and ckpt.is_file()
    converted = load_file(str(ckpt))
    assert converted.keys() == original.keys() and all(torch.equal(converted[k], original[k]) for k in original)


def test_pick_is_the_newest_healthy_lora_or_the_step_asked_for(run):
    entries = compare.comparison_entries(run, include_base=True)
    chosen, why = compare.pick_entry(entries, 0)
    assert chosen.step == 30 and chosen.final and "no ground truth" in why
    assert compare.pick_entry(entries, 20)[0].lora.name == "lora_weights_step_00020_comfy.safetensors"
    with pytest.raises(ValueError, match=r"pick_step: no LoRA of this run was saved at step 25; .* steps 10, 20, 30"):
        compare.pick_entry(entries, 25)
    # the final LoRA broken (Inf): the automatic pick falls back to step 20, asking for 30 is refused
    sd = load_file(str(run.lora_comfy))
    sd[next(k for k in sd if k.endswith("lora_B.weight"))][0, 0] = float("inf")
    save_file(sd, str(run.lora_comfy), metadata={"training_steps": "30"})
    entries = compare.comparison_entries(run, include_base=True)
    assert not entries[-1].healthy
    assert compare.pick_entry(entries, 0)[0].step == 20
    with pytest.raises(LoraHealthError, match=r"hold NaN/Inf.*pick_step: pick another step \(10, 20, 30\)"):
        compare.pick_entry(entries, 30)


def test_no_checkpoints_says_where_it_looked_and_how_to_keep_them(run):
    folder = run.job_dir / "checkpoints"
    for step in STEPS[:-1]:  # only the final step's checkpoint left: nothing to compare
        for p in folder.glob(f"lora_weights_step_{step:05d}*.safetensors"):
            p.unlink()
    with pytest.raises(FileNotFoundError, match=rf"CompareCheckpoints.lora: no LoRA checkpoints of job 'run'.*'{folder}' "
                       r"holds none; only the final LoRA .* checkpoint_interval .* keep_last_n is -1"):
        compare.comparison_entries(run, include_base=True)
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    with pytest.raises(FileNotFoundError, match=r"checkpoints' does not exist"):
        compare.comparison_entries(run, include_base=True)


def test_each_checkpoint_sampled_alike_in_step_order_then_reused(run, fake_comfy, tmp_path):
    model, latent = FakeModel(), {"samples": torch.zeros(1, 8, 2, 2, 3)}
    out = node().compare(model, run, **_inputs(latent_image=latent))
    latents, listing, picked, grid = out["result"]
    samples = latents["samples"]
    assert samples.shape == (4, 8, 2, 2, 3)  # base, 10, 20, 30
    calls = [c for c in fake_comfy.calls if "model" in c]
    assert len(calls) == 4 and {c["seed"] for c in calls} == {5} and {c["steps"] for c in calls} == {4}
    assert calls[0]["model"] is model and model.patches == {}  # the base model, and the input model stays unpatched
    for call in calls[1:]:  # every LoRA module patched, at the given strength
        assert sorted(call["model"].patches) == sorted(WEIGHTS) and {s for _, s in call["model"].patches.values()} == {1.0}
    assert len({round(float(s.mean()), 6) for s in samples}) == 4  # different checkpoints, different samples
    # the cached caption embedding of the first training clip, at the LoRA's frame rate; the negative zeroed
    cond = torch.load(run.job_dir.parent / "dataset" / ".precomputed" / "conditions" / "clip_000.mp4.pt")
    positive, negative = calls[0]["positive"], calls[0]["negative"]
    assert torch.equal(positive[0][0], cond["prompt_embeds"].float()[None])
    assert torch.equal(positive[0][1]["attention_mask"], cond["prompt_attention_mask"].long()[None])
    assert positive[0][1]["frame_rate"] == 24.0 and not negative[0][0].any()
    assert listing.splitlines() == [
        "[0] base model (no LoRA)",
        "[1] step 10: lora_weights_step_00010_comfy.safetensors",
        "[2] step 20: lora_weights_step_00020_comfy.safetensors",
        "[3] step 30 (final): lora_weights_comfy.safetensors  <- picked",
    ]
    assert picked == str(run.lora_comfy)
    # one bar over all samples: 4 entries x 4 steps, rising to the end
    values = [v for v, _ in FakeBar.values]
    assert values == sorted(values) and values[-1] == 16 and {t for _, t in FakeBar.values} == {16}
    text = out["ui"]["text"][0]
    assert "clip_000" in text and "the newest LoRA whose health scan passes" in text

    # picking another step and saving it: nothing is sampled again
    n = len(fake_comfy.calls)
    out = node().compare(model, run, **_inputs(latent_image=latent, pick_step=20, save_as="picked/best"))
    assert len(fake_comfy.calls) == n and "reused the samples of the previous run for 4 of 4" in out["ui"]["text"][0]
    assert torch.equal(out["result"][0]["samples"], samples) and out["result"][2] == "picked/best.safetensors"
    saved = tmp_path / "comfy" / "models" / "loras" / "picked" / "best.safetensors"
    assert saved.read_bytes() == (run.job_dir / "checkpoints" / "lora_weights_step_00020_comfy.safetensors").read_bytes()
    assert "picked/best.safetensors" in comfy.model_files("loras")
    with pytest.raises(FileExistsError, match=r"CompareCheckpoints.save_as: 'picked/best.safetensors' already exists"):
        node().compare(model, run, **_inputs(latent_image=latent, pick_step=10, save_as="picked/best"))
    node().compare(model, run, **_inputs(latent_image=latent, pick_step=10, save_as="picked/best", overwrite=True))
    assert len(fake_comfy.calls) == n
    assert saved.read_bytes() == (run.job_dir / "checkpoints" / "lora_weights_step_00010_comfy.safetensors").read_bytes()
    # another strength, or another model: sampled again
    out = node().compare(model, run, **_inputs(latent_image=latent, strength=0.0))
    assert len([c for c in fake_comfy.calls if "model" in c]) == 8
    assert all(torch.equal(s, out["result"][0]["samples"][0]) for s in out["result"][0]["samples"])  # strength 0 = base
    assert torch.equal(out["result"][0]["samples"][0], samples[0])
    node().compare(FakeModel(), run, **_inputs(latent_image=latent, strength=0.0))
    assert len([c for c in fake_comfy.calls if "model" in c]) == 12
    node().compare(FakeModel(), run, **_inputs(strength=0.0))  # a new latent (its node ran again)
    assert len([c for c in fake_comfy.calls if "model" in c]) == 16


def test_given_conditioning_and_batches_pass_through(run, fake_comfy):
    positive = [[torch.ones(1, 5, 32), {"frame_rate": 30.0}]]
    negative = [[torch.full((1, 5, 32), 2.0), {}]]
    latent = {"samples": torch.zeros(2, 8, 2, 2, 3), "batch_index": [3, 4], "noise_mask": torch.ones(2, 1, 2, 2, 3)}
    out = node().compare(FakeModel(), run, **_inputs(latent_image=latent, include_base_model=False), positive=positive,
                         negative=negative)
    latents, listing, _, _ = out["result"]
    assert latents["samples"].shape[0] == 6 and latents["noise_mask"].shape[0] == 6 and "batch_index" not in latents
    assert listing.splitlines()[0] == "[0-1] step 10: lora_weights_step_00010_comfy.safetensors"
    call = next(c for c in fake_comfy.calls if "model" in c)
    assert call["positive"] is positive and call["negative"] is negative
    assert "cached caption" not in out["ui"]["text"][0]


def test_cancel_is_checked_between_checkpoints(run, fake_comfy):
    comfy.interrupt_hook = lambda: any("model" in c for c in fake_comfy.calls)  # Cancel during the first sample
    with pytest.raises(comfy.Interrupted):
        node().compare(FakeModel(), run, **_inputs())
    assert len([c for c in fake_comfy.calls if "model" in c]) == 1


def test_a_model_the_lora_does_not_fit_is_named(run, fake_comfy):
    with pytest.raises(RuntimeError, match=r"CompareCheckpoints.model: 3 of 12 keys of lora_weights_step_00010_comfy"
                       r".safetensors patched no weight of the connected model"):
        node().compare(FakeModel(WEIGHTS[1:]), run, **_inputs())


def test_cached_conditioning_only_for_ltx_video(run, tmp_path):
    other = tmp_path / "ltx2.safetensors"
    save_file({"x": torch.zeros(1)}, str(other), metadata={"model_family": "ltx2"})
    with pytest.raises(ValueError, match=r"positive: not connected, and only an LTX-Video LoRA .* connect a CONDITIONING"):
        compare.training_conditioning(run, other)
    no_config = T.LoraResult("job", run.job_dir, run.lora, run.lora_comfy, 30, "tiny", 4, 8, name="old")
    with pytest.raises(ValueError, match=r"job 'old' has no training config"):
        compare.training_conditioning(no_config, run.lora_comfy)


def test_ksample_is_common_ksamplers_call(monkeypatch):
    """What KSampler runs, on both fix_empty_latent_channels signatures (0.3.64; 0.33 with the latent's ratios)."""
    for ratio_args in (False, True):
        sample = FakeSample(ratio_args)
        monkeypatch.setitem(comfy._modules, "comfy.sample", sample)
        monkeypatch.setitem(comfy._modules, "comfy.utils", types.SimpleNamespace(PROGRESS_BAR_ENABLED=True))
        latent = {"samples": torch.zeros(1, 8, 2, 2, 3), "noise_mask": torch.ones(1), "downscale_ratio_spacial": 32,
                  "downscale_ratio_temporal": 8}
        seen = []
        out = comfy.ksample(FakeModel(), 9, 3, 2.5, "euler", "simple", [[torch.ones(1, 2, 32), {}]], [], latent,
                            denoise=0.5, on_step=lambda s, t, seen=seen: seen.append((s, t)))
        call = sample.calls[-1]
        assert (call["seed"], call["cfg"], call["denoise"], call["sampler"], call["scheduler"]) == (9, 2.5, 0.5, "euler", "simple")
        assert call["noise_mask"] is latent["noise_mask"] and seen == [(1, 3), (2, 3), (3, 3)]
        assert set(out) == {"samples", "noise_mask"}  # the ratios are dropped, as common_ksampler does
        assert torch.equal(out["samples"], torch.randn(1, 8, 2, 2, 3, generator=torch.Generator().manual_seed(9)) + 1.0)
        assert (sample.calls[0].get("fix") == (32, 8)) is ratio_args
    monkeypatch.setitem(comfy._modules, "comfy.sample", None)
    with pytest.raises(RuntimeError, match="needs ComfyUI"):
        comfy.ksample(FakeModel(), 0, 1, 1.0, "euler", "simple", [], [], {"samples": torch.zeros(1)})


class FakeVAE:
    """ComfyUI's VAE.decode for a video latent: batch x frames x H x W x 3. Each pixel is the sample's mean + the frame
    index / 10, so a tile shows which sample and frame it holds."""

    def decode(self, samples):
        b, _, f = samples.shape[:3]
        base = samples.float().mean(dim=(1, 2, 3, 4)).view(b, 1, 1, 1, 1).sigmoid()
        frames = torch.arange(f).view(1, f, 1, 1, 1) / 10
        return (base * 0 + frames + base / 10).expand(b, f, 24, 40, 3).clamp(0, 1)


def test_the_comparison_grid_shows_every_decoded_sample_under_its_name(run, fake_comfy):
    from nodes.comparison_grid import GAP, label_height

    model, latent = FakeModel(), {"samples": torch.zeros(1, 8, 3, 2, 3)}
    out = node().compare(model, run, **_inputs(latent_image=latent), vae=FakeVAE())
    latents, listing, _, grid = out["result"]
    decoded = FakeVAE().decode(latents["samples"])  # 4 entries x 3 frames x 24 x 40
    strip = label_height(24)
    assert grid.shape == (3, strip + 24, 4 * 40 + 3 * GAP, 3)  # one row of 4 tiles, every frame
    for i in range(4):
        left = i * (40 + GAP)
        assert torch.allclose(grid[:, strip:, left:left + 40], decoded[i])  # the tile is that entry's sample
        label = grid[0, :strip, left:left + 40]
        assert label.max() > 0.5 and label.min() == 0  # white text on black
    assert not torch.equal(grid[0, :strip, :40], grid[0, :strip, 40 + GAP:80 + GAP])  # each tile its own name
    preview = out["ui"]["images"][0]
    assert preview["type"] == "temp" and (comfy.temp_dir() / preview["subfolder"] / preview["filename"]).is_file()
    # without a VAE: name cards, and the node says what to connect
    out = node().compare(model, run, **_inputs(latent_image=latent))
    assert out["result"][3].shape[0] == 1 and "connect the model's VAE to 'vae'" in out["ui"]["text"][0]


def test_labelled_grid_wraps_rows_holds_last_frames_and_refuses_mixed_sizes():
    from nodes.comparison_grid import GAP, label_height, labelled_grid

    videos = [torch.full((f, 16, 20, 3), 0.5) for f in (2, 3, 3, 1, 3)]
    grid = labelled_grid(videos, [f"step {i}" for i in range(5)], columns=4)
    tile = label_height(16) + 16
    assert grid.shape == (3, 2 * tile + GAP, 4 * 20 + 3 * GAP, 3)  # 4 + 1 tiles: two rows
    assert torch.equal(grid[2, tile + GAP + label_height(16):, :20], videos[4][2])  # row 2, first tile
    assert torch.equal(grid[2, label_height(16):tile, :20], videos[0][1])  # 2-frame video holds its last frame
    with pytest.raises(ValueError, match=r"'b' is \(1, 8, 20, 3\), not frames x 16 x 20 x 3"):
        labelled_grid([videos[0], torch.zeros(1, 8, 20, 3)], ["a", "b"])
