"""An LTX-Video VAE in diffusers' layout (``AutoencoderKLLTXVideo``) -> the layout ComfyUI loads (= Lightricks'
original checkpoints): renamed weights plus the ``vae`` config ComfyUI's ``VideoVAE`` builds its modules from.

ComfyUI detects an LTX-Video VAE by the key ``decoder.up_blocks.0.res_blocks.0.conv1.conv.weight`` and, when the
file's ``config`` metadata has a ``vae`` entry, builds ``VideoVAE(config=...)`` from it instead of assuming the real
0.9.x dims. The original layout numbers every sub-module of the encoder and decoder in one flat list
(``down_blocks.N`` / ``up_blocks.N``: a group of resnets, a down/upsampler, a channel-changing resnet), where diffusers
nests them in blocks. The flat list depends on the model's shape (a block without a channel change has no
channel-changing resnet), so the map is built from the diffusers config rather than from a fixed table; the same
walk gives ComfyUI's block list.

Latent statistics: ComfyUI's ``VideoVAE`` normalises with ``per_channel_statistics`` ((z - mean) / std on encode, the
inverse on decode) and its LTXV latent format adds nothing, so a ComfyUI LATENT is the same tensor as a normalised
latent of this project (``geometry.normalize_latents``, scaling factor 1.0). Its statistics buffers are fixed at 128
channels, so ComfyUI can load only a VAE with 128 latent channels (:func:`comfy_vae_config` says so).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ltx_train_lib.errors import ConversionError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from torch import Tensor

# The latent width ComfyUI's VideoVAE hard-codes for its per_channel_statistics buffers (0.3.6x to 0.33 at least).
COMFY_LATENT_CHANNELS = 128
# The width of the encoder's first and the decoder's last layers in every real LTX-Video VAE. ComfyUI 0.3.6x builds
# them this wide whatever the config says; 0.33 reads encoder_base_channels / decoder_base_channels.
COMFY_BASE_CHANNELS = 128
# Module-level leaf names that differ (diffusers suffix -> ComfyUI suffix).
_LEAF_RENAMES = (
    ("conv_shortcut.conv.weight", "conv_shortcut.weight"),
    ("conv_shortcut.conv.bias", "conv_shortcut.bias"),
    ("norm3.weight", "norm3.norm.weight"),
    ("norm3.bias", "norm3.norm.bias"),
)
# The decoder's own timestep embedding (not a block's).
_TOP_RENAMES = (
    ("decoder.time_embedder.", "decoder.last_time_embedder."),
    ("decoder.scale_shift_table", "decoder.last_scale_shift_table"),
)
_STATS = {"latents_mean": "per_channel_statistics.mean-of-means", "latents_std": "per_channel_statistics.std-of-means"}
_DOWNSAMPLE_BLOCKS = {"spatial": "compress_space_res", "temporal": "compress_time_res", "spatiotemporal": "compress_all_res"}


def _ratio(big: int, small: int, what: str) -> int:
    if small <= 0 or big % small:
        raise ConversionError(
            f"LTX-Video VAE config: {what} changes the width from {big} to {small} channels (or back), not by a whole "
            "factor; ComfyUI's VideoVAE describes every width change as an integer multiplier, so it cannot build "
            "this VAE. Use block widths that are whole multiples of each other."
        )
    return big // small


def _layout(config: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(diffusers module prefix -> ComfyUI module prefix, ComfyUI ``vae`` config) for a diffusers VAE config.

    Follows the channel arithmetic of diffusers' ``LTXVideoEncoder3d`` / ``LTXVideoDecoder3d`` constructors.
    """
    if int(config.get("patch_size_t", 1)) != 1:
        raise ConversionError(
            f"LTX-Video VAE config: patch_size_t={config['patch_size_t']}; ComfyUI's VideoVAE patchifies only in space "
            "(patch_size_t 1), so it cannot load this VAE."
        )
    prefixes: dict[str, str] = {}

    # -- encoder: conv_in, per down block [resnets][downsampler][conv_out], mid block, conv_out ------------------
    widths = tuple(config["block_out_channels"])
    types = tuple(config["down_block_types"])
    layers = tuple(config["layers_per_block"])
    scaling = tuple(config["spatio_temporal_scaling"])
    down_types = tuple(config.get("downsample_type") or ("conv",) * len(types))
    is_095 = types[-1] == "LTXVideo095DownBlock3D"
    n_down = len(widths) - (1 if is_095 else 0)
    enc_blocks: list[list[Any]] = []

    def enc(diffusers_prefix: str | None, name: str, params: dict[str, Any]) -> None:
        if diffusers_prefix is not None:
            prefixes[f"encoder.{diffusers_prefix}"] = f"encoder.down_blocks.{len(enc_blocks)}"
        enc_blocks.append([name, params])

    out_ch = widths[0]
    for i in range(n_down):
        in_ch = out_ch
        out_ch = widths[i + 1] if (is_095 or i + 1 < n_down) else widths[i]
        if layers[i]:
            enc(f"down_blocks.{i}", "res_x", {"num_layers": layers[i]})  # resnets.j -> res_blocks.j (below)
        if types[i] == "LTXVideoDownBlock3D":
            if scaling[i]:
                enc(f"down_blocks.{i}.downsamplers.0", "compress_all", {})
            if in_ch != out_ch:
                enc(f"down_blocks.{i}.conv_out", "res_x_y", {"multiplier": _ratio(out_ch, in_ch, f"encoder block {i}")})
        elif types[i] == "LTXVideo095DownBlock3D":
            if scaling[i] and down_types[i] == "conv":
                enc(f"down_blocks.{i}.downsamplers.0", "compress_all", {})
            elif scaling[i]:
                name = _DOWNSAMPLE_BLOCKS[down_types[i]]
                enc(f"down_blocks.{i}.downsamplers.0", name, {"multiplier": _ratio(out_ch, in_ch, f"encoder block {i}")})
        else:
            raise ConversionError(f"LTX-Video VAE config: unknown down block type {types[i]!r}; expected LTXVideoDownBlock3D or LTXVideo095DownBlock3D.")
    if layers[-1]:
        enc("mid_block", "res_x", {"num_layers": layers[-1]})

    # -- decoder: conv_in, mid block, per up block [conv_in][upsampler][resnets], conv_out (lists reversed) -------
    d_widths = tuple(reversed(config["decoder_block_out_channels"]))
    d_layers = tuple(reversed(config["decoder_layers_per_block"]))
    d_scaling = tuple(reversed(config["decoder_spatio_temporal_scaling"]))
    noise = tuple(reversed(config.get("decoder_inject_noise") or (False,) * len(d_layers)))
    residual = tuple(reversed(config.get("upsample_residual") or (False,) * len(d_widths)))
    factor = tuple(reversed(config.get("upsample_factor") or (1,) * len(d_widths)))
    timestep = bool(config.get("timestep_conditioning", False))
    dec_blocks: list[list[Any]] = []  # in decoding order; ComfyUI's config lists them in encoding order

    def dec(diffusers_prefix: str | None, name: str, params: dict[str, Any]) -> None:
        if diffusers_prefix is not None:
            prefixes[f"decoder.{diffusers_prefix}"] = f"decoder.up_blocks.{len(dec_blocks)}"
        dec_blocks.append([name, params])

    channels = d_widths[0]  # ComfyUI's running width (diffusers' conv_in output)
    if d_layers[0]:
        dec("mid_block", "res_x", {"num_layers": d_layers[0], "inject_noise": bool(noise[0])})
    out_ch = d_widths[0]
    for i in range(len(d_widths)):
        in_ch, out_ch = out_ch // factor[i], d_widths[i] // factor[i]  # as diffusers' LTXVideoDecoder3d computes them
        if in_ch != out_ch:  # diffusers' up block conv_in: a width-changing resnet
            if timestep:
                raise ConversionError(
                    f"LTX-Video VAE config: decoder block {i} changes its width with a timestep-conditioned resnet; "
                    "ComfyUI's VideoVAE has no such block (its width-changing resnets are never conditioned)."
                )
            dec(f"up_blocks.{i}.conv_in", "res_x_y", {"multiplier": _ratio(channels, out_ch, f"decoder block {i}"), "inject_noise": bool(noise[i + 1])})
            channels = out_ch
        if d_scaling[i]:
            dec(f"up_blocks.{i}.upsamplers.0", "compress_all", {"residual": bool(residual[i]), "multiplier": int(factor[i])})
            channels //= int(factor[i])
        if d_layers[i + 1]:
            dec(f"up_blocks.{i}", "res_x", {"num_layers": d_layers[i + 1], "inject_noise": bool(noise[i + 1])})

    vae: dict[str, Any] = {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": int(config["in_channels"]),
        "out_channels": int(config["out_channels"]),
        "latent_channels": int(config["latent_channels"]),
        "encoder_blocks": enc_blocks,
        "decoder_blocks": list(reversed(dec_blocks)),
        "encoder_base_channels": int(widths[0]),
        # ComfyUI derives the decoder's input width from this and the blocks' multipliers.
        "decoder_base_channels": int(channels),
        "patch_size": int(config["patch_size"]),
        "norm_layer": "pixel_norm",  # diffusers' RMSNorm without weights
        "latent_log_var": "uniform",  # diffusers' encoder emits one shared log-variance channel
        "spatial_padding_mode": "zeros",  # diffusers pads with zeros (ComfyUI's decoder default is reflect)
        "causal_decoder": bool(config.get("decoder_causal", False)),
        "timestep_conditioning": timestep,
        "scaling_factor": float(config.get("scaling_factor", 1.0)),
        "use_quant_conv": False,
    }
    if not config.get("encoder_causal", True):
        raise ConversionError("LTX-Video VAE config: encoder_causal=False; ComfyUI's VideoVAE encoder is always causal.")
    return prefixes, vae


