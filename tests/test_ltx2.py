"""The LTX-2 family on ``tiny-ltx2``: sources, audio latents, every training mode, exact resume, two processes,
validation clips with sound, sampling as diffusers' LTX2Pipeline does, and ComfyUI LTXAV key names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ltx_train_lib.config import config_from_dict
from ltx_train_lib.errors import ConfigError, ModelLoadError
from ltx_train_lib.events import read_events
from ltx_train_lib.models.ltx2 import comfy_keys
from ltx_train_lib.models.ltx2.geometry import audio_latent_frames, denormalize_audio, unpack_audio
from ltx_train_lib.models.ltx2.loading import _check_text_encoder, infer_transformer_config
from ltx_train_lib.models.ltxv.geometry import denormalize_latents, unpack_latents
from ltx_train_lib.models.registry import family_for_source, get_family, resolve_source
from ltx_train_lib.training import checkpoint as ckpt
from ltx_train_lib.training.trainer import Trainer
from tests.conftest import tiny_config_dict
from tests.test_trainer import _run_cli, _wait_for_event

ROOT = Path(__file__).resolve().parents[1]
FPS = 25.0
BUCKET = "96x64x9"  # 2 x 2 x 3 latents, 9 audio latents (0.36 s at 25 per second)
LORA = {"rank": 4, "alpha": 4}


@pytest.fixture(scope="session")
def tiny_ltx2() -> Path:
    from ltx_train_lib.models.ltx2.tiny import tiny_ltx2_dir

    return tiny_ltx2_dir()


@pytest.fixture(scope="module")
def ltx2_dataset(tmp_path_factory, tiny_ltx2) -> Path:
    """Three 30-frame clips at 25 fps, preprocessed with tiny-ltx2: two with a tone each, one without sound."""
    from ltx_train_lib.precompute import preprocess_dataset
    from ltx_train_lib.synthetic import make_scene_video

    clips = tmp_path_factory.mktemp("ltx2") / "clips"
    clips.mkdir()
    entries = []
    for i in range(3):
        make_scene_video(clips / f"c{i}.mp4", cuts=(), num_frames=30, fps=FPS, size=(96, 64), seed=i, audio=i != 2)
        entries.append({"caption": f"a tone scene number {i}", "media_path": f"c{i}.mp4"})
    (clips / "captions.json").write_text(json.dumps(entries))
    result = preprocess_dataset(clips / "captions.json", BUCKET, model_source="tiny-ltx2")
    assert result.ok, result.summary()
    return clips


def _cfg(data: Path, out: Path, **overrides) -> dict:
    cfg = tiny_config_dict(data, out, model__model_source="tiny-ltx2", optimization__batch_size=1, **overrides)
    cfg["lora"] = dict(LORA)
    return cfg


# ------------------------------------------------------------------------------------------------ sources


def test_every_source_kind_resolves_and_loads_offline(tmp_path: Path, tiny_ltx2: Path) -> None:
    from ltx_train_lib.models.loader import load_components

    family = get_family("ltx2")
    assert family_for_source("tiny-ltx2") is family and family_for_source(str(tiny_ltx2)) is family
    assert family_for_source("tiny").name == "ltxv"  # LTX-Video keeps its sources
    tiny = load_components("tiny-ltx2", components=("transformer",)).transformer
    folder = load_components(str(tiny_ltx2), components=("transformer",)).transformer
    assert resolve_source(str(tiny_ltx2)).kind == "folder"
    reference = tiny.state_dict()
    assert all(torch.equal(reference[k], v) for k, v in folder.state_dict().items())

    # A single file with ComfyUI's LTXAV names (as in models/diffusion_models): recognised from its keys, its
    # architecture read off the tensor shapes, its weights those of the folder.
    single = tmp_path / "ltx2_tiny_comfy.safetensors"
    save_file({"model.diffusion_model." + comfy_keys.to_comfy_path(k): v.contiguous() for k, v in reference.items()},
              str(single))
    assert family_for_source(str(single)) is family and resolve_source(str(single)).kind == "single_file"
    loaded = load_components(str(single), components=("transformer",)).transformer
    assert loaded.config.num_layers == 2 and loaded.config.audio_in_channels == 4
    assert all(torch.equal(reference[k], v) for k, v in loaded.state_dict().items())

    # Named versions are found in any case; a Hub id that is not cached is a clear error naming the download.
    assert resolve_source("ltx-2_19b_dev").version.name == "LTX-2_19B_DEV"
    assert resolve_source("LTX-2.5_22B_DISTILLED").version.size == "22B-2.5"
    with pytest.raises(ModelLoadError, match="hf download"):
        load_components("someone/LTX-2-not-cached", components=("transformer",))
    # The VAE of a single transformer file has to come from somewhere: the message says from where.
    with pytest.raises(ModelLoadError, match="model.vae_path"):
        load_components(str(single), components=("vae",))


def test_stock_gemma4_is_refused_and_the_ltx_finetune_accepted() -> None:
    def model(model_type: str, name: str):
        return SimpleNamespace(config=SimpleNamespace(model_type=model_type, _name_or_path=name))

    with pytest.raises(ModelLoadError, match="gemma4-12b-ltx-v1"):
        _check_text_encoder(model("gemma4", "google/gemma-4-12b-it"), "google/gemma-4-12b-it")
    _check_text_encoder(model("gemma4", "Lightricks/gemma4-12b-ltx-v1"), "x")
    _check_text_encoder(model("gemma3", "google/gemma-3-12b-it"), "x")


def test_release_features_are_read_off_the_weights() -> None:
    """LTX-2.3/2.5 features (gated attention, prompt modulation, no caption projection, FFN without bias,
    keyframe embedding) and the dimensions are recovered from a state dict in ComfyUI's names."""
    from diffusers import LTX2VideoTransformer3DModel

    from ltx_train_lib.models.ltx2.tiny import TRANSFORMER_CONFIG

    flags = dict(gated_attn=True, audio_gated_attn=True, cross_attn_mod=True, audio_cross_attn_mod=True,
                 use_prompt_embeddings=False, ff_bias=False, use_keyframes_abs_pos_embedding=True)
    with torch.device("meta"):
        model = LTX2VideoTransformer3DModel(**dict(TRANSFORMER_CONFIG, num_layers=3, **flags))
    shapes = {"diffusion_model." + comfy_keys.to_comfy_path(k): tuple(v.shape) for k, v in model.state_dict().items()}
    inferred = infer_transformer_config(shapes)
    for key in ("in_channels", "num_attention_heads", "attention_head_dim", "audio_in_channels",
                "audio_num_attention_heads", "audio_attention_head_dim", "num_layers"):
        assert inferred[key] == model.config[key], key
    for key, value in flags.items():
        assert inferred[key] == value, key
    with pytest.raises(ModelLoadError, match="not an LTX-2 transformer"):
        infer_transformer_config({"diffusion_model.patchify_proj.weight": (16, 8)})


