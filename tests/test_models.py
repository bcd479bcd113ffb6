"""Model sources: named versions, folders, single files, Hub ids and the offline tiny builder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ltx_train_lib.errors import ConfigError, ModelLoadError
from ltx_train_lib.models import ltxv
from ltx_train_lib.models.loader import build_random_transformer, load_components
from ltx_train_lib.models.ltxv.tiny import MARKER_FILE, build_tiny_pipeline
from ltx_train_lib.models.registry import MODEL_VERSIONS, resolve_source


def test_named_versions_cover_2b_and_13b_dev_and_distilled() -> None:
    for name in ["LTXV_2B_0.9.0", "LTXV_2B_0.9.1", "LTXV_2B_0.9.5", "LTXV_2B_0.9.6_DEV", "LTXV_2B_0.9.6_DISTILLED",
                 "LTXV_2B_0.9.8_DISTILLED", "LTXV_13B_097_DEV", "LTXV_13B_097_DISTILLED", "LTXV_13B_098_DEV", "LTXV_13B_098_DISTILLED"]:
        assert name in MODEL_VERSIONS
    assert MODEL_VERSIONS["LTXV_13B_098_DISTILLED"].size == "13B" and MODEL_VERSIONS["LTXV_13B_098_DISTILLED"].distilled


def test_resolve_source_kinds(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    f = tmp_path / "ltxv.safetensors"
    f.write_bytes(b"x")
    assert resolve_source("tiny").kind == "tiny"
    assert resolve_source("LTXV_2B_0.9.6_DEV").kind == "version"
    assert resolve_source(str(tmp_path / "folder")).kind == "folder"
    assert resolve_source(str(f)).kind == "single_file"
    assert resolve_source("Lightricks/LTX-Video").kind == "hub"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_source(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ConfigError, match="neither a named version"):
        resolve_source(str(tmp_path / "no" / "such" / "dir"))


def test_tiny_build_is_deterministic_and_labelled(tmp_path: Path) -> None:
    a = build_tiny_pipeline(tmp_path / "a")
    b = build_tiny_pipeline(tmp_path / "b")
    assert (a / MARKER_FILE).read_text().count("RANDOM WEIGHTS") == 1
    for rel in ["transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))


def test_tiny_and_local_folder_load_the_same_way(tiny_model_dir: Path) -> None:
    tiny = load_components("tiny", ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"))
    assert tiny.is_tiny and "random weights" in tiny.label
    folder = load_components(str(tiny_model_dir), ("transformer",))
    assert folder.source.kind == "folder" and not folder.is_tiny
    sd_a, sd_b = tiny.transformer.state_dict(), folder.transformer.state_dict()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    # the VAE keeps the real compression ratios, so bucket rules hold for the tiny model too
    assert tiny.vae.spatial_compression_ratio == ltxv.SPATIAL_COMPRESSION and tiny.vae.temporal_compression_ratio == ltxv.TEMPORAL_COMPRESSION
    video = torch.zeros(1, 3, 9, 64, 96)
    z = tiny.vae.encode(video).latent_dist.mode()
    assert z.shape == (1, 8, 2, 2, 3)
    packed = ltxv.pack_latents(z)
    assert packed.shape == (1, 12, 8) and torch.equal(ltxv.unpack_latents(packed, 2, 2, 3), z)
    # a component folder on its own (e.g. ComfyUI models/vae as a diffusers folder) loads too
    only_vae = load_components("tiny", ("vae",), vae_path=str(tiny_model_dir / "vae"))
    assert only_vae.vae is not None and only_vae.transformer is None


def test_remote_sources_fail_offline_with_a_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"could not load the transformer from 'someone/not-cached-ltx'.*download"):
        load_components("someone/not-cached-ltx", ("transformer",))
    with pytest.raises(ModelLoadError, match=r"could not load LTXV_2B_0.9.6_DEV.*ltxv-2b-0.9.6-dev-04-25.safetensors"):
        load_components("LTXV_2B_0.9.6_DEV", ("transformer",))


def test_single_file_that_is_not_a_transformer(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    f = tmp_path / "not_ltx.safetensors"
    save_file({"foo.weight": torch.zeros(2)}, str(f))
    with pytest.raises(ModelLoadError, match="not an LTX-Video transformer"):
        load_components(str(f), ("transformer",))
    with pytest.raises(ModelLoadError, match="text_encoder_path: '.*nope' does not exist"):
        load_components("tiny", ("text_encoder",), text_encoder_path=str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="not a T5 encoder file"):
        load_components("tiny", ("text_encoder",), text_encoder_path=str(f))


@pytest.mark.parametrize(("size", "params_b"), [("2B", 1.9), ("13B", 13.0)])
def test_real_architectures_build_on_meta(size: str, params_b: float) -> None:
    with torch.device("meta"):
        model = build_random_transformer(size)
    n = sum(p.numel() for p in model.parameters()) / 1e9
    assert abs(n - params_b) / params_b < 0.1, n


def test_shift_and_token_counts_match_the_reference() -> None:
    assert ltxv.token_count(768, 448, 89) == 4032 and ltxv.token_count(512, 512, 49) == 1792
    assert round(ltxv.shift_for_tokens(1792), 3) == 1.225 and round(ltxv.shift_for_tokens(4032), 3) == 2.027
    assert ltxv.to_comfy_module_name("time_embed.linear") == "adaln_single.linear"
    assert ltxv.to_diffusers_module_name("patchify_proj") == "proj_in"


def test_full_finetune_output_loads_back_as_single_file_in_both_layouts(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A full fine-tune's model_weights.safetensors (and its ComfyUI conversion) is a valid single-file model_source."""
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.export import convert_file
    from ltx_train_lib.training.trainer import Trainer
    from tests.conftest import make_precomputed, tiny_config_dict

    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 2)
    cfg = tiny_config_dict(root, tmp_path / "out", model__training_mode="full", lora=None, optimization__steps=1, checkpoints__interval=None)
    trainer = Trainer(config_from_dict(cfg))
    trainer.train()
    trained = {k: v.detach().clone() for k, v in trainer.unwrapped.state_dict().items()}
    weights = tmp_path / "out" / "model_weights.safetensors"
    comfy = convert_file(weights, to="comfy")
    for path in (weights, comfy):
        loaded = load_components(str(path), ("transformer",)).transformer.state_dict()
        assert loaded.keys() == trained.keys()
        assert all(torch.equal(loaded[k], trained[k]) for k in trained), path.name