def comfy_vae_config(config: Mapping[str, Any], *, require_loadable: bool = True) -> dict[str, Any]:
    """The ``vae`` entry of the ``config`` metadata ComfyUI builds ``VideoVAE`` from, for a diffusers VAE config.

    With ``require_loadable``, refuses a latent width other than 128 (ComfyUI could build the modules but not load
    the latent statistics, so it could neither encode nor decode).
    """
    _, vae = _layout(config)
    widths = {vae["encoder_base_channels"], vae["decoder_base_channels"]}
    if widths != {COMFY_BASE_CHANNELS}:
        logger.warning(
            "LTX-Video VAE with first/last layers %s channels wide: ComfyUI 0.3.6x builds them %d wide and fails to "
            "load it; ComfyUI 0.33 reads the width from the config.", sorted(widths), COMFY_BASE_CHANNELS
        )
    if require_loadable and vae["latent_channels"] != COMFY_LATENT_CHANNELS:
        raise ConversionError(
            f"LTX-Video VAE with {vae['latent_channels']} latent channels: ComfyUI's VideoVAE keeps its latent "
            f"statistics in {COMFY_LATENT_CHANNELS}-channel buffers, so ComfyUI cannot load it (its loader fails on "
            f"the size mismatch). Only a VAE with {COMFY_LATENT_CHANNELS} latent channels can be exported for ComfyUI."
        )
    return vae