# ------------------------------------------------------------------------------------------------ data


def test_preprocessing_writes_audio_latents_and_names_the_clip_without_sound(ltx2_dataset: Path) -> None:
    from ltx_train_lib.audio import read_audio
    from ltx_train_lib.models.loader import load_components
    from ltx_train_lib.precompute import preprocess_dataset

    pre = ltx2_dataset / ".precomputed"
    assert sorted(p.name for p in (pre / "audio_latents").iterdir()) == ["c0.pt", "c1.pt"]
    manifest = json.loads((pre / ".manifest.json").read_text())
    assert manifest["settings"]["family"] == "ltx2" and manifest["settings"]["audio"]["sample_rate"] == 16000
    assert manifest["samples"]["c2.mp4"]["audio"] == {"frames": 0}
    audio = torch.load(pre / "audio_latents" / "c0.pt", weights_only=True)
    assert audio["latents"].shape == (audio_latent_frames(9 / FPS), 4) == (9, 4)
    assert audio["sample_rate"] == 16000 and audio["mel_bins"] == 2 and audio["channels"] == 2
    cond = torch.load(pre / "conditions" / "c0.pt", weights_only=True)
    assert cond["prompt_embeds"].shape == cond["audio_prompt_embeds"].shape == (128, 32)

    # Known answer: the cached latents are the audio VAE's encoding of exactly the span the video latents cover.
    family = get_family("ltx2")
    vae = load_components("tiny-ltx2", components=("vae",)).vae
    clip = read_audio(ltx2_dataset / "c0.mp4", start=0.0, duration=9 / FPS, sample_rate=16000, channels=2)
    direct = family.encode_audio(vae, torch.from_numpy(clip.samples)[None], 9 / FPS)[0]["latents"]
    assert torch.equal(direct, audio["latents"])

    # A second run reuses everything and still names the clip without sound.
    again = preprocess_dataset(ltx2_dataset / "captions.json", BUCKET, model_source="tiny-ltx2")
    assert sorted(again.reused) == ["c0.mp4", "c1.mp4", "c2.mp4"] and not again.audio_computed
    assert again.without_audio == ["c2.mp4"] and "c2.mp4" in again.summary()


# ------------------------------------------------------------------------------------------------ training


def _fixed_loss(trainer_cfg, dataset: Path, lora_file: Path | None, mode: str) -> float:
    """The mean loss over the clips at sigma 0.5 with fixed noise (the same for every call), with ``lora_file``."""
    from ltx_train_lib.data import PrecomputedDataset, collate
    from ltx_train_lib.models.loader import load_components
    from ltx_train_lib.training.strategy import build_strategy

    cfg = config_from_dict(trainer_cfg)
    family = get_family("ltx2")
    strategy = build_strategy(cfg.conditioning, cfg.flow_matching, family, modalities=mode)
    data = PrecomputedDataset(dataset, with_audio=mode != "video")
    model = load_components("tiny-ltx2", components=("transformer",)).transformer
    if lora_file is not None:
        from peft import LoraConfig

        model.add_adapter(LoraConfig(r=8, lora_alpha=8, target_modules=list(family.lora_targets_for(mode))))
        state = {k.removeprefix("transformer."): v for k, v in load_file(str(lora_file)).items()}
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(model, state)
    losses = []
    for i in range(len(data)):
        with torch.no_grad():
            out = strategy.loss(model, collate([data[i]]), torch.Generator().manual_seed(123 + i),
                                device=torch.device("cpu"), model_dtype=torch.float32)
        losses.append(float(out.loss))
    return float(np.mean(losses))


