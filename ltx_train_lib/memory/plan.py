"""The memory plan: peak GPU memory and system RAM of a training run, phase by phase, before anything is loaded.

Phases, in the order the trainer goes through them:

- ``encode prompts``: the transformer is loaded into RAM, the text encoder encodes the validation prompts on the GPU
  once and is freed (only when validation is on);
- ``quantize``: torchao (or optimum-quanto) quantizes the frozen base in RAM (only with ``acceleration.quantization``);
- ``train WxHxF`` for every resolution bucket of the dataset, as configured and with the other gradient
  checkpointing setting (marked as not chosen): base weights, trainable parameters, gradients, optimizer state and
  the activations' peak (or the optimizer step's temporaries, whichever is larger);
- ``validation sampling`` and ``validation decode`` (when validation is on): the training state stays on the GPU,
  the denoising forwards' tensors, then the VAE and its decode.

Byte counts of weights, gradients and optimizer state are exact (see :mod:`ltx_train_lib.memory.weights`);
activations come from the family's profile, with its stated tolerance; the VAE decode is traced on the meta device.
The GPU figures are what torch allocates (``torch.cuda.max_memory_allocated``); :func:`needed_bytes` adds the CUDA
context and the caching allocator's slack for comparing with a card.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ltx_train_lib.memory.profile import MemoryProfile, PlanError, StepShape
from ltx_train_lib.memory.weights import WeightBytes, optimizer_bytes, optimizer_step_temporary, weight_bytes

if TYPE_CHECKING:
    from ltx_train_lib.config import TrainerConfig
    from ltx_train_lib.models.family import ModelFamily

GIB = 2**30
# Outside what torch allocates: the CUDA context (~0.3-0.5 GB) and the caching allocator's rounding/fragmentation.
CONTEXT_BYTES = GIB // 2
ALLOCATOR_SLACK = 0.08
# Resident set of the training process itself (Python, torch, CUDA libraries), before any model.
PROCESS_RAM = {"cuda": int(1.5 * GIB), "cpu": 1 * GIB}
SWAP_BUFFERS = 2  # blocks of a swapped set on the device at once: the running one and the prefetched next one

GPU_PARTS = ("weights", "trainable", "gradients", "optimizer", "activations", "text encoder", "VAE")
RAM_PARTS = ("process", "weights", "quantized", "swapped blocks", "text encoder", "VAE")


@dataclass(frozen=True)
class PlanBucket:
    latent_shape: tuple[int, int, int]  # (F', H', W')
    label: str  # pixels, "768x448x89"
    tokens: int  # sequence length the transformer sees per sample

    @classmethod
    def from_latent(cls, latent_shape: tuple[int, int, int], family: ModelFamily, token_factor: int = 1) -> PlanBucket:
        f, h, w = latent_shape
        g = family.geometry
        label = f"{w * g.spatial}x{h * g.spatial}x{(f - 1) * g.temporal + 1}"
        return cls(tuple(latent_shape), label, f * h * w * token_factor)


@dataclass(frozen=True)
class PlanSettings:
    """The settings of a config that decide memory, as the trainer will apply them on ``device``."""

    device: str  # "cuda" | "cpu"
    training_mode: str
    base_dtype: str  # "bf16" | "fp32": the frozen base as loaded
    amp: bool  # forward under bf16/fp16 autocast
    sampling_bytes: int  # bytes per value of the VAE and text encoder (bf16: 2, fp32: 4)
    lora_rank: int
    lora_dropout: float
    lora_targets: tuple[str, ...]
    checkpointing: bool
    optimizer: str
    quantization: str | None
    blocks_to_swap: int
    batch_size: int
    validation: bool
    validation_dims: tuple[int, int, int]
    guidance: bool  # classifier-free guidance: the sampler's batch is 2
    text_encoder_8bit: bool
    token_factor: int  # 2 when a strategy prepends reference tokens (IC-LoRA)

    @classmethod
    def from_config(cls, cfg: TrainerConfig, device: str, *, token_factor: int = 1) -> PlanSettings:
        mode = cfg.acceleration.mixed_precision_mode or "no"
        if mode == "fp16" and device != "cuda":
            mode = "no"  # as the trainer: fp16 autocast needs a GPU
        lora = cfg.lora
        quant = cfg.acceleration.quantization
        validation = bool(cfg.validation.prompts) and cfg.validation.interval is not None
        return cls(
            device=device,
            training_mode=cfg.model.training_mode,
            base_dtype="bf16" if (cfg.model.training_mode == "lora" and mode == "bf16") else "fp32",
            amp=mode in ("bf16", "fp16"),
            sampling_bytes=2 if (mode == "bf16" or (mode == "fp16" and device == "cuda")) else 4,
            lora_rank=lora.rank if (lora is not None and cfg.model.training_mode == "lora") else 0,
            lora_dropout=lora.dropout if lora is not None else 0.0,
            lora_targets=tuple(lora.target_modules) if lora is not None else (),
            checkpointing=cfg.optimization.enable_gradient_checkpointing,
            optimizer=cfg.optimization.optimizer_type,
            quantization=None if quant in (None, "no_change") else quant,
            blocks_to_swap=cfg.memory.blocks_to_swap,
            batch_size=cfg.optimization.batch_size,
            validation=validation,
            validation_dims=tuple(cfg.validation.video_dims),
            guidance=cfg.validation.guidance_scale > 1.0,
            text_encoder_8bit=cfg.acceleration.load_text_encoder_in_8bit and device == "cuda",
            token_factor=token_factor,
        )

    def step_shape(self, tokens: int, text_tokens: int, *, checkpointing: bool | None = None) -> StepShape:
        return StepShape(
            batch=self.batch_size, tokens=tokens, text_tokens=text_tokens, amp=self.amp,
            training_mode=self.training_mode, lora_rank=self.lora_rank, lora_dropout=self.lora_dropout > 0,
            checkpointing=self.checkpointing if checkpointing is None else checkpointing,
            fp32_base=self.amp and self.base_dtype == "fp32" and self.training_mode == "lora",
            lora_targets=self.lora_targets,
        )

    def describe(self) -> str:
        parts = [f"{self.training_mode}" + (f" r{self.lora_rank}" if self.training_mode == "lora" else ""),
                 f"batch {self.batch_size}", f"base {self.base_dtype}" + (" + autocast" if self.amp else ""),
                 "gradient checkpointing" if self.checkpointing else "no gradient checkpointing", self.optimizer]
        if self.quantization:
            parts.append(f"base {self.quantization}")
        if self.blocks_to_swap:
            parts.append(f"{self.blocks_to_swap} blocks swapped")
        return ", ".join(parts)


@dataclass
class Phase:
    name: str
    gpu: dict[str, int]
    ram: dict[str, int]
    chosen: bool = True  # False: a what-if row (the other gradient checkpointing setting)

    @property
    def gpu_total(self) -> int:
        return sum(self.gpu.values())

    @property
    def ram_total(self) -> int:
        return sum(self.ram.values())


@dataclass
class MemoryPlan:
    settings: PlanSettings
    architecture: str
    phases: list[Phase]
    activation_tolerance: float
    activations_calibrated: bool
    notes: list[str] = field(default_factory=list)

    def _chosen(self) -> list[Phase]:
        return [p for p in self.phases if p.chosen]

    @property
    def peak_gpu_phase(self) -> Phase:
        return max(self._chosen(), key=lambda p: p.gpu_total)

    @property
    def peak_gpu(self) -> int:
        return self.peak_gpu_phase.gpu_total

    @property
    def peak_ram_phase(self) -> Phase:
        return max(self._chosen(), key=lambda p: p.ram_total)

    @property
    def peak_ram(self) -> int:
        return self.peak_ram_phase.ram_total

    @property
    def needed(self) -> int:
        return needed_bytes(self.peak_gpu)

    def fits(self, budget: int) -> bool:
        return self.needed <= budget


def needed_bytes(allocated: int) -> int:
    """GPU memory a process that allocates ``allocated`` bytes at its peak needs on the card."""
    return int(allocated * (1 + ALLOCATOR_SLACK)) + CONTEXT_BYTES


def gb(n: float) -> str:
    return f"{n / GIB:.1f}"


# ---------------------------------------------------------------------------------------------------- the plan


def load_profile(cfg: TrainerConfig, family: ModelFamily) -> MemoryProfile:
    from ltx_train_lib.models.registry import resolve_source

    source = resolve_source(cfg.model.model_source)
    return family.memory_profile(source, vae_path=cfg.model.vae_path)


def make_plan(cfg: TrainerConfig, family: ModelFamily, buckets: list[tuple[int, int, int]], *, device: str,
              profile: MemoryProfile | None = None, token_factor: int = 1) -> MemoryPlan:
    """The plan of ``cfg`` trained on ``buckets`` (latent shapes) on ``device`` ("cuda"/"cpu"); ``profile``: the
    family's memory profile of the config's model, when the caller has it (recipe searches reuse it)."""
    if not buckets:
        raise PlanError("the memory plan needs at least one resolution bucket")
    profile = profile or load_profile(cfg, family)
    if cfg.lora is not None and cfg.lora.target_modules is None:
        # The family's default targets, as the trainer resolves them; 'auto' is planned as the largest choice
        # (audio and video together when the family has sound).
        modalities = cfg.model.modalities
        if modalities == "auto":
            modalities = "audio_video" if "audio_video" in family.modalities else "video"
        targets = list(family.lora_targets_for(modalities))
        cfg = cfg.model_copy(update={"lora": cfg.lora.model_copy(update={"target_modules": targets})})
    s = PlanSettings.from_config(cfg, device, token_factor=token_factor)
    w = weight_bytes(profile.transformer, family, s)
    notes = list(profile.notes)
    if s.blocks_to_swap > len(w.per_block):
        raise PlanError(f"memory.blocks_to_swap is {s.blocks_to_swap} but the transformer has {len(w.per_block)} blocks; "
                        f"set it to {len(w.per_block)} or less")
    resident = _resident_weights(w, s.blocks_to_swap)
    swapped = sum(w.per_block[: s.blocks_to_swap])
    state = {"trainable": w.trainable_bytes, "gradients": w.trainable_bytes,
             "optimizer": optimizer_bytes(w.trainable, s.optimizer, device=device)}
    te = profile.text_encoder
    vae = profile.vae
    te_bytes = (int(te.parameters * 1.05) if s.text_encoder_8bit else te.parameters * s.sampling_bytes) if te else 0
    vae_bytes = vae.parameters * s.sampling_bytes if vae else 0
    process = PROCESS_RAM["cuda" if device == "cuda" else "cpu"]
    unquantized = _unquantized(profile, family, s) if s.quantization else w.frozen
    loaded = unquantized if s.training_mode == "lora" else 4 * w.trainable_count + w.frozen  # as loaded, before quantizing
    ram_vae = {"VAE": vae_bytes} if s.validation else {}
    phases: list[Phase] = []
    if s.validation:
        if te is None:
            notes.append("the text encoder's size is unknown to the family profile: not counted")
        phases.append(Phase("encode prompts", {"text encoder": te_bytes},
                            {"process": process, "weights": loaded, "text encoder": te_bytes if not s.text_encoder_8bit else 0, **ram_vae}))
    if s.quantization:
        phases.append(Phase("quantize", {}, {"process": process, "weights": unquantized,
                                              "quantized": w.frozen, **ram_vae}))
    train_ram = {"process": process, "swapped blocks": swapped, **ram_vae}
    temp = optimizer_step_temporary(w.trainable, s.optimizer, device=device)
    seen: set[tuple[int, bool]] = set()
    for latent in buckets:
        bucket = PlanBucket.from_latent(latent, family, token_factor)
        for checkpointing in (s.checkpointing, not s.checkpointing):
            if (bucket.tokens, checkpointing) in seen:
                continue
            seen.add((bucket.tokens, checkpointing))
            act = profile.activations.training(s.step_shape(bucket.tokens, profile.text_tokens, checkpointing=checkpointing))
            label = f"train {bucket.label}" + ("" if checkpointing == s.checkpointing else
                                               (" if checkpointing" if checkpointing else " without checkpointing"))
            phases.append(Phase(label, {"weights": resident, **state, "activations": max(act.peak, temp)}, dict(train_ram),
                                chosen=checkpointing == s.checkpointing))
    if s.validation:
        width, height, frames = s.validation_dims
        tokens = family.geometry.token_count(width, height, frames) * token_factor
        batch = 2 if s.guidance else 1
        sampling = profile.activations.sampling(batch, tokens, profile.text_tokens, s.amp)
        kept = {"weights": resident, "trainable": state["trainable"], "optimizer": state["optimizer"]}
        label = f"{width}x{height}x{frames}"
        phases.append(Phase(f"validation sampling {label}", {**kept, "activations": sampling}, dict(train_ram)))
        if vae is not None and vae.decode_bytes is not None:
            decode = vae.decode_bytes(width, height, frames, s.sampling_bytes)
            phases.append(Phase(f"validation decode {label}", {**kept, "VAE": vae_bytes, "activations": decode},
                                {"process": process, "swapped blocks": swapped}))
        else:
            notes.append("the VAE decode is not estimated by the family profile")
    if s.quantization in ("int4-quanto", "int2-quanto"):
        notes.append(f"{s.quantization}: packed weights take device-specific layouts; their bytes are approximate")
    if s.blocks_to_swap:
        notes.append(f"{s.blocks_to_swap} of {len(w.per_block)} blocks live in pinned RAM; {SWAP_BUFFERS} at a time on the GPU")
    return MemoryPlan(s, profile.architecture, phases, profile.activations.tolerance, profile.activations.calibrated, notes)


def _resident_weights(w: WeightBytes, blocks_to_swap: int) -> int:
    if not blocks_to_swap:
        return w.frozen
    swapped = w.per_block[:blocks_to_swap]
    return w.frozen - sum(swapped) + min(SWAP_BUFFERS, blocks_to_swap) * max(swapped)


def _unquantized(profile: MemoryProfile, family: ModelFamily, s: PlanSettings) -> int:
    return weight_bytes(profile.transformer, family, replace(s, quantization=None)).frozen


# ---------------------------------------------------------------------------------------------------- buckets


def config_buckets(cfg: TrainerConfig, family: ModelFamily, *, dataset: Any = None,
                   override: list[str] | None = None) -> tuple[list[tuple[int, int, int]], str]:
    """The latent shapes to plan for, and where they came from: ``override`` (WxHxF strings), the dataset's samples
    (the trainer's own dataset, or the one at ``data.preprocessed_data_root``: its manifest's buckets, else its
    files), else the validation video size."""
    from ltx_train_lib.buckets import parse_buckets

    if override:
        return [b.latent_shape for b in parse_buckets(";".join(override))], "--buckets"
    if dataset is not None:
        return sorted({s.shape for s in dataset.samples}), f"the dataset ({len(dataset.samples)} samples)"
    found = _dataset_buckets(cfg)
    if found:
        return found
    w, h, f = cfg.validation.video_dims
    return [family.geometry.latent_shape(w, h, f)], (
        f"validation.video_dims (no dataset at '{cfg.data.preprocessed_data_root}'; pass --buckets WxHxF to plan others)"
    )


def _dataset_buckets(cfg: TrainerConfig) -> tuple[list[tuple[int, int, int]], str] | None:
    from ltx_train_lib.buckets import parse_buckets
    from ltx_train_lib.errors import LtxTrainError

    try:
        from ltx_train_lib.data import PrecomputedDataset, resolve_precomputed_root
        from ltx_train_lib.precompute.manifest import MANIFEST_NAME, Manifest

        root = resolve_precomputed_root(cfg.data.preprocessed_data_root)
        manifest = Manifest.load(root / MANIFEST_NAME, quiet=True)
        if manifest.found and manifest.settings.get("buckets"):
            return [b.latent_shape for b in parse_buckets(list(manifest.settings["buckets"]))], f"the dataset's manifest ({root})"
        dataset = PrecomputedDataset(root)
        return sorted({s.shape for s in dataset.samples}), f"the dataset ({len(dataset.samples)} samples)"
    except LtxTrainError:
        return None
