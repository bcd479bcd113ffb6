"""The LTX-Video family's memory profile: its architectures on the meta device (no weights read) and calibrated
activation coefficients, for :mod:`ltx_train_lib.memory`.

Activations: an ``LTXVideoTransformerBlock`` keeps, for backward, tensors that scale with a few products of the
step's shape and the architecture (batch B, video tokens L, text tokens T, hidden D, heads H, the adapted modules'
widths and rank). :func:`activation_terms` lists them; :data:`COEFFICIENTS` holds the bytes per unit of each,
fitted by least squares to saved-tensor measurements of random architectures on CPU (``bench/
calibrate_activations.py`` prints this table again). Over that grid the fit's largest error is under 1 %; the plan
states 5 % (tests/test_memory.py checks the tiny model and a mid-size one against the measurement).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltx_train_lib.memory.profile import (
    ComponentProfile,
    LinearActivations,
    MemoryProfile,
    PlanError,
    StepShape,
    meta_module,
)
from ltx_train_lib.models.ltxv.versions import OLD_VAE_VERSIONS

if TYPE_CHECKING:
    import torch

    from ltx_train_lib.models.family import ResolvedSource

CONFIG_DIR = Path(__file__).parent / "configs"
TEXT_STREAM_MODULES = ("attn2.to_k", "attn2.to_v")  # the adapted modules that read the T text tokens, not the video
# What an adapted module's LoRA keeps of its input that the block would not keep anyway (a frozen Linear keeps none
# of its input): q/k/v of self-attention share one input; attention outputs are kept by the attention itself; the
# text states are shared by every block (counted outside).
_INPUT_GROUPS = {"attn1.to_q": "attn1", "attn1.to_k": "attn1", "attn1.to_v": "attn1", "attn1.to_out.0": None,
                 "attn2.to_out.0": None, "attn2.to_k": None, "attn2.to_v": None}
# The LTX-Video 0.9.5+ VAE (every release from 0.9.5 on shares it), as in its diffusers config.json.
VAE_095_CONFIG: dict[str, Any] = dict(
    in_channels=3, out_channels=3, latent_channels=128, block_out_channels=(128, 256, 512, 1024, 2048),
    down_block_types=("LTXVideo095DownBlock3D",) * 4, decoder_block_out_channels=(256, 512, 1024),
    layers_per_block=(4, 6, 6, 2, 2), decoder_layers_per_block=(5, 5, 5, 5),
    spatio_temporal_scaling=(True, True, True, True), decoder_spatio_temporal_scaling=(True, True, True),
    decoder_inject_noise=(False, False, False, False), downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True, patch_size=4,
    patch_size_t=1, resnet_norm_eps=1e-6, scaling_factor=1.0, encoder_causal=True, decoder_causal=False,
    spatial_compression_ratio=32, temporal_compression_ratio=8,
)

# Bytes per unit of each term of LtxvArchitecture.terms, by "<mode>/<fp32|amp>/<part>" (see LinearActivations),
# as printed by bench/calibrate_activations.py (diffusers 0.42.1, torch 2.14, CPU). Readable examples: fp32
# "outside" L 1036 = the 256-wide sinusoidal timestep embedding per token (4 bytes) + 12; a checkpointed block
# keeps its input, NLD 4 (fp32) / 2 (bf16) bytes per token and hidden unit. Largest fit errors (rechecked against
# a grid with a hidden size of 256 as well: at most 0.4 % for blocks, 3.2 % for a full fine-tune's outside part):
# full/amp/block: 20 measurements, largest fit error 0.10%
# full/amp/outside: 20 measurements, largest fit error 0.40%
# full/amp/outside_gc: 20 measurements, largest fit error 0.36%
# full/fp32/block: 20 measurements, largest fit error 0.24%
# full/fp32/outside: 20 measurements, largest fit error 0.00%
# full/fp32/outside_gc: 20 measurements, largest fit error 0.00%
# lora/amp/block: 40 measurements, largest fit error 0.26%
# lora/amp/first: 50 measurements, largest fit error 0.40% (the first block: its input needs no gradient in a LoRA)
# lora/amp/outside: 40 measurements, largest fit error 0.00%
# lora/amp/outside_gc: 40 measurements, largest fit error 0.00%
# lora/fp32/block: 40 measurements, largest fit error 0.33%
# lora/fp32/first: 50 measurements, largest fit error 0.39%
# lora/fp32/outside: 40 measurements, largest fit error 0.00%
# lora/fp32/outside_gc: 40 measurements, largest fit error 0.00%
COEFFICIENTS: dict[str, dict[str, float]] = {
    "full/amp/block": {"L": 13.181, "LD": 113.981, "LH": 9.86, "T": 11.333, "TD": 12.021, "W": 2},
    "full/amp/outside": {"L": 522.352, "LC": 5.927, "LD": 30.371, "NLD": -0.14, "T": 10.711, "TCc": 1.708, "TD": 3.013, "TDnd": 3.013, "Wout": 1.605, "one": -12657},
    "full/amp/outside_gc": {"L": 522.352, "LC": 5.927, "LD": 40.371, "NLD": 3.86, "T": 14.711, "TCc": 1.708, "TD": 3.013, "TDnd": 3.013, "Wout": 1.605, "one": -12657},
    "full/fp32/block": {"L": 6.362, "LD": 147.961, "LH": 11.72, "T": 18.667, "TD": 16.042},
    "full/fp32/outside": {"L": 1036, "LC": 8, "LD": 40, "TCc": 4, "TD": 6, "TDnd": 6, "one": 4},
    "full/fp32/outside_gc": {"L": 1036, "LC": 8, "LD": 64, "NLD": 4, "T": 4, "TCc": 4, "TD": 6, "TDnd": 6, "one": 4},
    "lora/amp/block": {"L": 13.534, "LD": 59.904, "LDdrop": 6.008, "LH": 9.86, "Lin": 2.001, "Lkept": 0.011, "Lr": 1.988, "T": 10.099, "TD": 4.008, "TDdrop": 4.007, "Tin": 4.009, "Tr": 2.105, "W": 1.831},
    "lora/amp/first": {"L": 11.048, "LD": 39.776, "LDdrop": 6.02, "LH": 9.86, "Lin": 5.004, "Lkept": -2.975, "Lr": 1.965, "T": 6.903, "TD": 4.013, "TDdrop": 4.011, "Tin": 4.015, "Tr": 2.299, "W": 1.57},
    "lora/amp/outside": {"L": 8, "LC": 4, "LD": 12, "one": 4},
    "lora/amp/outside_gc": {"L": 8, "LC": 4, "LD": 24, "NLD": 2, "T": 2, "TD": 2, "one": 4},
    "lora/fp32/block": {"L": 6.362, "LD": 91.961, "LDdrop": 8, "LH": 11.72, "Lkept": 4, "Lr": 4, "T": 18.667, "TD": 5.347, "TDdrop": 7.347, "Tin": 3.347, "Tr": 4},
    "lora/fp32/first": {"L": 4.08, "LD": 71.936, "LDdrop": 8, "LH": 11.72, "Lin": 3, "Lkept": 1, "Lr": 4, "T": 16.819, "TD": 5.356, "TDdrop": 7.356, "Tin": 3.356, "Tr": 4},
    "lora/fp32/outside": {"L": 12, "LC": 4, "LD": 16, "TDnd": 4, "one": 4},
    "lora/fp32/outside_gc": {"L": 12, "LC": 4, "LD": 40, "NLD": 4, "T": 4, "TD": 4, "one": 4},
}


# ------------------------------------------------------------------------------------------------ architecture


def transformer_config(source: ResolvedSource) -> dict[str, Any]:
    """The diffusers config of ``source``'s transformer, read without touching its weights: shipped for named
    versions and the tiny model, ``config.json`` of a folder, the safetensors header of a single file."""
    from ltx_train_lib.models.ltxv import tiny
    from ltx_train_lib.models.ltxv.loading import transformer_config_dir

    if source.kind == "tiny":
        return dict(tiny.TRANSFORMER_CONFIG)
    if source.kind == "version":
        assert source.version is not None
        return _config_file(transformer_config_dir(source.version.size) / "config.json")
    if source.kind == "folder":
        folder = Path(source.location)
        for candidate in (folder / "transformer" / "config.json", folder / "config.json"):
            if candidate.is_file():
                return _config_file(candidate)
        raise PlanError(f"model.model_source: '{folder}' has no transformer/config.json; the memory plan reads the "
                        "architecture from it")
    if source.kind == "single_file":
        return _single_file_config(Path(source.location))
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source.location, "transformer/config.json")  # a repository already downloaded
    if isinstance(cached, str):
        return _config_file(Path(cached))
    raise PlanError(
        f"model.model_source: the memory plan cannot read the architecture of the Hub repository '{source.location}' "
        "without downloading it; use a named version (e.g. LTXV_13B_097_DEV) or a local folder for the plan"
    )


def _config_file(path: Path) -> dict[str, Any]:
    config = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _single_file_config(path: Path) -> dict[str, Any]:
    """Our full-model exports carry their config in the header; a release's file is told by its block count."""
    from safetensors import safe_open

    from ltx_train_lib.models.ltxv.loading import TRANSFORMER_CONFIG_METADATA, _single_file_size, transformer_config_dir

    with safe_open(str(path), framework="pt") as fh:  # reads the header only
        metadata = fh.metadata() or {}
        keys = list(fh.keys())
    if TRANSFORMER_CONFIG_METADATA in metadata:
        return {k: v for k, v in json.loads(metadata[TRANSFORMER_CONFIG_METADATA]).items() if not k.startswith("_")}
    return _config_file(transformer_config_dir(_single_file_size(keys)) / "config.json")