def test_tiny_vae_normalisation_is_a_non_trivial_per_channel_affine_map(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny VAE's latent statistics are not 0/1, so every test on the tiny model goes through normalisation;
    normalise and denormalise are inverse, and a cached latent is (raw VAE sample - mean_c) / std_c per channel."""
    import json

    from ltx_train_lib.models.ltxv.geometry import denormalize_latents, normalize_latents
    from ltx_train_lib.models.ltxv.tiny import LATENTS_MEAN, LATENTS_STD
    from ltx_train_lib.precompute import model_io, preprocess_dataset
    from ltx_train_lib.synthetic import make_scene_video

    vae = load_components("tiny", ("vae",)).vae
    assert vae.latents_mean.tolist() == pytest.approx(LATENTS_MEAN) and vae.latents_std.tolist() == pytest.approx(LATENTS_STD)
    assert vae.latents_mean.abs().max() >= 0.4 and (vae.latents_std - 1).abs().min() >= 0.1  # no channel is 0/1
    assert vae.config.scaling_factor == 1.0

    z = torch.randn(2, 8, 2, 2, 3, generator=torch.Generator().manual_seed(0)) * 3
    normed = normalize_latents(z, vae)
    for c in range(8):  # by hand, channel by channel
        torch.testing.assert_close(normed[:, c], (z[:, c] - LATENTS_MEAN[c]) / LATENTS_STD[c])
    torch.testing.assert_close(denormalize_latents(normed, vae), z)
    torch.testing.assert_close(normalize_latents(denormalize_latents(z, vae), vae), z)

    # Through the real preprocessing: catch what the VAE encoder saw, redo the raw VAE sample, compare with the cache.
    make_scene_video(tmp_path / "clip.mp4", cuts=(), num_frames=9, fps=24, size=(64, 64), seed=4)
    (tmp_path / "captions.json").write_text(json.dumps([{"caption": "a red square moves", "media_path": "clip.mp4"}]))
    seen = []
    real = model_io.encode_latents

    def spy(vae, pixels, generators, family=None):
        seen.append((vae, pixels.clone(), [g.initial_seed() for g in generators]))
        return real(vae, pixels, generators, family=family)

    monkeypatch.setattr(model_io, "encode_latents", spy)
    result = preprocess_dataset(tmp_path, "64x64x9", model_source="tiny")
    assert result.ok and len(seen) == 1
    enc_vae, pixels, seeds = seen[0]
    assert enc_vae.latents_std.tolist() == pytest.approx(LATENTS_STD)
    param = next(enc_vae.parameters())
    with torch.inference_mode():
        raw = enc_vae.encode(pixels.to(param.dtype)).latent_dist.sample(generator=[torch.Generator().manual_seed(seeds[0])])
    raw = raw[0].double()  # [C, F, H, W] = [8, 2, 2, 2]
    cached = torch.load(tmp_path / ".precomputed" / "latents" / "clip.pt", weights_only=True)
    tokens = cached["latents"].double()  # [F*H*W, C], frame-major, then row, then column
    assert (cached["num_frames"], cached["height"], cached["width"]) == (2, 2, 2)
    expected = torch.empty_like(tokens)
    for f in range(2):
        for h in range(2):
            for w in range(2):
                for c in range(8):
                    expected[(f * 2 + h) * 2 + w, c] = (raw[c, f, h, w] - LATENTS_MEAN[c]) / LATENTS_STD[c]
    # equal up to the bf16 the cache stores; and far from the raw output (the identity map would fail here)
    torch.testing.assert_close(tokens, expected, rtol=2**-8, atol=1e-6)
    raw_tokens = raw.permute(1, 2, 3, 0).reshape(8, 8)
    assert (tokens - raw_tokens).abs().max() > 0.3
