"""The LTX-Video VAE converter (diffusers -> ComfyUI layout + VideoVAE config), ltx_train_lib/models/ltxv/comfy_vae.py.

Without ComfyUI: our names fed to diffusers' own single-file converter (the opposite direction) give back the
diffusers state dict, for the three block layouts of the real VAEs (0.9.0, 0.9.1, 0.9.5) in small sizes; the tiny
VAE widened to 128 latent channels decodes like the 8-channel one. With COMFYUI_PATH (and COMFYUI_PYTHON):
ComfyUI's own loaders (VAELoader's and CheckpointLoaderSimple's) build the converted files, and its VAE decodes and
encodes the same pixels / latents as diffusers, on each side's normalisation convention::

    COMFYUI_PATH=/tmp/comfyui33 COMFYUI_PYTHON=/tmp/comfyui33-venv/bin/python pytest -q -s tests/test_comfy_vae.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ltx_train_lib.errors import ConversionError
from ltx_train_lib.models.ltxv import comfy_vae
from ltx_train_lib.models.ltxv.tiny import LATENTS_MEAN, LATENTS_STD, VAE_CONFIG

ROOT = Path(__file__).resolve().parents[1]
COMFYUI = os.environ.get("COMFYUI_PATH")

# Small VAEs in the block layouts of the real releases (widths change between blocks, so every block kind occurs).
V090 = dict(latent_channels=16, block_out_channels=(8, 16, 32, 32), decoder_block_out_channels=(8, 16, 32, 32),
            layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1))
V091 = dict(latent_channels=16, block_out_channels=(8, 16, 32, 32), decoder_block_out_channels=(8, 16, 32),
            layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 2, 1, 1),
            decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(True, True, True, False),
            upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True)
# diffusers' converter recognises 0.9.5 by a 2048-wide encoder output, hence the last width (and no mid block there).
V095 = dict(latent_channels=16, block_out_channels=(8, 16, 32, 32, 2048), down_block_types=("LTXVideo095DownBlock3D",) * 4,
            downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"), spatio_temporal_scaling=(True,) * 4,
            layers_per_block=(1, 1, 1, 1, 0), decoder_block_out_channels=(8, 16, 32), decoder_layers_per_block=(1, 2, 1, 1),
            decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False,) * 4,
            upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True)


def _vae(seed: int = 0, **config):
    from diffusers import AutoencoderKLLTXVideo

    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(**config).eval()
    c = vae.config.latent_channels
    vae.latents_mean.copy_(torch.linspace(-0.5, 0.5, c)[torch.randperm(c)])  # non-trivial statistics
    vae.latents_std.copy_(torch.linspace(0.5, 2.0, c)[torch.randperm(c)])
    for name, p in vae.named_parameters():  # inject_noise scales and time tables start at 0: make them count
        if "per_channel_scale" in name:
            p.data.normal_(0, 0.1)
    return vae


def _tiny_vae():
    vae = _vae(1, **VAE_CONFIG)
    vae.latents_mean.copy_(torch.tensor(LATENTS_MEAN))
    vae.latents_std.copy_(torch.tensor(LATENTS_STD))
    return vae


@pytest.mark.parametrize("config", [V090, V091, V095], ids=["0.9.0", "0.9.1", "0.9.5"])
def test_diffusers_own_converter_undoes_ours(config):
    from diffusers.loaders.single_file_utils import convert_ltx_vae_checkpoint_to_diffusers

    vae = _vae(**config)
    sd = vae.state_dict()
    comfy, vae_config = comfy_vae.diffusers_vae_to_comfy(sd, vae.config, require_loadable=False)
    assert "decoder.up_blocks.0.res_blocks.0.conv1.conv.weight" in comfy  # how ComfyUI recognises an LTXV VAE
    assert comfy["per_channel_statistics.mean-of-means"] is sd["latents_mean"]
    back = convert_ltx_vae_checkpoint_to_diffusers({"vae." + k: v for k, v in comfy.items()})
    assert set(back) == set(sd)
    assert all(back[k] is sd[k] for k in sd)
    assert set(comfy_vae.comfy_vae_to_diffusers(comfy, vae.config)) == set(sd)
    assert vae_config["timestep_conditioning"] == bool(config.get("timestep_conditioning"))
    assert json.loads(json.dumps(vae_config)) == vae_config  # goes into the file's metadata as JSON


def test_tiny_vae_layout_and_inverse():
    """The tiny VAE has no width changes, so its flat list is shorter than a real one's (no fixed table fits)."""
    vae = _tiny_vae()
    sd = vae.state_dict()
    comfy, cfg = comfy_vae.diffusers_vae_to_comfy(sd, vae.config, require_loadable=False)
    assert cfg["encoder_blocks"] == [["res_x", {"num_layers": 1}], ["compress_all", {}]] * 3 + [["res_x", {"num_layers": 1}]] * 2
    assert [b[0] for b in cfg["decoder_blocks"]] == ["res_x", "compress_all"] * 3 + ["res_x", "res_x"]
    assert cfg["decoder_base_channels"] == 8 and cfg["latent_channels"] == 8 and cfg["patch_size"] == 4
    assert "encoder.down_blocks.7.res_blocks.0.conv2.conv.bias" in comfy  # the encoder's mid block: 8th entry
    back = comfy_vae.comfy_vae_to_diffusers(comfy, vae.config)
    assert set(back) == set(sd) and all(back[k] is v for k, v in sd.items())