def build_meta_transformer(config: dict[str, Any]) -> torch.nn.Module:
    from diffusers import LTXVideoTransformer3DModel

    return meta_module(lambda: LTXVideoTransformer3DModel(**config))


def vae_config(source: ResolvedSource, vae_path: str | None) -> dict[str, Any]:
    from ltx_train_lib.models.ltxv import tiny

    if source.kind == "tiny" and not vae_path:
        return dict(tiny.VAE_CONFIG)
    if vae_path and Path(vae_path, "config.json").is_file():
        return _config_file(Path(vae_path, "config.json"))
    if source.kind == "folder" and not vae_path and (Path(source.location) / "vae" / "config.json").is_file():
        return _config_file(Path(source.location) / "vae" / "config.json")
    if source.kind == "version" and source.version is not None and source.version.name in OLD_VAE_VERSIONS:
        return {}  # diffusers' defaults are the 0.9.0/0.9.1 VAE
    return dict(VAE_095_CONFIG)


def t5_parameters(config: dict[str, Any]) -> int:
    """Parameters of a ``T5EncoderModel`` (shared embedding, per layer: attention q/k/v/o, the gated-GELU or ReLU MLP
    and two norms; relative position buckets in the first layer; the final norm) from its config alone: importing
    transformers to build it would cost more than the whole plan."""
    d, inner = config["d_model"], config["num_heads"] * config["d_kv"]
    gated = str(config.get("feed_forward_proj", "relu")).startswith("gated")
    ff = (3 if gated else 2) * d * config["d_ff"]
    layer = 4 * d * inner + ff + 2 * d
    return config["vocab_size"] * d + config["num_layers"] * layer + config["relative_attention_num_buckets"] * config["num_heads"] + d