@pytest.mark.parametrize("mode", ["audio_video", "video", "audio"])
def test_every_training_mode_learns_one_clip_and_adapts_its_streams(tmp_path: Path, ltx2_dataset: Path, mode: str) -> None:
    cfg = _cfg(ltx2_dataset, tmp_path / mode, model__modalities=mode, optimization__steps=40,
               optimization__learning_rate=3e-2, checkpoints__interval=None,
               flow_matching__timestep_sampling_mode="uniform",
               flow_matching__timestep_sampling_params={"min_value": 0.5, "max_value": 0.5},
               conditioning={"first_frame_conditioning_p": 0.0})
    cfg["lora"] = {"rank": 8, "alpha": 8}
    result = Trainer(config_from_dict(cfg)).train()
    assert result.status == "done"
    before = _fixed_loss(cfg, ltx2_dataset, None, mode)
    after = _fixed_loss(cfg, ltx2_dataset, tmp_path / mode / "lora_weights.safetensors", mode)
    assert after < 0.85 * before, (before, after)  # a trainer that learns nothing stays at ~1.0

    keys = list(safe_open(str(tmp_path / mode / "lora_weights_comfy.safetensors"), "pt").keys())
    modules = {k.split(".lora_")[0].split("transformer_blocks.0.")[-1] for k in keys if ".transformer_blocks.0." in k}
    audio = {m for m in modules if m.startswith("audio_attn") or m.startswith("audio_ff")}
    cross = {m for m in modules if m.startswith(("audio_to_video", "video_to_audio"))}
    video = modules - audio - cross
    assert bool(audio) == (mode != "video") and bool(cross) == (mode != "video") and bool(video) == (mode != "audio")
    written = yaml.safe_load((tmp_path / mode / "training_config.yaml").read_text())
    assert written["model"]["modalities"] == mode and written["lora"]["target_modules"]


def test_auto_trains_audio_video_and_ltx_video_refuses_sound(tmp_path: Path, ltx2_dataset: Path, precomputed_dataset: Path) -> None:
    cfg = _cfg(ltx2_dataset, tmp_path / "auto", optimization__steps=1, checkpoints__interval=None)
    Trainer(config_from_dict(cfg)).train()
    header = safe_open(str(tmp_path / "auto" / "lora_weights_comfy.safetensors"), "pt").metadata()
    assert header["modalities"] == "audio_video" and header["model_family"] == "ltx2"
    assert header["license"] == "LTX-2.x Community License"
    ltxv = tiny_config_dict(precomputed_dataset, tmp_path / "v", model__modalities="audio_video")
    with pytest.raises(ConfigError, match="model.modalities 'audio_video' needs a model with sound"):
        Trainer(config_from_dict(ltxv)).train()


def test_validation_clips_carry_an_audio_stream_and_the_card_the_licence(tmp_path: Path, ltx2_dataset: Path) -> None:
    """Text-to-video+audio and image-to-video+audio validation clips are mp4s with an AAC track; the model card of
    the LoRA names the LTX-2.x Community License and the ComfyUI steps for LTX-2."""
    from ltx_train_lib.hub.card import render_model_card
    from ltx_train_lib.hub.facts import collect_card_facts
    from ltx_train_lib.synthetic import make_image

    image = make_image(tmp_path / "first.png", size=(96, 64))
    cfg = _cfg(ltx2_dataset, tmp_path / "out", optimization__steps=1, checkpoints__interval=None)
    cfg["validation"] = {"prompts": ["a tone scene", "a second tone"], "images": [str(image), str(image)],
                         "interval": 1, "video_dims": [96, 64, 9], "inference_steps": 2}
    Trainer(config_from_dict(cfg)).train()
    card = render_model_card(collect_card_facts(tmp_path / "out", repo_id="someone/tone-lora"))
    assert "LTX-2.x Community License" in card and "LTXAV" in card and "derivative" in card
    videos = sorted((tmp_path / "out" / "validation_samples").glob("*.mp4"))
    assert not [e for e in read_events(tmp_path / "out" / "events.jsonl") if e["event"] == "validation_failed"]
    assert videos
    with av.open(str(videos[-1])) as container:
        kinds = sorted(s.type for s in container.streams)
        rate = container.streams.audio[0].rate
        duration = container.duration / 1e6
    assert kinds == ["audio", "video"] and rate == 16000 and abs(duration - 9 / FPS) < 0.1


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path: Path, ltx2_dataset: Path) -> None:
    common = dict(optimization__steps=40, checkpoints__interval=10, checkpoints__keep_last_n=2,
                  conditioning={"first_frame_conditioning_p": 0.5}, optimization__scheduler_type="cosine")
    paths = {}
    for name in ("full", "kill"):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(_cfg(ltx2_dataset, tmp_path / name, **common)))
    full = _run_cli(paths["full"])
    victim = _run_cli(paths["kill"])
    _wait_for_event(tmp_path / "kill" / "events.jsonl", lambda e: e["event"] == "step" and e["step"] >= 13, victim)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(30)
    assert full.wait(600) == 0, full.stdout.read()
    latest = ckpt.latest_state_checkpoint(tmp_path / "kill")
    assert latest is not None and latest.step in (10, 20, 30)
    resumed = _run_cli(paths["kill"])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    a = load_file(str(tmp_path / "full" / "lora_weights.safetensors"))
    b = load_file(str(tmp_path / "kill" / "lora_weights.safetensors"))
    assert a.keys() == b.keys() and any("audio_attn1" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


@pytest.mark.slow
def test_two_processes_end_with_identical_weights(tmp_path: Path, ltx2_dataset: Path) -> None:
    cfg = _cfg(ltx2_dataset, tmp_path / "out", optimization__steps=3, checkpoints__interval=None)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_distributed.py"), str(path), "--num_processes", "2",
         "--disable_progress_bars"], capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    done = read_events(tmp_path / "out" / "events.jsonl")[-1]
    assert done["event"] == "done" and len(done["rank_digests"]) == 2
    assert done["rank_digests"][0] == done["rank_digests"][1], "ranks diverged"


