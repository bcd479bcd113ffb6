"""The interface every model family implements.

A family answers every model-specific question — which versions exist and where their files are, how components
load, how text and pixels become tensors, what the transformer takes for a training batch, which modules a LoRA
targets, how ComfyUI names them, how to sample for validation, what the model card says. The trainer, precompute,
validation, export and hub code ask the family (found through :mod:`ltx_train_lib.models.registry`) and never name a
model class. A family is a package under ``ltx_train_lib/models/`` (``ltxv/`` today) that subclasses
:class:`ModelFamily` and registers an instance.

This module stays importable without torch: configs validate (and ComfyUI starts) without loading it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class ModelVersion:
    """A named release whose files a family knows how to fetch."""

    name: str
    family: str
    size: str  # selects the transformer architecture within the family ("2B", "13B", ...)
    single_file: str | None = None  # file name in the family's main Hub repository
    hf_repo: str | None = None  # diffusers-layout repository, where one exists
    distilled: bool = False
    main_repo: str | None = None  # the Hub repository holding ``single_file``

    @property
    def single_file_url(self) -> str:
        return f"https://huggingface.co/{self.main_repo}/blob/main/{self.single_file}"


@dataclass(frozen=True)
class ResolvedSource:
    """A ``model_source`` classified: which family, which kind of source, where."""

    kind: str  # "tiny" | "version" | "folder" | "single_file" | "hub"
    location: str  # path, repo id or version name
    version: ModelVersion | None = None
    family: str = "ltxv"

    @property
    def label(self) -> str:
        if self.kind == "tiny":
            return f"{self.location} (random weights: for tests and demos only, not a real model)"
        return self.location


@dataclass(frozen=True)
class LatentGeometry:
    """How a family's VAE compresses video: WxHxF pixels become (F-1)/temporal+1 x H/spatial x W/spatial latents."""

    spatial: int = 32
    temporal: int = 8

    def latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.temporal + 1

    def latent_shape(self, width: int, height: int, num_frames: int) -> tuple[int, int, int]:
        return self.latent_frames(num_frames), height // self.spatial, width // self.spatial

    def token_count(self, width: int, height: int, num_frames: int) -> int:
        f, h, w = self.latent_shape(width, height, num_frames)
        return f * h * w


# ``ModelComponents.extras`` key: whether the loaded checkpoint's transformer offsets the first latent frame in time
# (ComfyUI's ``causal_temporal_positioning``, read from the checkpoint the way ComfyUI's model detection reads it).
# Families that never offset leave it out; readers default to False.
CAUSAL_TEMPORAL_POSITIONING = "causal_temporal_positioning"


@dataclass
class ModelComponents:
    """What a family's loader returns; components not asked for stay None."""

    source: ResolvedSource
    transformer: Any = None
    vae: Any = None
    text_encoder: Any = None
    tokenizer: Any = None
    scheduler: Any = None
    extras: dict[str, Any] = field(default_factory=dict)  # family-specific parts (e.g. an audio VAE)

    @property
    def is_tiny(self) -> bool:
        return self.source.kind == "tiny"

    @property
    def causal_temporal_positioning(self) -> bool:
        """Whether positions of this checkpoint get the causal temporal offset (``ForwardInputs`` field of that
        name); False unless the family's loader found the checkpoint says so."""
        return bool(self.extras.get(CAUSAL_TEMPORAL_POSITIONING, False))

    @property
    def label(self) -> str:
        return self.source.label


@dataclass(frozen=True)
class AudioInputs:
    """The audio stream of one transformer call, for families with joint audio-video transformers (LTX-2).

    ``tokens`` packed audio latents [B, La, Ca], ``timesteps`` per token [B, La] (sigma * 1000), ``prompt_embeds``
    the audio stream's text context [B, T, Da] (the cached ``audio_prompt_embeds``)."""

    tokens: torch.Tensor
    timesteps: torch.Tensor
    prompt_embeds: torch.Tensor


