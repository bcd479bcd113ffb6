"""The ``tiny`` LTX-Video model as ComfyUI single-file checkpoints, for tests against a real ComfyUI.

ComfyUI's LTXV classes take the tiny dims from the file's ``config`` metadata (``transformer`` and ``vae`` entries);
without it they assume the real 2B/13B model. ComfyUI loads only LTX-Video VAEs with 128 latent channels, and
0.3.6x only ones whose first and last layers are 128 wide (:mod:`ltx_train_lib.models.ltxv.comfy_vae`); the tiny VAE
has 8 of each. So a checkpoint that carries the VAE embeds the tiny model in those dims, exactly:

- latent channels 8 -> 128: the transformer's input projection has zero weights for channels 8..127 and its output
  projection predicts 0 for them; the VAE's decoder ignores them (zero weights) and its encoder emits 0 for them
  (statistics mean 0, std 1);
- VAE width 8 -> 128: every internal channel is repeated 16 times (the weights into a layer divided by 16), which
  the per-pixel RMS norm, the SiLU and every convolution carry through unchanged.

Channels 0..7 of a latent behave exactly as the 8-channel tiny model's (same transformer weights, same LoRA keys), and
ComfyUI's own 128-channel empty latent (EmptyLTXVLatentVideo) works with it. Random weights, like every tiny output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltx_train_lib.errors import ConversionError
from ltx_train_lib.models.ltxv.comfy_vae import COMFY_BASE_CHANNELS, COMFY_LATENT_CHANNELS, diffusers_vae_to_comfy
from ltx_train_lib.models.ltxv.tiny import TRANSFORMER_CONFIG, tiny_model_dir

if TYPE_CHECKING:
    from torch import Tensor

# ComfyUI's prefix for the VAE of an LTXV single-file checkpoint (supported_models.LTXV.vae_key_prefix).
VAE_PREFIX = "vae."
_TRANSFORMER_KEYS = ("cross_attention_dim", "caption_channels", "num_attention_heads", "attention_head_dim")


def widen_tiny_vae(
    sd: dict[str, Tensor], config: dict[str, Any], latent_channels: int = COMFY_LATENT_CHANNELS,
    width: int = COMFY_BASE_CHANNELS,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tiny VAE (diffusers layout and config) embedded in ``latent_channels`` latent channels and ``width``-wide
    layers (module docstring); decodes and encodes exactly as the tiny VAE does on the first latent channels.

    Only for the tiny VAE's shape: one width everywhere, 0.9.0 blocks, no timestep conditioning, noise or residual
    upsampling (each of those would need its own rule).
    """
    import torch

    widths = {*config["block_out_channels"], *config["decoder_block_out_channels"]}
    plain = (
        len(widths) == 1
        and set(config["down_block_types"]) == {"LTXVideoDownBlock3D"}
        and not config.get("timestep_conditioning")
        and not any(config.get("decoder_inject_noise") or ())
        and not any(config.get("upsample_residual") or ())
        and set(config.get("upsample_factor") or (1,)) == {1}
    )
    w, lat = next(iter(widths)), int(config["latent_channels"])
    if not plain or width % w or latent_channels < lat:
        raise ConversionError(
            f"widen_tiny_vae: only a VAE of one width (dividing {width}), 0.9.0 blocks and no timestep conditioning, "
            f"noise or residual upsampling can be widened; this one has widths {sorted(widths)}."
        )
    r = width // w

    def rep_out(t: Tensor, groups: int = 1) -> Tensor:  # output channels (c, p) -> (c repeated r times, p)
        return t.unflatten(0, (-1, groups)).repeat_interleave(r, dim=0).flatten(0, 1)

    def rep_in(t: Tensor) -> Tensor:  # a replicated input: split each weight over its r copies
        return t.repeat_interleave(r, dim=1) / r

    def pad(t: Tensor, n: int, dim: int, value: float = 0.0) -> Tensor:
        shape = list(t.shape)
        shape[dim] = n - t.shape[dim]
        return torch.cat([t, t.new_full(shape, value)], dim=dim)

    out: dict[str, Tensor] = {}
    for key, t in sd.items():
        if key in ("latents_mean", "latents_std"):
            out[key] = pad(t, latent_channels, 0, 0.0 if key == "latents_mean" else 1.0)
        elif key.startswith("encoder.conv_in."):  # in: patchified pixels
            out[key] = rep_out(t)
        elif key.startswith("encoder.conv_out."):  # out: the latent means, then one shared log-variance channel
            t = rep_in(t) if t.ndim > 1 else t
            out[key] = torch.cat([pad(t[:lat], latent_channels, 0), t[lat:]])
        elif key.startswith("decoder.conv_in."):  # in: the latent
            out[key] = rep_out(pad(t, latent_channels, 1) if t.ndim > 1 else t)
        elif key.startswith("decoder.conv_out."):  # out: patchified pixels
            out[key] = rep_in(t) if t.ndim > 1 else t
        elif ".upsamplers.0.conv." in key:  # out: (channel, 2x2x2 sub-pixel), channel-major
            out[key] = rep_out(rep_in(t) if t.ndim > 1 else t, groups=8)
        elif key.endswith((".conv.weight", ".conv.bias")):  # a width -> width convolution
            out[key] = rep_out(rep_in(t) if t.ndim > 1 else t)
        else:
            raise ConversionError(f"widen_tiny_vae: no rule for the weight {key!r} {tuple(t.shape)}.")
    n = len(config["block_out_channels"])
    config = {
        **config, "latent_channels": latent_channels, "block_out_channels": (width,) * n,
        "decoder_block_out_channels": (width,) * len(config["decoder_block_out_channels"]),
    }
    return out, config