# ------------------------------------------------------------------------------------------------ sampling


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_validation_sampler_equals_ltx2pipeline(tiny_ltx2: Path, guidance: float) -> None:
    """Our sampling loop (through family.predict_streams, from cached-style conditions) gives the latents of
    diffusers' LTX2Pipeline (CFG and guidance rescale as it does them; its STG and modality guidance off)."""
    from diffusers import LTX2Pipeline

    from ltx_train_lib.models.loader import load_components

    family = get_family("ltx2")
    comps = load_components("tiny-ltx2", components=("transformer", "vae", "scheduler"))
    pipe = LTX2Pipeline.from_pretrained(str(tiny_ltx2), local_files_only=True)
    states = {}
    for name, text in (("pos", "a red square beeps"), ("neg", "blurry")):
        embeds, mask = pipe._get_gemma_prompt_embeds([text], max_sequence_length=128, device="cpu")
        video, audio, cmask = pipe.connectors(embeds, mask, padding_side="left")
        states[name] = (embeds, mask, {"prompt_embeds": video[0], "audio_prompt_embeds": audio[0],
                                       "prompt_attention_mask": cmask[0].bool()})
    out = pipe(
        prompt_embeds=states["pos"][0], prompt_attention_mask=states["pos"][1], negative_prompt_embeds=states["neg"][0],
        negative_prompt_attention_mask=states["neg"][1], width=96, height=64, num_frames=9, frame_rate=FPS,
        num_inference_steps=3, guidance_scale=guidance, audio_guidance_scale=7.0 if guidance > 1 else 1.0,
        stg_scale=0.0, audio_stg_scale=0.0, modality_scale=1.0, audio_modality_scale=1.0, output_type="latent",
        generator=torch.Generator().manual_seed(5),
    )
    cfg = SimpleNamespace(video_dims=(96, 64, 9), guidance_scale=guidance, inference_steps=3)
    sampler = family.validation_sampler(comps, comps.transformer, "cpu")
    video, audio = sampler.denoise(cfg, states["pos"][2], states["neg"][2], torch.Generator().manual_seed(5),
                                   frame_rate=FPS)
    ours_video = denormalize_latents(unpack_latents(video, 2, 2, 3), comps.vae.video)
    ours_audio = unpack_audio(denormalize_audio(audio, comps.vae.audio), 2)
    assert torch.allclose(ours_video, out.frames, atol=1e-4, rtol=1e-4)
    assert torch.allclose(ours_audio, out.audio, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------------ export


def test_comfy_file_has_ltxav_keys_for_every_target_module(tmp_path: Path, ltx2_dataset: Path) -> None:
    """diffusers' own reader of ComfyUI/original LTX-2 LoRAs maps every key of our ``_comfy`` file back to the
    diffusers file's key: every target module of every block, under ComfyUI's LTXAV names."""
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_ltx2_lora_to_diffusers

    cfg = _cfg(ltx2_dataset, tmp_path / "out", optimization__steps=1, checkpoints__interval=None)
    Trainer(config_from_dict(cfg)).train()
    comfy = load_file(str(tmp_path / "out" / "lora_weights_comfy.safetensors"))
    ours = load_file(str(tmp_path / "out" / "lora_weights.safetensors"))
    assert all(k.startswith("diffusion_model.") for k in comfy)
    back = _convert_non_diffusers_ltx2_lora_to_diffusers(dict(comfy))
    assert set(back) == set(ours)
    targets = get_family("ltx2").lora_targets_for("audio_video")
    present = {t for t in targets if f"diffusion_model.transformer_blocks.1.{t}.lora_A.weight" in comfy}
    assert present == {t for t in targets if "to_gate_logits" not in t}  # tiny-ltx2 is LTX-2.0: no gates
    for name in ("time_embed.linear.weight", "audio_proj_in.weight", "av_cross_attn_video_a2v_gate.linear.weight",
                 "transformer_blocks.0.audio_attn1.norm_q.weight", "prompt_adaln.linear.bias"):
        assert comfy_keys.to_diffusers_path(comfy_keys.to_comfy_path(name)) == name
    assert comfy_keys.to_comfy_path("audio_proj_in.weight") == "audio_patchify_proj.weight"
    assert comfy_keys.to_comfy_path("audio_time_embed.linear.weight") == "audio_adaln_single.linear.weight"
    assert np.isfinite([v.float().abs().max().item() for v in comfy.values()]).all()


@pytest.mark.skipif(
    not (os.environ.get("COMFYUI_PATH")
         and (Path(os.environ["COMFYUI_PATH"]) / "comfy" / "ldm" / "lightricks" / "av_model.py").is_file()),
    reason="set COMFYUI_PATH to a ComfyUI with LTX-2 support (0.33+: comfy/ldm/lightricks/av_model.py) to run",
)
def test_every_key_patches_comfyuis_own_ltxav_model(tmp_path: Path, ltx2_dataset: Path) -> None:
    """ComfyUI's key map and LoRA loader place every key of the ``_comfy`` file on a weight of its LTXAV model (0
    "lora key not loaded"); a key ComfyUI does not know is reported, so the check can fail."""
    cfg = _cfg(ltx2_dataset, tmp_path / "out", optimization__steps=1, checkpoints__interval=None)
    Trainer(config_from_dict(cfg)).train()
    lora = tmp_path / "out" / "lora_weights_comfy.safetensors"
    config = tmp_path / "transformer.json"
    config.write_text(json.dumps(json.loads((_tiny_dir() / "transformer" / "config.json").read_text())))
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)

    def check(path: Path) -> dict:
        res = subprocess.run([python, str(ROOT / "tests" / "comfyui_ltx2_keys.py"), str(path), str(config)],
                             capture_output=True, text=True, timeout=600, env=dict(os.environ))
        assert res.returncode == 0, res.stderr[-3000:]
        return json.loads(res.stdout.strip().splitlines()[-1])

    report = check(lora)
    assert report["model_class"] == "LTXAVModel"
    assert report["not_loaded"] == [] and report["missing_in_model"] == []
    assert report["patched_weights"] * 2 == report["file_keys"] == len(load_file(str(lora)))
    tensors = load_file(str(lora))
    module = next(k for k in tensors if "audio_attn1.to_q.lora_A" in k).split(".lora_A")[0]
    unknown = module.replace("audio_attn1", "audio_attn9")
    for part in (".lora_A.weight", ".lora_B.weight"):
        tensors[unknown + part] = tensors.pop(module + part)
    save_file(tensors, str(tmp_path / "bad.safetensors"))
    assert sorted(check(tmp_path / "bad.safetensors")["not_loaded"]) == [unknown + ".lora_A.weight", unknown + ".lora_B.weight"]