def text_encoder_config(source: ResolvedSource) -> dict[str, Any]:
    from ltx_train_lib.models.ltxv import tiny

    if source.kind == "tiny":
        return {**tiny.T5_CONFIG, "vocab_size": tiny_vocab_size()}
    return _config_file(CONFIG_DIR / "t5_xxl" / "config.json")


@lru_cache(maxsize=1)
def tiny_vocab_size() -> int:
    from ltx_train_lib.models.ltxv.tiny import _tokenizer

    return len(_tokenizer())


# ------------------------------------------------------------------------------------------------ activations


@dataclass(frozen=True)
class _LoraWidths:
    """The adapted modules of one block, by the stream they read."""

    video: int = 0  # modules reading the L video tokens
    text: int = 0  # modules reading the T text tokens
    video_in: int = 0  # sum of their in_features
    text_in: int = 0
    weights: int = 0  # sum of (in + out): LoRA numel per unit of rank
    kept_inputs: int = 0  # widths of the video-stream inputs the LoRA makes the block keep (see _INPUT_GROUPS)


class LtxvArchitecture:
    """The dimensions of an LTX-Video transformer that its activations scale with, and the terms of
    :class:`~ltx_train_lib.memory.profile.LinearActivations`."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        import torch

        cfg = transformer.config
        self.transformer = transformer
        self.heads = int(cfg.num_attention_heads)
        self.hidden = int(cfg.num_attention_heads * cfg.attention_head_dim)
        self.in_channels = int(cfg.in_channels)
        self.caption_channels = int(cfg.caption_channels)
        self.num_blocks = len(transformer.transformer_blocks)
        block = transformer.transformer_blocks[0]
        self.block_linear = sum(m.weight.numel() for m in block.modules() if isinstance(m, torch.nn.Linear))
        inside = {id(p) for p in transformer.transformer_blocks.parameters()}
        self.outside_linear = sum(
            m.weight.numel() for m in transformer.modules() if isinstance(m, torch.nn.Linear) and id(m.weight) not in inside
        )
        self._lora_cache: dict[tuple[str, ...], _LoraWidths] = {}

    def lora(self, targets: tuple[str, ...]) -> _LoraWidths:
        if targets not in self._lora_cache:
            from peft import LoraConfig

            from ltx_train_lib.training.model_setup import matched_linears

            matched = matched_linears(self.transformer, LoraConfig(r=1, target_modules=list(targets)))
            prefix = "transformer_blocks.0."
            video = text = video_in = text_in = weights = 0
            groups: dict[str, int] = {}
            for name, (in_f, out_f) in matched.items():
                if not name.startswith(prefix):
                    continue
                local = name[len(prefix):]
                weights += in_f + out_f
                if name.endswith(TEXT_STREAM_MODULES):
                    text, text_in = text + 1, text_in + in_f
                else:
                    video, video_in = video + 1, video_in + in_f
                group = _INPUT_GROUPS.get(local, local)
                if group is not None:
                    groups[group] = in_f
            self._lora_cache[targets] = _LoraWidths(video, text, video_in, text_in, weights, sum(groups.values()))
        return self._lora_cache[targets]

    def terms(self, s: StepShape) -> dict[str, dict[str, float]]:
        b, n_l, n_t, d = s.batch, s.tokens, s.text_tokens, self.hidden
        lora = self.lora(s.lora_targets) if s.training_mode == "lora" else _LoraWidths()
        drop = 1.0 if (s.lora_dropout and s.training_mode == "lora") else 0.0
        # Weights autocast copies (and keeps for backward) every forward: fp32 ones a 16-bit matmul reads.
        if not s.amp:
            cast_block = cast_outside = 0
        elif s.training_mode == "full":
            cast_block, cast_outside = self.block_linear, self.outside_linear
        else:
            cast_block = s.lora_rank * lora.weights + (self.block_linear if s.fp32_base else 0)
            cast_outside = self.outside_linear if s.fp32_base else 0
        shared = {"LD": b * n_l * d, "TD": b * n_t * d, "L": b * n_l, "T": b * n_t,
                  "LC": b * n_l * self.in_channels, "TCc": b * n_t * self.caption_channels}
        return {
            "block": {
                "LD": b * n_l * d, "TD": b * n_t * d, "LH": b * n_l * self.heads, "L": b * n_l, "T": b * n_t,
                "Lr": b * n_l * s.lora_rank * lora.video, "Tr": b * n_t * s.lora_rank * lora.text,
                "LDdrop": drop * b * n_l * lora.video_in, "TDdrop": drop * b * n_t * lora.text_in, "W": cast_block,
                "Lkept": (1.0 - drop) * b * n_l * lora.kept_inputs,
                # Under autocast each LoRA casts its 16-bit input for its own fp32 weights: one copy per module.
                "Lin": (1.0 - drop) * b * n_l * lora.video_in, "Tin": (1.0 - drop) * b * n_t * lora.text_in,
            },
            "outside": {**shared, "TDnd": (1.0 - drop) * b * n_t * d, "NLD": self.num_blocks * b * n_l * d,
                        "Wout": cast_outside, "one": 1.0},
            "sampling": {**shared, "one": 1.0},
        }


# ------------------------------------------------------------------------------------------------ the profile


def memory_profile(source: ResolvedSource, *, vae_path: str | None = None, text_tokens: int = 256) -> MemoryProfile:
    """The plan's view of an LTX-Video source (transformer, T5, VAE), read from configs only."""
    config = transformer_config(source)
    transformer = build_meta_transformer(config)
    arch = LtxvArchitecture(transformer)
    size = source.version.size if source.version is not None else ("tiny" if source.kind == "tiny" else "custom")
    vae_cfg = vae_config(source, vae_path)
    return MemoryProfile(
        transformer=transformer,
        activations=LinearActivations(arch.num_blocks, arch.terms, COEFFICIENTS, tolerance=0.05),
        text_tokens=text_tokens,
        architecture=f"LTX-Video {size}: {arch.num_blocks} blocks, hidden {arch.hidden}",
        text_encoder=ComponentProfile("T5 text encoder", t5_parameters(text_encoder_config(source))),
        vae=ComponentProfile("VAE", _vae_parameters(json.dumps(vae_cfg, sort_keys=True)),
                             decode_bytes=lambda w, h, f, nbytes: vae_decode_bytes(vae_cfg, w, h, f, nbytes)),
    )