def test_an_8_channel_vae_is_refused_with_the_reason():
    vae = _tiny_vae()
    with pytest.raises(ConversionError, match="8 latent channels.*128-channel buffers"):
        comfy_vae.diffusers_vae_to_comfy(vae.state_dict(), vae.config)


def test_widths_that_are_not_whole_multiples_are_refused():
    vae = _vae(**{**V090, "block_out_channels": (8, 12, 24, 24)})
    with pytest.raises(ConversionError, match="encoder block 0 .* from 12 to 8 channels.*integer multiplier"):
        comfy_vae.diffusers_vae_to_comfy(vae.state_dict(), vae.config, require_loadable=False)


def test_tiny_vae_in_comfyui_dims_decodes_and_encodes_like_the_tiny_vae():
    """128 latent channels (the extra ones inert) and 128-wide layers (each channel repeated 16 times)."""
    from diffusers import AutoencoderKLLTXVideo

    from ltx_train_lib.models.ltxv.tiny_comfy import widen_tiny_vae

    tiny = _tiny_vae()
    sd, config = widen_tiny_vae(tiny.state_dict(), dict(tiny.config))
    wide = AutoencoderKLLTXVideo(**{k: v for k, v in config.items() if not k.startswith("_")}).eval()
    wide.load_state_dict(sd, strict=True)
    assert wide.decoder.conv_out.conv.weight.shape == (48, 128, 3, 3, 3) and wide.config.latent_channels == 128
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 8, 2, 2, 3, generator=g)
    junk = torch.randn(1, 120, 2, 2, 3, generator=g) * 5
    pixels = torch.rand(1, 3, 9, 64, 96, generator=g) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(wide.decode(torch.cat([z, junk], 1)).sample, tiny.decode(z).sample, atol=2e-5, rtol=0)
        a, b = tiny.encode(pixels).latent_dist, wide.encode(pixels).latent_dist
    torch.testing.assert_close(b.mean[:, :8], a.mean, atol=1e-5, rtol=0)
    assert torch.equal(b.mean[:, 8:], torch.zeros_like(b.mean[:, 8:]))
    torch.testing.assert_close(b.logvar[:, :8], a.logvar, atol=1e-5, rtol=0)
    assert wide.latents_std[8:].eq(1).all() and wide.latents_mean[8:].eq(0).all()
    assert torch.equal(wide.latents_mean[:8], tiny.latents_mean)


def test_widening_refuses_a_vae_it_has_no_rule_for():
    from ltx_train_lib.models.ltxv.tiny_comfy import widen_tiny_vae

    vae = _vae(**V090)
    with pytest.raises(ConversionError, match="widths \\[8, 16, 32\\]"):
        widen_tiny_vae(vae.state_dict(), dict(vae.config))


# ------------------------------------------------------------------------------------------------ ComfyUI's loaders


UNUSED_COMFY_BUFFERS = {f"per_channel_statistics.{n}" for n in ("channel", "mean-of-stds", "mean-of-stds_over_std-of-means")}


def _comfy_python() -> str:
    explicit = os.environ.get("COMFYUI_PYTHON")
    if explicit:
        return explicit
    venv = Path(COMFYUI or ".").parent / "comfyui-venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