def _tiny_dir() -> Path:
    from ltx_train_lib.models.ltx2.tiny import tiny_ltx2_dir

    return tiny_ltx2_dir()


# ------------------------------------------------------------------------------------------ known answer

# Rank 4: the audio stream's in/out projections are 4 wide (the trainer refuses a larger rank). Measured with our
# sampler: attention + feed-forward alone at rank 8, lr 1e-2 only reach 0.6 (video) / 0.18 (audio) of the base MSE;
# with the in/out projections of both streams at lr 3e-2, 0.18 / 0.04.
MEMORISE_LORA = {"rank": 4, "alpha": 4, "target_modules": ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2",
                                                           "proj_in", "proj_out", "audio_proj_in", "audio_proj_out"]}
MEMORISE_STEPS, MEMORISE_SEED = 25, 0
COMFYUI = os.environ.get("COMFYUI_PATH")
COMFYUI_LTXAV = bool(COMFYUI and (Path(COMFYUI) / "comfy" / "ldm" / "lightricks" / "av_model.py").is_file())
needs_comfyui_ltxav = pytest.mark.skipif(
    not COMFYUI_LTXAV,
    reason="set COMFYUI_PATH to a ComfyUI with LTX-2 support (0.33+: comfy/ldm/lightricks/av_model.py) and "
           "COMFYUI_PYTHON to its Python to run",
)


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double()) ** 2).mean())


@pytest.fixture(scope="module")
def memorised_ltx2(tmp_path_factory) -> SimpleNamespace:
    """One clip with sound (64x32x9 at 25 fps: 2x1x2 video tokens, 9 audio tokens), preprocessed with tiny-ltx2, and
    a full fine-tune (lr 1e-2) and a LoRA (MEMORISE_LORA, lr 3e-2) trained on it alone (600 steps each, cosine
    schedule, no first-frame conditioning)."""
    from ltx_train_lib.precompute import preprocess_dataset
    from ltx_train_lib.synthetic import make_scene_video

    root = tmp_path_factory.mktemp("memorise_ltx2")
    clips = root / "clips"
    clips.mkdir()
    make_scene_video(clips / "c0.mp4", cuts=(), num_frames=9, fps=FPS, size=(64, 32), seed=3, audio=True)
    (clips / "captions.json").write_text(json.dumps([{"caption": "a tone scene", "media_path": "c0.mp4"}]))
    preprocess_dataset(clips / "captions.json", "64x32x9", model_source="tiny-ltx2")

    def train(out: Path, lr: float, **overrides):
        cfg = tiny_config_dict(clips, out, model__model_source="tiny-ltx2", optimization__steps=600,
                               optimization__batch_size=1, optimization__learning_rate=lr,
                               optimization__scheduler_type="cosine", checkpoints__interval=None,
                               conditioning={"first_frame_conditioning_p": 0.0}, **overrides)
        if cfg["model"]["training_mode"] == "full":
            cfg.pop("lora")
        else:
            cfg["lora"] = dict(MEMORISE_LORA)
        trainer = Trainer(config_from_dict(cfg))
        assert trainer.train().status == "done"
        return trainer.unwrapped.float().eval()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster, and much faster on a loaded machine
    try:
        trained = {"full": train(root / "full", 1e-2, model__training_mode="full"), "lora": train(root / "lora", 3e-2)}
    finally:
        torch.set_num_threads(threads)
    pre = clips / ".precomputed"
    cond = torch.load(pre / "conditions" / "c0.pt", weights_only=True)
    return SimpleNamespace(
        root=root, trained=trained, samples={},
        video=torch.load(pre / "latents" / "c0.pt", weights_only=True)["latents"].float(),  # [L, C]
        audio=torch.load(pre / "audio_latents" / "c0.pt", weights_only=True)["latents"].float(),  # [La, Ca]
        cond={k: v.float() if v.is_floating_point() else v for k, v in cond.items()},
    )


