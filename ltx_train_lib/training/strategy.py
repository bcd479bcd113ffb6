"""Training strategies: how a batch becomes the model's input and the loss, chosen by ``conditioning.mode``.

- ``none`` (:class:`StandardStrategy`): flow matching (velocity target) with per-sample first-frame conditioning.
- ``reference_video`` (:class:`ReferenceVideoStrategy`, IC-LoRA): clean reference tokens prepended to the target.

Each strategy owns its config section (a member of the ``conditioning`` tagged union in :mod:`ltx_train_lib.config`),
the dataset it reads (which latents each sample loads, checked before a model loads), its loss, and what validation
needs. The trainer builds one with :func:`build_strategy` and never branches on the mode. The transformer call goes
through the model family (``ModelFamily.predict``), so a family can add strategies of its own (audio-video) by
registering them in ``STRATEGIES``. Algorithms: reference/ltx-video-trainer.md §3.5-3.7.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ltx_train_lib.errors import DatasetError
from ltx_train_lib.models.family import AudioInputs, ForwardInputs
from ltx_train_lib.models.registry import DEFAULT_FAMILY, get_family
from ltx_train_lib.training.sigmas import sample_sigmas

if TYPE_CHECKING:
    from ltx_train_lib.config import ConditioningConfig, DataConfig, FlowMatchingConfig
    from ltx_train_lib.data import PrecomputedDataset
    from ltx_train_lib.models.family import ModelComponents, ModelFamily


@dataclass
class LossOutput:
    loss: torch.Tensor
    sigmas: torch.Tensor
    conditioned: torch.Tensor  # [B] bool: first frame fed clean


@dataclass
class _Noised:
    """One batch noised for flow matching: the model input, its per-token timesteps and the velocity target."""

    x_t: torch.Tensor  # [B, L, C]
    timesteps: torch.Tensor  # [B, L]: sigma * 1000, 0 on conditioning tokens
    target: torch.Tensor  # [B, L, C]: noise - x0
    cond_mask: torch.Tensor  # [B, L] bool: tokens fed clean (first frame), excluded from the loss
    sigmas: torch.Tensor
    conditioned: torch.Tensor


def _noise_batch(x0: torch.Tensor, num_frames: int, tokens_per_frame: int, generator: torch.Generator,
                 sampling_mode: str, sampling_params: dict, first_frame_p: float, family: ModelFamily) -> _Noised:
    """x_t = (1 - sigma) x0 + sigma * noise, with per-sample first-frame conditioning.

    All random draws (sigmas, noise, first-frame coin flips, in that order) come from ``generator``, which is per rank
    and saved in checkpoints, so a resumed run draws exactly what the uninterrupted run would have drawn.
    """
    b, seq_len, _ = x0.shape
    sigmas = sample_sigmas(sampling_mode, sampling_params, b, seq_len, generator, shift_for_tokens=family.sigma_shift)
    noise = torch.randn(x0.shape, generator=generator)
    # First-frame (image-to-video) conditioning, drawn per sample: the first latent frame is fed clean with
    # timestep 0 and excluded from the loss. Single-frame samples (images) are never conditioned.
    coin = torch.rand(b, generator=generator) < first_frame_p
    conditioned = coin & (num_frames > 1)
    cond_mask = torch.zeros(b, seq_len, dtype=torch.bool)
    cond_mask[conditioned, :tokens_per_frame] = True
    s = sigmas.view(b, 1, 1)
    return _Noised(
        x_t=torch.where(cond_mask[..., None], x0, (1 - s) * x0 + s * noise),
        timesteps=torch.where(cond_mask, torch.zeros(()), sigmas[:, None].expand(b, seq_len) * 1000.0),
        target=noise - x0,
        cond_mask=cond_mask,
        sigmas=sigmas,
        conditioned=conditioned,
    )


def _masked_mse(pred: torch.Tensor, noised: _Noised) -> torch.Tensor:
    """MSE over the tokens that are not conditioning, averaged over the whole batch (as the reference)."""
    loss_mask = (~noised.cond_mask).to(pred.device).float()[..., None]
    sq = (pred.float() - noised.target.to(pred.device)) ** 2
    return (sq * loss_mask).sum() / (loss_mask.sum() * sq.shape[-1]).clamp(min=1.0)


@dataclass(frozen=True)
class ModalityPlan:
    """How a run feeds and weights the two streams of an audio-video transformer (``model.modalities``).

    ``video``: "noised" (flow matching on the video) or "clean" (fed at timestep 0 as the condition); ``audio``:
    "noised" (flow matching on the sound) or "noise" (pure noise at sigma 1, what the model sees when it generates
    sound from nothing: the video learns without teaching the audio anything). A video-only family has no audio
    stream whatever the plan says. The loss is ``video_weight * video MSE + audio_weight * audio MSE``.
    """

    video: str
    audio: str
    video_weight: float
    audio_weight: float

    @property
    def needs_audio_latents(self) -> bool:
        return self.audio == "noised"


MODALITY_PLANS: dict[str, ModalityPlan] = {
    "video": ModalityPlan(video="noised", audio="noise", video_weight=1.0, audio_weight=0.0),
    "audio_video": ModalityPlan(video="noised", audio="noised", video_weight=1.0, audio_weight=1.0),
    "audio": ModalityPlan(video="clean", audio="noised", video_weight=0.0, audio_weight=1.0),
}


@dataclass
class _AudioStream:
    inputs: AudioInputs
    target: torch.Tensor | None  # [B, La, Ca] velocity target, None when the audio is not learned


def _audio_stream(plan: ModalityPlan, family: ModelFamily, model, batch: dict, sigmas: torch.Tensor,
                  generator: torch.Generator) -> _AudioStream | None:
    """The audio stream of a batch, drawn after every video draw (so video-only families draw exactly what they
    drew before audio existed): None for a family without one."""
    shape = family.audio_token_shape(model, (batch["num_frames"], batch["height"], batch["width"]), float(batch["fps"]))
    if shape is None:
        return None
    b = sigmas.shape[0]
    context = batch["audio_prompt_embeds"]
    if plan.audio == "noised":
        a0 = batch["audio_latents"].float()
        noise = torch.randn(a0.shape, generator=generator)
        s = sigmas.view(b, 1, 1)
        timesteps = (sigmas[:, None] * 1000.0).expand(b, a0.shape[1]).contiguous()
        return _AudioStream(AudioInputs((1 - s) * a0 + s * noise, timesteps, context), noise - a0)
    tokens = torch.randn((b, *shape), generator=generator)
    return _AudioStream(AudioInputs(tokens, torch.full((b, shape[0]), 1000.0), context), None)


def _audio_mse(pred: torch.Tensor | None, stream: _AudioStream | None) -> torch.Tensor | None:
    if pred is None or stream is None or stream.target is None:
        return None
    return ((pred.float() - stream.target.to(pred.device)) ** 2).mean()


def _combine(plan: ModalityPlan, video_loss: torch.Tensor, audio_loss: torch.Tensor | None) -> torch.Tensor:
    if audio_loss is None or not plan.audio_weight:
        return video_loss  # a video-only family, or sound not learned: exactly the video objective
    if not plan.video_weight:
        return plan.audio_weight * audio_loss
    return plan.video_weight * video_loss + plan.audio_weight * audio_loss


def _forward(family: ModelFamily, model, batch: dict, tokens: torch.Tensor, timesteps: torch.Tensor, device,
             model_dtype, positions: torch.Tensor | None = None, causal: bool = False,
             audio: _AudioStream | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    inputs = ForwardInputs(
        tokens=tokens,
        timesteps=timesteps,
        prompt_embeds=batch["prompt_embeds"],
        prompt_attention_mask=batch["prompt_attention_mask"],
        latent_shape=(batch["num_frames"], batch["height"], batch["width"]),
        fps=float(batch["fps"]),
        positions=positions,
        causal_temporal_positioning=causal,
        audio=audio.inputs if audio is not None else None,
    )
    return family.predict_streams(model, inputs, device=device, dtype=model_dtype)


def flow_matching_loss(
    model: torch.nn.Module,
    batch: dict,
    generator: torch.Generator,
    *,
    sampling_mode: str,
    sampling_params: dict,
    first_frame_p: float,
    device: torch.device,
    model_dtype: torch.dtype,
    family: ModelFamily | None = None,
    causal_temporal_positioning: bool = False,
    modalities: ModalityPlan = MODALITY_PLANS["video"],
) -> LossOutput:
    """The standard objective: the model predicts the velocity noise - x0 of the noised latents (positioned as the
    checkpoint's ``causal_temporal_positioning`` says, see ``ForwardInputs``); with an audio stream (LTX-2) the
    sound is noised with the same per-sample sigma, fed as noise, or the video is fed clean, as ``modalities`` says."""
    family = family or get_family(DEFAULT_FAMILY)
    x0 = batch["latents"].float()  # [B, L, C]
    f, h, w = batch["num_frames"], batch["height"], batch["width"]
    noised = _noise_batch(x0, f, h * w, generator, sampling_mode, sampling_params, first_frame_p, family)
    if modalities.video == "clean":  # sound for the given video: the whole video is the condition
        noised.x_t, noised.timesteps = x0, torch.zeros_like(noised.timesteps)
    audio = _audio_stream(modalities, family, model, batch, noised.sigmas, generator)
    pred, audio_pred = _forward(family, model, batch, noised.x_t, noised.timesteps, device, model_dtype,
                                causal=causal_temporal_positioning, audio=audio)
    loss = _combine(modalities, _masked_mse(pred, noised), _audio_mse(audio_pred, audio))
    return LossOutput(loss=loss, sigmas=noised.sigmas, conditioned=noised.conditioned)


# --------------------------------------------------------------------------------------------- IC-LoRA (reference)


def reference_video_loss(
    model: torch.nn.Module,
    batch: dict,
    generator: torch.Generator,
    *,
    sampling_mode: str,
    sampling_params: dict,
    first_frame_p: float,
    device: torch.device,
    model_dtype: torch.dtype,
    family: ModelFamily | None = None,
    causal_temporal_positioning: bool = False,
    modalities: ModalityPlan = MODALITY_PLANS["video"],
) -> LossOutput:
    """IC-LoRA: the clean reference latents are prepended to the noisy target; only the target is learned.

    The sequence is ``[reference (clean, timestep 0) | target (noised as in flow_matching_loss)]`` with explicit RoPE
    coordinates: reference and target share one (f, h, w) grid, so each reference token sits at the position of the
    target token it conditions. Sigma is drawn for the target's token count (not the doubled sequence), and the loss
    covers the last L (target) tokens only, minus the first frame when it is fed clean. Random draws come from
    ``generator`` in the same order as in ``flow_matching_loss`` (sigmas, noise, first-frame coins).
    """
    x0 = batch["latents"].float()  # [B, L, C]
    ref = batch["ref_latents"].float()  # [B, L, C]
    if ref.shape != x0.shape:
        raise DatasetError(
            f"reference latents of shape {tuple(ref.shape)} do not match their targets' {tuple(x0.shape)} (batch "
            f"samples {batch.get('indices')}); re-run preprocess_dataset.py --reference-column so each reference is "
            "encoded at its target's bucket"
        )
    family = family or get_family(DEFAULT_FAMILY)
    b, seq_len, _ = x0.shape
    f, h, w = batch["num_frames"], batch["height"], batch["width"]
    noised = _noise_batch(x0, f, h * w, generator, sampling_mode, sampling_params, first_frame_p, family)
    coords = family.token_positions(b, (f, h, w), float(batch["fps"]), causal=causal_temporal_positioning)
    audio = _audio_stream(modalities, family, model, batch, noised.sigmas, generator)
    pred, audio_pred = _forward(
        family,
        model,
        batch,
        torch.cat([ref, noised.x_t], dim=1),
        torch.cat([torch.zeros(b, seq_len), noised.timesteps], dim=1),
        device,
        model_dtype,
        positions=torch.cat([coords, coords], dim=2),
        audio=audio,
    )
    pred = pred[:, seq_len:]  # the reference tokens' outputs are never compared with anything
    loss = _combine(modalities, _masked_mse(pred, noised), _audio_mse(audio_pred, audio))
    return LossOutput(loss=loss, sigmas=noised.sigmas, conditioned=noised.conditioned)


def check_reference_latents(dataset: PrecomputedDataset, reference_latents_dir: str) -> None:
    """Before training: every sample has reference latents of its target's shape (the reference trainer only found
    out mid-run, and its default folder name did not match what its preprocessing wrote)."""
    ref_root = dataset.root / reference_latents_dir
    fix = (
        "run preprocess_dataset.py with --reference-column reference_path (it writes reference_latents/), or set "
        "conditioning.reference_latents_dir to the folder under .precomputed that holds them"
    )
    if not ref_root.is_dir():
        raise DatasetError(f"conditioning.reference_latents_dir: '{ref_root}' does not exist; {fix}")
    latents_root = dataset.root / "latents"
    missing: list[str] = []
    for sample in dataset.samples:
        rel = sample.latents_path.relative_to(latents_root)
        ref_path = ref_root / rel
        if not ref_path.is_file():
            missing.append(rel.as_posix())
            continue
        header = torch.load(ref_path, map_location="cpu", weights_only=True)
        try:
            shape = (int(header["num_frames"]), int(header["height"]), int(header["width"]))
        except (KeyError, TypeError) as exc:
            raise DatasetError(
                f"'{ref_path}': not a latents file of the expected schema (missing {exc}); {fix}"
            ) from None
        if shape != sample.shape:
            raise DatasetError(
                f"'{ref_path}': reference latents of shape {shape} (frames, rows, cols) but its target has "
                f"{sample.shape}; {fix} (each reference is encoded at its target's bucket)"
            )
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(
            f"{len(missing)} of {len(dataset.samples)} sample(s) have no reference latents in '{ref_root}': {shown}; "
            f"{fix}"
        )


# --------------------------------------------------------------------------------------------- strategy objects


class TrainingStrategy(ABC):
    """One way of turning precomputed samples into a loss; built from its ``conditioning`` config section."""

    mode: ClassVar[str]
    uses_reference_videos: ClassVar[bool] = False  # validation samples show reference | generated

    def __init__(self, conditioning: ConditioningConfig, flow_matching: FlowMatchingConfig, family: ModelFamily,
                 data: DataConfig | None = None, modalities: str = "auto") -> None:
        self.conditioning = conditioning
        self.flow_matching = flow_matching
        self.family = family
        self.data = data
        # model.modalities; "auto" is resolved against the dataset by resolve_modalities (dataset() does it).
        self.modalities = modalities
        # The loaded checkpoint's position rule (ForwardInputs.causal_temporal_positioning); known once the model
        # has loaded (use_components), after the strategy checked its dataset.
        self.causal_temporal_positioning = False

    @property
    def text_encoding(self) -> str | None:
        """The text encoding the cached conditions must have (``data.text_encoding``; None when no data section was
        given: then any is accepted)."""
        return self.data.text_encoding if self.data is not None else None

    @property
    def modality_plan(self) -> ModalityPlan:
        return MODALITY_PLANS["video" if self.modalities == "auto" else self.modalities]

    def resolve_modalities(self, data_root: str) -> str:
        """``model.modalities`` for this family and dataset: 'auto' becomes audio_video when the family has an audio
        stream and the dataset audio latents, else video; a video-only family refuses the audio modes."""
        from ltx_train_lib.data import has_audio_latents
        from ltx_train_lib.errors import ConfigError

        requested = self.modalities
        if requested not in ("auto", *self.family.modalities):
            raise ConfigError(
                f"model.modalities '{requested}' needs a model with sound; {self.family.display_name} trains "
                f"{', '.join(self.family.modalities)} only: set model.modalities: video (or auto), or use an LTX-2 "
                "model_source"
            )
        if requested == "auto":
            audio = "audio_video" in self.family.modalities and has_audio_latents(data_root)
            requested = "audio_video" if audio else "video"
        self.modalities = requested
        return requested

    def _dataset_kwargs(self, data_root: str) -> dict[str, Any]:
        self.resolve_modalities(data_root)
        return dict(text_encoding=self.text_encoding, with_audio=self.modality_plan.needs_audio_latents)

    def use_components(self, components: ModelComponents) -> None:
        """Take what the loaded checkpoint says about its inputs (today: its causal temporal positioning)."""
        self.causal_temporal_positioning = components.causal_temporal_positioning

    @abstractmethod
    def dataset(self, data_root: str) -> PrecomputedDataset:
        """The dataset this strategy trains on, checked before any model is loaded (its text encoding included)."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: dict, generator: torch.Generator, *, device: torch.device,
             model_dtype: torch.dtype) -> LossOutput:
        """The loss of one batch; every random draw comes from ``generator`` (exact resume depends on it)."""

    def _sampling(self) -> dict[str, Any]:
        return dict(
            sampling_mode=self.flow_matching.timestep_sampling_mode,
            sampling_params=self.flow_matching.timestep_sampling_params,
            first_frame_p=self.conditioning.first_frame_conditioning_p,
            causal_temporal_positioning=self.causal_temporal_positioning,
            modalities=self.modality_plan,
        )