def _diffusers_decode(vae, latent: torch.Tensor, timestep: float | None) -> torch.Tensor:
    """ComfyUI's convention: a normalised latent in, [B, F, H, W, 3] in 0..1 out."""
    from ltx_train_lib.models.ltxv.geometry import denormalize_latents

    with torch.no_grad():
        temb = None if timestep is None else torch.full((latent.shape[0],), timestep)
        video = vae.decode(denormalize_latents(latent, vae), temb).sample
    return ((video + 1) / 2).clamp(0, 1).permute(0, 2, 3, 4, 1)


def _diffusers_encode(vae, pixels: torch.Tensor) -> torch.Tensor:
    """[F, H, W, 3] in 0..1 (a ComfyUI IMAGE batch) -> the normalised mean latent [1, C, F', H', W']."""
    from ltx_train_lib.models.ltxv.geometry import normalize_latents

    with torch.no_grad():
        mean = vae.encode(pixels.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist.mode()
    return normalize_latents(mean, vae)


@pytest.mark.comfyui
@pytest.mark.skipif(not COMFYUI, reason="set COMFYUI_PATH to a ComfyUI checkout (and COMFYUI_PYTHON to its Python)")
def test_comfyui_decodes_and_encodes_like_diffusers(tmp_path: Path) -> None:
    from diffusers import AutoencoderKLLTXVideo
    from safetensors.torch import load_file, save_file

    from ltx_train_lib import export
    from ltx_train_lib.models.ltxv.tiny import tiny_model_dir
    from ltx_train_lib.models.ltxv.tiny_comfy import tiny_comfy_vae, write_tiny_comfy_checkpoint

    tiny = AutoencoderKLLTXVideo.from_pretrained(str(tiny_model_dir() / "vae")).eval()
    models = {"v090": (_vae(2, **{**V090, "latent_channels": 128}), None),
              "v095": (_vae(3, **{**V095, "latent_channels": 128, "block_out_channels": (8, 16, 32, 32, 32),
                                  "layers_per_block": (1, 1, 1, 1, 1)}), 0.05)}
    jobs, inputs = [], {}
    g = torch.Generator().manual_seed(0)
    for name, (vae, timestep) in models.items():
        sd, cfg = comfy_vae.diffusers_vae_to_comfy(vae.state_dict(), vae.config)
        if timestep is not None:  # 0.33 reads these from the config (0.3.6x takes them as decode arguments)
            cfg.update(decode_noise_scale=0.0, decode_timestep=timestep)
        export.write_safetensors(sd, tmp_path / f"{name}.safetensors", metadata={"config": json.dumps({"vae": cfg})})
        inputs[name] = torch.randn(1, 128, 2, 2, 3, generator=g)
        jobs.append({"name": name, "loader": "vae", "file": str(tmp_path / f"{name}.safetensors"), "no_decode_noise": timestep is not None})
    # the tiny model's own latents, through the 128-channel embedding (VAELoader and CheckpointLoaderSimple)
    sd, cfg = tiny_comfy_vae()
    export.write_safetensors(sd, tmp_path / "tiny.safetensors", metadata={"config": json.dumps({"vae": cfg})})
    write_tiny_comfy_checkpoint(tmp_path / "tiny_ckpt.safetensors", with_vae=True)
    tiny_latent = torch.randn(2, 8, 2, 2, 3, generator=g)
    inputs["tiny"] = inputs["tiny_ckpt"] = torch.cat([tiny_latent, torch.randn(2, 120, 2, 2, 3, generator=g) * 3], 1)
    jobs += [{"name": "tiny", "loader": "vae", "file": str(tmp_path / "tiny.safetensors")},
             {"name": "tiny_ckpt", "loader": "checkpoint", "file": str(tmp_path / "tiny_ckpt.safetensors")}]
    # the 8-channel tiny VAE as it is: ComfyUI cannot load it (why the embedding exists)
    sd, cfg = comfy_vae.diffusers_vae_to_comfy(tiny.state_dict(), tiny.config, require_loadable=False)
    export.write_safetensors(sd, tmp_path / "tiny8.safetensors", metadata={"config": json.dumps({"vae": cfg})})
    inputs["tiny8"] = tiny_latent
    jobs.append({"name": "tiny8", "loader": "vae", "file": str(tmp_path / "tiny8.safetensors")})
    pixels = torch.rand(9, 64, 96, 3, generator=g)
    for job in jobs:
        job["inputs"] = str(tmp_path / f"{job['name']}_in.safetensors")
        save_file({"latent": inputs[job["name"]], "pixels": pixels}, job["inputs"])
    (tmp_path / "out").mkdir()
    spec = {"comfyui": str(Path(COMFYUI).resolve()), "out_dir": str(tmp_path / "out"), "jobs": jobs}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run(
        [_comfy_python(), str(ROOT / "tests" / "comfyui_vae_decode.py"), str(tmp_path / "spec.json")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert "size mismatch" in report["jobs"]["tiny8"]["load_error"], report["jobs"]["tiny8"]

    expected = {name: (_diffusers_decode(vae, inputs[name], t), _diffusers_encode(vae, pixels)) for name, (vae, t) in models.items()}
    tiny_enc = _diffusers_encode(tiny, pixels)
    expected["tiny"] = expected["tiny_ckpt"] = (
        _diffusers_decode(tiny, tiny_latent, None), torch.cat([tiny_enc, torch.zeros(1, 120, *tiny_enc.shape[2:])], 1))
    lines = [f"ComfyUI {report['comfyui_version']}: max |ComfyUI - diffusers|"]
    for name, (decoded, encoded) in expected.items():
        entry = report["jobs"][name]
        if name in models and not report["reads_base_channels"]:  # their first/last layers are 8 wide, not 128
            assert "size mismatch" in entry.get("load_error", ""), entry
            lines.append(f"  {name}: not loadable here (this ComfyUI builds 128-wide first/last layers)")
            continue
        assert "load_error" not in entry, entry
        # every weight named as ComfyUI names it; 0.3.6x also has three statistics buffers it never reads (Lightricks'
        # files carry them, diffusers drops them, so there is nothing to fill them with)
        assert set(entry["missing"]) <= UNUSED_COMFY_BUFFERS and entry["unexpected"] == [], entry
        out = load_file(str(tmp_path / "out" / f"{name}.safetensors"))
        assert out["decoded"].shape == decoded.shape and out["encoded"].shape == encoded.shape, name
        d, e = (out["decoded"] - decoded).abs().max().item(), (out["encoded"] - encoded).abs().max().item()
        lines.append(f"  {name} ({entry['dtype']}): decode {d:.2e} (pixels 0..1), encode {e:.2e}")
        assert d < 1e-4 and e < 1e-4, lines[-1]
    print("\n" + "\n".join(lines))


def test_tiny_comfy_checkpoint_with_vae_is_the_tiny_model_on_channels_0_to_7(tmp_path: Path):
    """The widened transformer (read back through our ComfyUI -> diffusers conversion) predicts what the tiny one does
    on channels 0..7 whatever channels 8..127 hold, and 0 on those; the file carries both configs and the VAE."""
    from diffusers import LTXVideoTransformer3DModel
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ltx_train_lib import export
    from ltx_train_lib.models.ltxv.tiny import TRANSFORMER_CONFIG, tiny_model_dir
    from ltx_train_lib.models.ltxv.tiny_comfy import write_tiny_comfy_checkpoint

    path = write_tiny_comfy_checkpoint(tmp_path / "ckpt.safetensors", with_vae=True)
    with safe_open(str(path), "pt") as fh:
        config = json.loads(fh.metadata()["config"])
    assert config["transformer"]["in_channels"] == 128 and config["vae"]["latent_channels"] == 128
    sd = load_file(str(path))
    assert sd["vae.per_channel_statistics.std-of-means"].shape == (128,)
    assert torch.equal(sd["vae.per_channel_statistics.mean-of-means"][:8], torch.tensor(LATENTS_MEAN))
    tiny = LTXVideoTransformer3DModel.from_pretrained(str(tiny_model_dir() / "transformer")).eval()
    wide = LTXVideoTransformer3DModel(**{**TRANSFORMER_CONFIG, "in_channels": 128, "out_channels": 128}).eval()
    wide.load_state_dict(export.full_comfy_to_diffusers(sd), strict=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 12, 128, generator=g)
    text = torch.randn(1, 4, TRANSFORMER_CONFIG["caption_channels"], generator=g)
    kw = dict(encoder_hidden_states=text, timestep=torch.tensor([500.0]), encoder_attention_mask=torch.ones(1, 4),
              num_frames=2, height=2, width=3, return_dict=False)
    with torch.no_grad():
        a, b = tiny(x[..., :8], **kw)[0], wide(x, **kw)[0]
    torch.testing.assert_close(b[..., :8], a, atol=1e-5, rtol=0)
    assert torch.equal(b[..., 8:], torch.zeros_like(b[..., 8:]))