@pytest.mark.slow
def test_a_memorised_clip_is_regenerated_with_its_sound(memorised_ltx2: SimpleNamespace) -> None:
    """Known answer: the full fine-tune and the LoRA, sampled from the clip's cached caption condition by our sampler
    (= diffusers' LTX2Pipeline, 25 euler steps, cfg 1), land far closer to the clip's cached video *and* audio
    latents than the untrained model does (measured: full 0.03 and 0.02 of the base MSE; a loss that merely falls
    does not show this). The exported ``model_weights.safetensors``, loaded back as a single-file model_source,
    samples exactly what the trainer's in-memory model samples."""
    from ltx_train_lib.models.loader import load_components

    m = memorised_ltx2
    family = get_family("ltx2")
    comps = load_components("tiny-ltx2", components=("transformer", "vae", "scheduler"))
    spec = SimpleNamespace(video_dims=(64, 32, 9), guidance_scale=1.0, inference_steps=MEMORISE_STEPS)

    def sample(model) -> tuple[torch.Tensor, torch.Tensor]:
        sampler = family.validation_sampler(comps, model, "cpu")
        v, a = sampler.denoise(spec, m.cond, m.cond, torch.Generator().manual_seed(MEMORISE_SEED), frame_rate=FPS)
        return v[0], a[0]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        m.samples["base"] = sample(comps.transformer)
        m.samples["full"] = sample(m.trained["full"])
        m.samples["lora"] = sample(m.trained["lora"])
        exported = load_components(str(m.root / "full" / "model_weights.safetensors"), components=("transformer",))
        file_v, file_a = sample(exported.transformer)
    finally:
        torch.set_num_threads(threads)
    mse = {name: (_mse(v, m.video), _mse(a, m.audio)) for name, (v, a) in m.samples.items()}
    print(f"\nour sampler, MSE to the memorised (video, audio) latents: {mse}")
    (base_v, base_a), (full_v, full_a), (lora_v, lora_a) = mse["base"], mse["full"], mse["lora"]
    assert full_v < 0.2 * base_v and full_a < 0.2 * base_a, mse
    assert lora_v < 0.4 * base_v and lora_a < 0.4 * base_a, mse
    trained_v, trained_a = m.samples["full"]
    assert torch.allclose(file_v, trained_v, atol=1e-5) and torch.allclose(file_a, trained_a, atol=1e-5)
    # The export also carries ComfyUI's config for its architecture (what ComfyUI's loader reads from the header).
    with safe_open(str(m.root / "full" / "model_weights.safetensors"), framework="pt") as fh:
        header = fh.metadata()
    dc = json.loads((_tiny_dir() / "transformer" / "config.json").read_text())
    assert json.loads(header["config"]) == {"transformer": comfy_keys.comfy_transformer_config(dc)}


# ----------------------------------------------------------------------- ComfyUI's own LTX-2 (LTXAV) sampler