class StandardStrategy(TrainingStrategy):
    mode = "none"

    def dataset(self, data_root: str) -> PrecomputedDataset:
        from ltx_train_lib.data import PrecomputedDataset

        return PrecomputedDataset(data_root, **self._dataset_kwargs(data_root))

    def loss(self, model, batch, generator, *, device, model_dtype) -> LossOutput:
        return flow_matching_loss(model, batch, generator, device=device, model_dtype=model_dtype, family=self.family,
                                  **self._sampling())


class ReferenceVideoStrategy(TrainingStrategy):
    mode = "reference_video"
    uses_reference_videos = True

    def dataset(self, data_root: str) -> PrecomputedDataset:
        from ltx_train_lib.data import PrecomputedDataset

        # IC-LoRA: every sample needs its reference latents, checked before any model loads.
        dataset = PrecomputedDataset(
            data_root, reference_latents_dir=self.conditioning.reference_latents_dir, **self._dataset_kwargs(data_root)
        )
        check_reference_latents(dataset, self.conditioning.reference_latents_dir)
        return dataset

    def loss(self, model, batch, generator, *, device, model_dtype) -> LossOutput:
        return reference_video_loss(model, batch, generator, device=device, model_dtype=model_dtype, family=self.family,
                                    **self._sampling())


STRATEGIES: dict[str, type[TrainingStrategy]] = {s.mode: s for s in (StandardStrategy, ReferenceVideoStrategy)}


def build_strategy(conditioning: ConditioningConfig, flow_matching: FlowMatchingConfig, family: ModelFamily,
                   data: DataConfig | None = None, components: ModelComponents | None = None,
                   modalities: str = "auto") -> TrainingStrategy:
    """The strategy of ``conditioning.mode``; with ``data`` (the config's data section), its dataset also refuses a
    cache whose conditions were made with another text encoding than ``data.text_encoding``; with ``components``,
    it takes the loaded checkpoint's input rules (see ``use_components``)."""
    strategy = STRATEGIES[conditioning.mode](conditioning, flow_matching, family, data, modalities)
    if components is not None:
        strategy.use_components(components)
    return strategy