@lru_cache(maxsize=8)
def _meta_vae(config_json: str):
    import torch
    from diffusers import AutoencoderKLLTXVideo

    vae = meta_module(lambda: AutoencoderKLLTXVideo(**json.loads(config_json)))
    vae.use_framewise_decoding = False  # as the validation sampler decodes
    vae.requires_grad_(False)
    return torch.nn.Module.to(vae, torch.bfloat16)  # not diffusers' to(), which warns about fp32 modules


def _vae_parameters(config_json: str) -> int:
    return sum(p.numel() for p in _meta_vae(config_json).parameters())


def vae_decode_bytes(config: dict[str, Any], width: int, height: int, frames: int, nbytes: int = 2) -> int:
    """Peak bytes of the tensors one decode of a ``width x height x frames`` video holds at once, traced on the meta
    device (exact for what the decoder allocates as tensors; convolution workspaces are not seen)."""
    import torch

    from ltx_train_lib.memory.measure import LiveTensors
    from ltx_train_lib.models.ltxv.geometry import SPATIAL_COMPRESSION, latent_frames

    vae = _meta_vae(json.dumps(config, sort_keys=True))
    dtype = {2: torch.bfloat16, 4: torch.float32}.get(nbytes, torch.bfloat16)
    vae = torch.nn.Module.to(vae, dtype)
    channels = int(vae.config.latent_channels)
    latents = torch.empty(1, channels, latent_frames(frames), height // SPATIAL_COMPRESSION, width // SPATIAL_COMPRESSION,
                          device="meta", dtype=dtype)
    kwargs = {"temb": torch.zeros(1, device="meta", dtype=dtype)} if vae.config.timestep_conditioning else {}
    live = LiveTensors()
    with torch.no_grad(), live:
        vae.decode(latents, return_dict=False, **kwargs)
    return live.peak


def random_batch(transformer: torch.nn.Module, latent_shape: tuple[int, int, int], batch_size: int, text_tokens: int,
                 *, seed: int = 0) -> dict[str, Any]:
    """A training batch of random latents and caption embeddings in the trainer's form (calibration, tests)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    f, h, w = latent_shape
    mask = torch.zeros(batch_size, text_tokens, dtype=torch.bool)
    mask[:, : max(1, text_tokens // 3)] = True
    return {
        "latents": torch.randn(batch_size, f * h * w, transformer.config.in_channels, generator=g),
        "prompt_embeds": torch.randn(batch_size, text_tokens, transformer.config.caption_channels, generator=g),
        "prompt_attention_mask": mask,
        "num_frames": f, "height": h, "width": w, "fps": 24.0,
    }