def tiny_comfy_vae(model_dir: str | Path | None = None) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(ComfyUI state dict without prefix, ComfyUI ``vae`` config) of the tiny VAE in ComfyUI's dims."""
    from safetensors.torch import load_file

    folder = Path(model_dir or tiny_model_dir()) / "vae"
    config = json.loads((folder / "config.json").read_text())
    sd, config = widen_tiny_vae(load_file(str(folder / "diffusion_pytorch_model.safetensors")), config)
    return diffusers_vae_to_comfy(sd, config)


def _widen_transformer(sd: dict, channels: int) -> dict:
    """Zero-pad the ComfyUI-layout tiny transformer's latent projections from 8 to ``channels`` channels."""
    import torch

    out = dict(sd)
    w = sd["model.diffusion_model.patchify_proj.weight"]  # [inner, 8]
    out["model.diffusion_model.patchify_proj.weight"] = torch.cat([w, w.new_zeros(w.shape[0], channels - w.shape[1])], 1)
    w, b = sd["model.diffusion_model.proj_out.weight"], sd["model.diffusion_model.proj_out.bias"]  # [8, inner], [8]
    out["model.diffusion_model.proj_out.weight"] = torch.cat([w, w.new_zeros(channels - w.shape[0], w.shape[1])])
    out["model.diffusion_model.proj_out.bias"] = torch.cat([b, b.new_zeros(channels - b.shape[0])])
    return out


def write_tiny_comfy_checkpoint(
    path: str | Path, *, num_layers: int | None = None, with_vae: bool = False, model_dir: str | Path | None = None
) -> Path:
    """Write the tiny transformer as a ComfyUI checkpoint (CheckpointLoaderSimple / UNETLoader).

    ``num_layers`` keeps only the first blocks (a model on which part of a LoRA patches nothing). ``with_vae`` adds
    the tiny VAE and widens the latent space to 128 channels (module docstring); without it the file has the tiny
    model's 8 channels and no VAE.
    """
    from safetensors.torch import load_file

    from ltx_train_lib import export

    folder = Path(model_dir or tiny_model_dir())
    sd = export.full_diffusers_to_comfy(load_file(str(folder / "transformer" / "diffusion_pytorch_model.safetensors")))
    total = TRANSFORMER_CONFIG["num_layers"]
    layers = total if num_layers is None else num_layers
    sd = {k: v for k, v in sd.items() if not any(f"transformer_blocks.{i}." in k for i in range(layers, total))}
    transformer = {"num_layers": layers, "in_channels": TRANSFORMER_CONFIG["in_channels"]}
    transformer.update((k, TRANSFORMER_CONFIG[k]) for k in _TRANSFORMER_KEYS)
    config = {"transformer": transformer}
    if with_vae:
        sd = _widen_transformer(sd, COMFY_LATENT_CHANNELS)
        transformer["in_channels"] = COMFY_LATENT_CHANNELS
        vae_sd, config["vae"] = tiny_comfy_vae(folder)
        sd.update((VAE_PREFIX + k, v) for k, v in vae_sd.items())
    return export.write_safetensors(sd, path, metadata={"config": json.dumps(config)})


def write_tiny_comfy_vae(path: str | Path, model_dir: str | Path | None = None) -> Path:
    """Write the tiny VAE in ComfyUI's dims (module docstring) as a ComfyUI VAE file: VAELoader on ComfyUI 0.33 (0.3.6x's
    VAELoader drops the file's config and builds the real VAE's dims; use the checkpoint there)."""
    from ltx_train_lib import export

    sd, vae = tiny_comfy_vae(model_dir)
    return export.write_safetensors(sd, path, metadata={"config": json.dumps({"vae": vae})})