@dataclass(frozen=True)
class ForwardInputs:
    """One transformer call for training or sampling, in the family-neutral form strategies build.

    ``tokens`` are packed latents [B, L, C] (conditioning tokens already prepended by the strategy), ``timesteps``
    per token [B, L] in the model's units (sigma * 1000), ``positions`` optional explicit RoPE positions for every
    token (a strategy that prepends tokens gives them the positions of the tokens they condition).

    ``causal_temporal_positioning``: the checkpoint's flag (``ModelComponents.causal_temporal_positioning``). When
    True the family positions the latent grid as ComfyUI does for such checkpoints (for LTX-Video: latent frame k at
    pixel frame max(0, 8k - 7), i.e. the first latent frame, which holds one pixel frame, at time 0 and every later
    one at its last pixel frame); when False the positions are bit-identical to the family's plain grid. It applies
    to the positions the family builds itself (``positions`` None); explicit ``positions`` are used as given, so a
    strategy that builds them passes the same flag to ``token_positions(..., causal=...)``.
    """

    tokens: torch.Tensor
    timesteps: torch.Tensor
    prompt_embeds: torch.Tensor
    prompt_attention_mask: torch.Tensor
    latent_shape: tuple[int, int, int]  # (F', H', W') of one latent video (not of the prepended sequence)
    fps: float
    positions: torch.Tensor | None = None
    causal_temporal_positioning: bool = False
    audio: AudioInputs | None = None  # the audio stream, for families whose transformer has one


@dataclass
class GeneratedClip:
    """A validation sample with sound: frames uint8 [F, H, W, 3] and a float32 waveform [channels, N] in [-1, 1] at
    ``sample_rate``. Samplers of video-only families return the frames array alone."""

    frames: np.ndarray
    audio: np.ndarray | None = None
    sample_rate: int | None = None