def _run_comfy_ltx2(spec: dict, spec_path: Path) -> dict:
    spec_path.write_text(json.dumps(spec))
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    proc = subprocess.run(
        [python, str(ROOT / "tests" / "comfyui_sample_ltx2.py"), str(spec_path)], capture_output=True, text=True,
        timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return json.loads((Path(spec["out_dir"]) / "report.json").read_text())


def _comfy_spec(tmp_path: Path, cond: dict, video_shape, audio_shape, jobs: list[dict], **extra) -> dict:
    """A spec for tests/comfyui_sample_ltx2.py: the tiny transformer's ComfyUI config, the text context as ComfyUI's
    LTXAV takes an already-processed one (the connectors' video then audio outputs, concatenated)."""
    dc = json.loads((_tiny_dir() / "transformer" / "config.json").read_text())
    context = torch.cat([cond["prompt_embeds"], cond["audio_prompt_embeds"]], dim=-1)[None].float()
    save_file({"context": context.contiguous(), "attention_mask": cond["prompt_attention_mask"][None].long().contiguous()},
              str(tmp_path / "cond.safetensors"))
    return {"comfyui": str(Path(COMFYUI).resolve()), "transformer_config": comfy_keys.comfy_transformer_config(dc),
            "condition": str(tmp_path / "cond.safetensors"), "video_shape": list(video_shape),
            "audio_shape": list(audio_shape), "fps": FPS, "steps": MEMORISE_STEPS, "seed": MEMORISE_SEED,
            "out_dir": str(tmp_path / "out"), "jobs": jobs, **extra}


def _comfy_base_file(path: Path) -> Path:
    from ltx_train_lib import export

    sd = load_file(str(_tiny_dir() / "transformer" / "diffusion_pytorch_model.safetensors"))
    save_file({k: v.contiguous() for k, v in export.full_diffusers_to_comfy(sd, get_family("ltx2")).items()}, str(path))
    return path


class _CrossModal:
    """Turns the audio-to-video / video-to-audio cross-attention of every block of a diffusers LTX-2 transformer on
    or off (the blocks' own ``use_a2v_cross_attention``/``use_v2a_cross_attention`` switches), for the forward
    comparison with ComfyUI's ``a2v_cross_attn``/``v2a_cross_attn`` transformer options."""

    def __init__(self, model, a2v: bool, v2a: bool) -> None:
        self.model, self.a2v, self.v2a = model, a2v, v2a

    def __enter__(self):
        for block in self.model.transformer_blocks:
            def forward(*args, _orig=block.forward, **kwargs):
                kwargs.update(use_a2v_cross_attention=self.a2v, use_v2a_cross_attention=self.v2a)
                return _orig(*args, **kwargs)
            block.forward = forward
        return self

    def __exit__(self, *exc) -> None:
        for block in self.model.transformer_blocks:
            del block.forward  # back to the class's method


@needs_comfyui_ltxav
def test_comfyuis_ltxav_forward_equals_our_training_forward(tmp_path: Path) -> None:
    """Same weights (tiny-ltx2 renamed to ComfyUI's names), same noisy latents, sigma and text: ComfyUI's LTXAV
    (``apply_model``, as its samplers call it) and our training forward (``family.predict_streams`` = diffusers'
    LTX2VideoTransformer3DModel with ``use_cross_timestep=True``) give the same velocity for both streams, to float
    rounding, with each cross-modal attention on alone or both off: the key map, the RoPE (causal first frame, token
    middles), both timestep embeddings, the cross-modal modulation and gates (ComfyUI's ``av_ca_timestep_scale_
    multiplier`` = diffusers' 1000) and the text context all agree. With both cross-modal attentions on, ComfyUI
    0.33 differs: its video-to-audio attention normalises the video stream *after* the audio-to-video attention
    has updated it (``BasicAVTransformerBlock.forward``), where diffusers (and ComfyUI's own earlier LTX-2 block)
    normalises it once before both; measured on tiny-ltx2 at sigma 0.6: max |dv| 0.08, |da| 0.30 of ~1.2."""
    from ltx_train_lib.models.family import AudioInputs, ForwardInputs
    from ltx_train_lib.models.loader import load_components

    family = get_family("ltx2")
    transformer = load_components("tiny-ltx2", components=("transformer",)).transformer.float().eval()
    g = torch.Generator().manual_seed(1)
    shape = (2, 1, 2)
    video = torch.randn(1, 8, *shape, generator=g)
    audio = torch.randn(1, 2, 9, 2, generator=g)  # [B, C, L, M]
    tokens = 128
    cond = {"prompt_embeds": torch.randn(tokens, 32, generator=g), "audio_prompt_embeds": torch.randn(tokens, 32, generator=g),
            "prompt_attention_mask": torch.ones(tokens, dtype=torch.bool)}
    sigma = 0.6
    save_file({"video": video, "audio": audio}, str(tmp_path / "noisy.safetensors"))
    modes = {"isolated": (False, False), "a2v": (True, False), "v2a": (False, True), "both": (True, True)}
    jobs = [{"name": name, "model": str(_comfy_base_file(tmp_path / "base.safetensors")), "forward_only": True,
             "transformer_options": {"a2v_cross_attn": a2v, "v2a_cross_attn": v2a}} for name, (a2v, v2a) in modes.items()]
    spec = _comfy_spec(tmp_path, cond, video.shape[1:], audio.shape[1:], jobs,
                       forward={"inputs": str(tmp_path / "noisy.safetensors"), "sigma": sigma})
    _run_comfy_ltx2(spec, tmp_path / "spec.json")

    video_tokens = video.permute(0, 2, 3, 4, 1).reshape(1, -1, 8)
    audio_tokens = audio.transpose(1, 2).flatten(2)
    inputs = ForwardInputs(
        tokens=video_tokens, timesteps=torch.full((1, video_tokens.shape[1]), sigma * 1000),
        prompt_embeds=cond["prompt_embeds"][None], prompt_attention_mask=cond["prompt_attention_mask"][None],
        latent_shape=shape, fps=FPS,
        audio=AudioInputs(tokens=audio_tokens, timesteps=torch.full((1, 9), sigma * 1000),
                          prompt_embeds=cond["audio_prompt_embeds"][None]),
    )
    diffs = {}
    for name, (a2v, v2a) in modes.items():
        with torch.no_grad(), _CrossModal(transformer, a2v, v2a):
            ours_v, ours_a = family.predict_streams(transformer, inputs, device="cpu", dtype=torch.float32)
        comfy = load_file(str(tmp_path / "out" / f"{name}_forward.safetensors"))
        comfy_v = comfy["video"].permute(0, 2, 3, 4, 1).reshape(1, -1, 8)
        comfy_a = comfy["audio"].transpose(1, 2).flatten(2)
        diffs[name] = (float((comfy_v - ours_v).abs().max()), float((comfy_a - ours_a).abs().max()))
    print(f"\nComfyUI LTXAV vs our forward, max |difference| (video, audio) at sigma {sigma}: {diffs}")
    for name in ("isolated", "a2v", "v2a"):
        assert max(diffs[name]) < 1e-4, (name, diffs)
    # The known ComfyUI 0.33 difference (see the docstring): when a ComfyUI fixes it, this fails and says so.
    assert max(diffs["both"]) > 1e-3, f"ComfyUI now agrees with both cross-modal attentions on: {diffs}; tighten this test"


@pytest.mark.slow
@needs_comfyui_ltxav
def test_a_memorised_clip_is_regenerated_with_its_sound_through_comfyui(memorised_ltx2: SimpleNamespace,
                                                                       tmp_path: Path) -> None:
    """Known answer through ComfyUI's own LTX-2: the base model and the full fine-tune as ComfyUI diffusion-model
    files (diffusers names renamed to ComfyUI's), the LoRA as the exported ``lora_weights_comfy.safetensors``,
    loaded by ComfyUI's UNETLoader / LoraLoaderModelOnly code into its LTXAV, sampled with the nodes of ComfyUI's
    LTX-2 text-to-video template (LTXVConditioning, LTXVConcatAVLatent, LTXVScheduler, RandomNoise, CFGGuider at
    cfg 1, euler, SamplerCustomAdvanced, LTXVSeparateAVLatent; tests/comfyui_sample_ltx2.py) from the clip's cached
    text condition: both memorised models land far closer to the clip's video and audio latents than the base."""
    from ltx_train_lib import export
    from ltx_train_lib.models.ltx2.geometry import pack_audio

    m = memorised_ltx2
    base = _comfy_base_file(tmp_path / "base.safetensors")
    # The full fine-tune converted as ConvertComfy does: its header's ComfyUI config builds ComfyUI's model.
    full = export.convert_file(m.root / "full" / "model_weights.safetensors", to="comfy",
                               output_path=tmp_path / "full.safetensors")
    lora = m.root / "lora" / "lora_weights_comfy.safetensors"
    jobs = [{"name": "base", "model": str(base)}, {"name": "lora", "model": str(base), "lora": str(lora)},
            {"name": "full", "model": str(full)}]
    audio_channels = 2  # tiny-ltx2's audio VAE: 2 latent channels x 2 latent mel bins per token
    audio_shape = (audio_channels, m.audio.shape[0], m.audio.shape[1] // audio_channels)
    spec = _comfy_spec(tmp_path, m.cond, (m.video.shape[1], 2, 1, 2), audio_shape, jobs)
    report = _run_comfy_ltx2(spec, tmp_path / "spec.json")
    samples = {}
    for name in ("base", "lora", "full"):
        out = load_file(str(tmp_path / "out" / f"{name}.safetensors"))
        samples[name] = (out["video"][0].permute(1, 2, 3, 0).reshape(-1, out["video"].shape[1]), pack_audio(out["audio"])[0])
    mse = {name: (_mse(v, m.video), _mse(a, m.audio)) for name, (v, a) in samples.items()}
    print(f"\nComfyUI {report['comfyui']} LTXAV, MSE to the memorised (video, audio) latents: {mse}")
    if m.samples:  # our sampler ran first in this session: how far ComfyUI's samples are from ours
        for name, (v, a) in samples.items():
            print(f"  {name}: MSE ComfyUI vs our sample, video {_mse(v, m.samples[name][0]):.3g}, "
                  f"audio {_mse(a, m.samples[name][1]):.3g}")
    lora_modules = {k.rsplit(".lora_", 1)[0] for k in load_file(str(lora)) if ".lora_" in k}
    assert all(job["model_class"] == "LTXAV" for job in report["jobs"].values()), report
    assert report["jobs"]["full"]["config_from"] == "file", report["jobs"]["full"]
    assert report["jobs"]["lora"]["not_loaded"] == [] and report["jobs"]["lora"]["patched"] == len(lora_modules)
    (base_v, base_a), (full_v, full_a), (lora_v, lora_a) = mse["base"], mse["full"], mse["lora"]
    assert full_v < 0.2 * base_v and full_a < 0.2 * base_a, mse
    assert lora_v < 0.4 * base_v and lora_a < 0.4 * base_a, mse


def test_memory_plan_state_bytes_are_exact_for_an_audio_video_lora(tmp_path: Path, ltx2_dataset: Path) -> None:
    """The memory plan of a tiny-ltx2 run (its architecture on the meta device, the family's default audio-video
    LoRA targets) states the bytes of the trainable weights, gradients and optimizer state exactly, as measured
    after one real optimizer step of the trainer's own setup on a real batch."""
    from ltx_train_lib.data import PrecomputedDataset, collate
    from ltx_train_lib.memory.measure import state_bytes
    from ltx_train_lib.memory.plan import make_plan
    from ltx_train_lib.models.loader import load_components
    from ltx_train_lib.training.model_setup import build_optimizer, build_trainable_model
    from ltx_train_lib.training.strategy import build_strategy

    cfg = config_from_dict(_cfg(ltx2_dataset, tmp_path / "out"))
    family = get_family("ltx2")
    transformer = load_components("tiny-ltx2", ("transformer",)).transformer
    model, params = build_trainable_model(cfg, family, transformer, torch.device("cpu"))
    optimizer, _ = build_optimizer(cfg.optimization, params)
    strategy = build_strategy(cfg.conditioning, cfg.flow_matching, family, modalities="audio_video")
    batch = collate([PrecomputedDataset(ltx2_dataset, with_audio=True)[0]])
    strategy.loss(model, batch, torch.Generator().manual_seed(0), device=torch.device("cpu"),
                  model_dtype=torch.float32).loss.backward()
    optimizer.step()
    measured = state_bytes(model, optimizer)
    plan = make_plan(cfg, family, [(2, 2, 3)], device="cpu")
    gpu = next(p for p in plan.phases if p.name.startswith("train") and p.chosen).gpu
    assert gpu["trainable"] == measured["trainable"] > 0
    assert gpu["gradients"] == measured["gradients"] and gpu["optimizer"] == measured["optimizer"]
    assert gpu.get("weights", 0) == measured["frozen"]


def test_ic_lora_trains_on_ltx2_with_the_audio_stream(tmp_path: Path, monkeypatch) -> None:
    """IC-LoRA on LTX-2: references (Canny, compute_condition) encoded beside video and audio latents; training
    prepends the clean reference tokens to the video stream (2 x L video tokens per call) while the audio stream is
    trained alongside, and writes both LoRA files."""
    from ltx_train_lib.cli.compute_condition import main as compute_condition
    from ltx_train_lib.precompute import preprocess_dataset
    from ltx_train_lib.synthetic import make_scene_video

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(2):
        make_scene_video(clips / f"c{i}.mp4", cuts=(), num_frames=9, fps=FPS, size=(96, 64), seed=i, audio=True)
    (clips / "captions.json").write_text(json.dumps([{"caption": f"tone {i}", "media_path": f"c{i}.mp4"} for i in range(2)]))
    assert compute_condition([str(clips / "captions.json")]) == 0
    result = preprocess_dataset(clips / "captions.json", "96x64x9", model_source="tiny-ltx2", reference_column="reference_path")
    assert len(result.references_computed) == 2 and len(result.audio_computed) == 2
    family = get_family("ltx2")
    calls = []
    original = family.predict_streams

    def spy(model, inputs, **kw):
        calls.append((inputs.tokens.shape[1], inputs.audio.tokens.shape[1]))
        return original(model, inputs, **kw)

    monkeypatch.setattr(family, "predict_streams", spy)
    cfg = _cfg(clips, tmp_path / "out", optimization__steps=2, checkpoints__interval=None,
               conditioning={"mode": "reference_video"})
    cfg["validation"] = {"prompts": ["x"], "reference_videos": [str(clips / "c0_reference.mp4")], "interval": None}
    assert Trainer(config_from_dict(cfg)).train().status == "done"
    assert calls == [(2 * 2 * 2 * 3, 9)] * 2  # reference + target video tokens (2x2x3 each), 9 audio tokens
    keys = list(safe_open(str(tmp_path / "out" / "lora_weights_comfy.safetensors"), "pt").keys())
    assert any(".audio_attn1." in k for k in keys)
