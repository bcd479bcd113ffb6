"""The ``tiny`` LTX-Video model as ComfyUI single-file checkpoints, for tests against a real ComfyUI.

ComfyUI's LTXV classes take the tiny dims from the file's ``config`` metadata (``transformer`` and ``vae`` entries);
without it they assume the real 2B/13B model. The tiny model has 8 latent channels, but ComfyUI loads only LTX-Video
VAEs with 128 (:mod:`ltx_train_lib.models.ltxv.comfy_vae`), so a checkpoint that carries the VAE embeds the tiny model
in a 128-channel latent space: the transformer's input projection has zero weights for channels 8..127 and its
output projection predicts 0 for them; the VAE decodes only channels 0..7 and encodes 0 into the rest. Channels 0..7
behave exactly as the 8-channel tiny model (same weights, same LoRA keys), and ComfyUI's own 128-channel empty
latent (EmptyLTXVLatentVideo) works with it. Random weights, like every tiny output.
"""

from __future__ import annotations

import json
from pathlib import Path

from ltx_train_lib.models.ltxv.comfy_vae import COMFY_LATENT_CHANNELS, diffusers_vae_to_comfy, pad_latent_channels
from ltx_train_lib.models.ltxv.tiny import TRANSFORMER_CONFIG, tiny_model_dir

# ComfyUI's prefix for the VAE of an LTXV single-file checkpoint (supported_models.LTXV.vae_key_prefix).
VAE_PREFIX = "vae."
_TRANSFORMER_KEYS = ("cross_attention_dim", "caption_channels", "num_attention_heads", "attention_head_dim")


def tiny_comfy_vae(model_dir: str | Path | None = None):
    """(ComfyUI state dict without prefix, ComfyUI ``vae`` config) of the tiny VAE widened to 128 latent channels."""
    from safetensors.torch import load_file

    folder = Path(model_dir or tiny_model_dir()) / "vae"
    config = json.loads((folder / "config.json").read_text())
    sd = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    sd, config = pad_latent_channels(sd, config)
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
    """Write the tiny VAE (128 latent channels, module docstring) as a ComfyUI VAE file (VAELoader)."""
    from ltx_train_lib import export

    sd, vae = tiny_comfy_vae(model_dir)
    return export.write_safetensors(sd, path, metadata={"config": json.dumps({"vae": vae})})