class ModelFamily(ABC):
    """Subclass once per family; every method that needs torch imports it inside."""

    name: ClassVar[str]  # short id written to metadata and cache manifests ("ltxv")
    display_name: ClassVar[str]
    tiny_source: ClassVar[str]  # the offline random-weight model_source of this family ("tiny")
    geometry: ClassVar[LatentGeometry] = LatentGeometry()
    default_lora_targets: ClassVar[tuple[str, ...]]
    # Module name patterns a quantized base keeps in full precision (embeddings, norms, in/out projections).
    quantization_exclusions: ClassVar[tuple[str, ...]] = ()
    fsdp_block_class: ClassVar[str]  # the transformer block class name accelerate's FSDP wraps
    text_max_tokens: ClassVar[int]
    # Audio: the sample rate the family's audio VAE reads (None: a video-only family). Precompute extracts each
    # clip's sound at this rate and encodes it with :meth:`encode_audio`; strategies add an audio stream.
    audio_sample_rate: ClassVar[int | None] = None
    # Which ``model.modalities`` this family trains ("video", "audio_video", "audio").
    modalities: ClassVar[tuple[str, ...]] = ("video",)

    # ---------------------------------------------------------------- sources
    @abstractmethod
    def versions(self) -> Mapping[str, ModelVersion]:
        """The named versions this family knows, by name."""

    @abstractmethod
    def claims(self, source: str) -> bool:
        """Whether ``source`` (a version name, tiny alias, path or repo id) belongs to this family. Cheap: no torch,
        at most a file header read."""

    def check_source(self, source: str) -> str:
        """Validate a claimed source without touching the disk where possible; returns it normalised (a version
        name in its canonical case). Raises ValueError with a fix (config validation reports it)."""
        return source

    @abstractmethod
    def resolve(self, source: str) -> ResolvedSource:
        """Classify a claimed source; raises ConfigError with a fix when it cannot be used."""

    # ---------------------------------------------------------------- loading
    @abstractmethod
    def load_components(
        self,
        source: ResolvedSource,
        components: Sequence[str],
        *,
        dtypes: Mapping[str, Any],
        overrides: Mapping[str, str | None],
    ) -> ModelComponents:
        """Load ``components`` (transformer, vae, text_encoder, tokenizer, scheduler) from ``source``; ``overrides``
        maps a component to a file or folder given in the config (``text_encoder``, ``tokenizer``, ``vae``)."""

    def load_text_encoder_8bit(self, source: ResolvedSource, device: Any, overrides: Mapping[str, str | None]) -> Any:
        """(tokenizer, text encoder quantised to 8-bit) — families without an 8-bit path refuse with a message."""
        from ltx_train_lib.errors import ConfigError

        raise ConfigError(f"load_text_encoder_in_8bit is not supported for {self.display_name}; turn it off")

    @abstractmethod
    def build_random_transformer(self, size: str, dtype: Any = None) -> torch.nn.Module:
        """The real architecture of ``size`` with random weights (benchmarks, memory plans): no download."""

    @abstractmethod
    def cache_identities(self, source: ResolvedSource, *, load_text_encoder_in_8bit: bool) -> tuple[str, str]:
        """Identities (vae_id, text_encoder_id) of the components a source uses, for cache keys: two sources that
        share a VAE share its latents."""

    # ---------------------------------------------------------------- text and latents
    @abstractmethod
    def encode_prompts(
        self, tokenizer: Any, text_encoder: Any, prompts: Sequence[str], *, encoding: str = "comfyui"
    ) -> list[dict[str, torch.Tensor]]:
        """One condition dict per prompt in the cache schema (``prompt_embeds``, ``prompt_attention_mask``).

        ``encoding`` (``PrecomputeConfig.text_encoding``, ``data.text_encoding``): ``comfyui`` gives what ComfyUI's
        text encoder for the family feeds the model at inference; ``reference`` what the reference trainer cached.
        A family where the two are one says so in its docs and accepts both."""

    @abstractmethod
    def encode_latents(self, vae: Any, pixels: torch.Tensor, generators: Sequence[torch.Generator]) -> list[dict[str, Any]]:
        """VAE-encode [B, 3, F, H, W] pixels in [-1, 1] to one latents dict per sample in the cache schema."""

    @abstractmethod
    def decode_latents(self, vae: Any, latents: torch.Tensor, num_frames: int, height: int, width: int) -> np.ndarray:
        """Packed latents of one sample -> uint8 [F, H, W, 3]."""

    # ---------------------------------------------------------------- training
    @abstractmethod
    def predict(self, model: torch.nn.Module, inputs: ForwardInputs, *, device: Any, dtype: Any) -> torch.Tensor:
        """The transformer's output [B, L, C] for ``inputs`` (the velocity prediction for flow matching)."""

    def weights_metadata(self) -> dict[str, str]:
        """Header metadata every trained file of this family carries (e.g. the base model's licence terms)."""
        return {}

    def lora_targets_for(self, modalities: str) -> tuple[str, ...]:
        """The default ``lora.target_modules`` for a run of ``modalities`` (``model.modalities``, resolved)."""
        return self.default_lora_targets

    def predict_streams(self, model: torch.nn.Module, inputs: ForwardInputs, *, device: Any,
                        dtype: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(video prediction [B, L, C], audio prediction [B, La, Ca] or None): one call for both streams. A
        video-only family returns its :meth:`predict` and None."""
        return self.predict(model, inputs, device=device, dtype=dtype), None

    def audio_token_shape(self, model: torch.nn.Module, latent_shape: tuple[int, int, int],
                          fps: float) -> tuple[int, int] | None:
        """(audio tokens, features per token) of the audio stream that goes with a video latent grid at ``fps``;
        None for a video-only family. Strategies that do not train sound feed this many noise tokens."""
        return None

    def encode_audio(self, vae: Any, waveforms: torch.Tensor, duration_s: float) -> list[dict[str, Any]]:
        """[B, 2, N] waveforms at :attr:`audio_sample_rate` covering ``duration_s`` seconds -> one audio-latents dict
        per sample (cache schema of ``.precomputed/audio_latents``)."""
        raise NotImplementedError(f"{self.display_name} has no audio")

    @abstractmethod
    def token_positions(self, batch_size: int, latent_shape: tuple[int, int, int], fps: float, *,
                        causal: bool = False) -> torch.Tensor:
        """The RoPE positions the transformer gives a latent grid by itself, in the form ``ForwardInputs.positions``
        takes, so strategies can place extra tokens at chosen positions. ``causal``: the checkpoint's
        ``causal_temporal_positioning`` (see ``ForwardInputs``); ``predict`` with ``positions=None`` and the same flag
        uses exactly these positions."""

    @abstractmethod
    def sigma_shift(self, num_tokens: int) -> float:
        """The shift of the shifted-logit-normal sigma sampler for a sequence of ``num_tokens`` tokens."""

    @abstractmethod
    def blocks(self, transformer: torch.nn.Module) -> torch.nn.ModuleList:
        """The repeated transformer blocks (per-block compile, checkpointing, swapping)."""

    # ---------------------------------------------------------------- export
    comfy_prefix: ClassVar[str] = "diffusion_model."
    diffusers_prefix: ClassVar[str] = "transformer."
    # Key prefixes (after any "transformer." prefix) that identify a full transformer state dict in each layout.
    diffusers_full_markers: ClassVar[tuple[str, ...]] = ()
    comfy_full_markers: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def to_comfy_path(self, name: str) -> str:
        """diffusers module/parameter path (no prefix) -> ComfyUI path (no prefix)."""

    @abstractmethod
    def to_diffusers_path(self, name: str) -> str:
        """ComfyUI module/parameter path (no prefix) -> diffusers path (no prefix)."""

    @abstractmethod
    def full_model_metadata(self, transformer: torch.nn.Module, components: ModelComponents | None = None) -> dict[str, str]:
        """Header metadata a full-model export carries so it loads back (here and in ComfyUI) as a single file with
        the architecture and position rules of its base; ``components``: the loaded base (its ``extras``), when known."""

    # ---------------------------------------------------------------- memory plan
    def memory_profile(self, source: ResolvedSource, *, vae_path: str | None = None) -> Any:
        """What the memory plan (:mod:`ltx_train_lib.memory`) needs to know of ``source`` without reading weights: a
        :class:`~ltx_train_lib.memory.profile.MemoryProfile` (the transformer built on the meta device, an activation
        model, the text encoder and VAE). The default describes named versions and the tiny model from
        :meth:`build_random_transformer` with a rough activation rule; override it for exact activations and other
        sources (see ``models/ltxv/memory.py``). ``vae_path``: ``model.vae_path`` of the config."""
        from ltx_train_lib.memory.profile import generic_profile

        return generic_profile(self, source)

    # ---------------------------------------------------------------- validation and the model card
    @abstractmethod
    def validation_sampler(self, components: ModelComponents, transformer: torch.nn.Module, device: Any, *,
                           image_to_video: bool = False) -> Any:
        """An object with ``generate(cfg, prompt, negative, generator, *, frame_rate, image=None, reference=None)``
        (uint8 frames [F, H, W, 3]; ``prompt``/``negative`` are condition dicts from :meth:`encode_prompts`, encoded
        once at training start: the sampler has no text encoder; ``reference`` an IC-LoRA reference video) and
        ``close()``. It samples through :meth:`predict` with :meth:`token_positions`, as training does, and keeps the
        VAE on ``device`` only while it encodes or decodes; see :class:`ltx_train_lib.models.ltxv.validation.LtxvSampler`."""

    @abstractmethod
    def card_text(self, facts: Any) -> Any:
        """The family's part of the model card (how to load the base model, ComfyUI instructions, licence) from the
        card's facts (:class:`ltx_train_lib.hub.card.CardFacts`)."""