def _rename(key: str, prefixes: Mapping[str, str]) -> str:
    if key in _STATS:
        return _STATS[key]
    for src in sorted(prefixes, key=len, reverse=True):  # longest first: down_blocks.0.conv_out before down_blocks.0
        if key.startswith(src + "."):
            rest = key[len(src) + 1 :]
            dst = prefixes[src]
            if rest.startswith("resnets."):
                rest = "res_blocks." + rest[len("resnets.") :]
            key = f"{dst}.{rest}"
            break
    else:
        for src, dst in _TOP_RENAMES:
            if key.startswith(src):
                key = dst + key[len(src) :]
    for src, dst in _LEAF_RENAMES:
        if key.endswith("." + src):
            key = key[: -len(src)] + dst
    return key


def diffusers_vae_to_comfy(
    sd: Mapping[str, Tensor], config: Mapping[str, Any], *, require_loadable: bool = True
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A diffusers ``AutoencoderKLLTXVideo`` state dict and config -> (ComfyUI state dict without prefix, ComfyUI
    ``vae`` config). The tensors are the same objects; only names change (as diffusers' own single-file loader does
    in the other direction)."""
    prefixes, vae = _layout(config)
    if require_loadable:
        comfy_vae_config(config)
    out: dict[str, Tensor] = {}
    for key, tensor in sd.items():
        new = _rename(key, prefixes)
        if new in out:
            raise ConversionError(f"LTX-Video VAE: two weights map to the ComfyUI name {new!r}; the state dict does not match its config.")
        out[new] = tensor
    return out, vae


def comfy_vae_to_diffusers(sd: Mapping[str, Tensor], config: Mapping[str, Any]) -> dict[str, Tensor]:
    """The inverse of :func:`diffusers_vae_to_comfy` for the same diffusers config (names only)."""
    prefixes, _ = _layout(config)
    inverse = {dst: src for src, dst in prefixes.items()}
    stats = {dst: src for src, dst in _STATS.items()}
    out: dict[str, Tensor] = {}
    for key, tensor in sd.items():
        new = stats.get(key)
        if new is None:
            new = key
            for dst in sorted(inverse, key=len, reverse=True):
                if key.startswith(dst + "."):
                    rest = key[len(dst) + 1 :]
                    if rest.startswith("res_blocks."):
                        rest = "resnets." + rest[len("res_blocks.") :]
                    new = f"{inverse[dst]}.{rest}"
                    break
            else:
                for dst, src in _TOP_RENAMES:
                    if key.startswith(src):
                        new = dst + key[len(src) :]
            for diffusers_leaf, comfy_leaf in _LEAF_RENAMES:
                if new.endswith("." + comfy_leaf):
                    new = new[: -len(comfy_leaf)] + diffusers_leaf
        out[new] = tensor
    return out

