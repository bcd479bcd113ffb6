"""The training configuration: one pydantic schema, the single source of truth for every option.

Every section and field of the reference trainer's YAML (LTX-Video-Trainer ``LtxvTrainerConfig``) validates
unchanged. Fields we add are marked "(addition)" in their description. Node widgets and CLI help read their
defaults, ranges and help text from here.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from ltx_train_lib.errors import ConfigError

# How captions are run through the text encoder (see ltx_train_lib.models.ltxv.text): "comfyui" with the attention
# mask, as ComfyUI feeds the model; "reference" without it, as the reference trainer cached. Preprocessing
# (PrecomputeConfig.text_encoding) and training (data.text_encoding) name it with this one type.
TextEncoding = Literal["comfyui", "reference"]
DEFAULT_TEXT_ENCODING: TextEncoding = "comfyui"


class _Section(BaseModel):
    # Unknown keys are mistakes (typos, stale doc names): reject them with their dotted path.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


# What a run learns (ModelConfig.modalities); the strategies map each to how the two streams are fed and weighted.
Modalities = Literal["auto", "video", "audio_video", "audio"]


class ModelConfig(_Section):
    model_source: str = Field(
        "LTXV_13B_097_DEV",
        description="Base model: a named version (e.g. LTXV_2B_0.9.6_DEV, LTXV_13B_098_DEV), a Hugging Face repo id, "
        "a local diffusers folder, a single-file .safetensors checkpoint, or 'tiny' (random weights, tests/demo only).",
    )
    training_mode: Literal["lora", "full"] = Field("lora", description="'lora' trains a LoRA adapter; 'full' trains every transformer weight.")
    load_checkpoint: str | None = Field(
        None,
        description="Initial weights: a .safetensors LoRA/model file, or a folder (its highest-step checkpoint is used). "
        "This loads weights only; full-state resume of an interrupted run is automatic (see checkpoints.resume).",
    )
    text_encoder_path: str | None = Field(
        None, description="(addition) T5 encoder: a single .safetensors file (ComfyUI models/text_encoders) or a folder. Default: from model_source."
    )
    tokenizer_path: str | None = Field(None, description="(addition) T5 tokenizer folder. Default: from model_source.")
    vae_path: str | None = Field(None, description="(addition) VAE: a single .safetensors file or a diffusers folder. Default: from model_source.")
    audio_vae_path: str | None = Field(
        None, description="(addition) LTX-2 only: the audio VAE + vocoder file (ComfyUI's models/vae "
        "LTX2_audio_vae*.safetensors), when neither model_source nor vae_path holds them. Default: from model_source."
    )
    modalities: Modalities = Field(
        "auto",
        description="(addition) What an audio-video model (LTX-2) learns: 'audio_video' (joint video and sound), 'video' "
        "(the audio stream is fed noise and not learned: video-only LoRAs, images), 'audio' (sound for the given "
        "video: the video is fed clean and only the audio is learned); 'auto' = audio_video when the dataset has "
        "audio latents, else video. LTX-Video models train video only.",
    )

    @field_validator("model_source", "load_checkpoint", "text_encoder_path", "tokenizer_path", "vae_path", "audio_vae_path", mode="before")
    @classmethod
    def _path_to_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, Path) else v

    @field_validator("model_source")
    @classmethod
    def _known_version(cls, v: str) -> str:
        from ltx_train_lib.models.registry import check_model_source

        return check_model_source(v)


class LoraConfig(_Section):
    rank: int = Field(64, ge=1, description="LoRA rank r (the reference requires >= 2; we accept 1).")
    alpha: int = Field(64, ge=1, description="LoRA alpha; the update is scaled by alpha / rank.")
    dropout: float = Field(0.0, ge=0.0, le=1.0, description="Dropout on the LoRA branch.")
    target_modules: list[str] | None = Field(
        None,
        description="Module names or patterns to adapt (peft target_modules). Default (null or empty): the model "
        "family's — LTX-Video: attention q/k/v/out of every block (the reference's); LTX-2: per model.modalities, the "
        "video and/or audio streams' attentions and feed-forwards, plus the audio<->video cross-attentions when both "
        "learn. The resolved list is written to training_config.yaml.",
    )

    @field_validator("target_modules", mode="before")
    @classmethod
    def _empty_is_default(cls, v: Any) -> Any:
        return None if v in ([], "", ()) else v

    @field_validator("rank", mode="before")
    @classmethod
    def _rank_positive(cls, v: Any) -> Any:
        if isinstance(v, int) and v <= 0:
            raise ValueError(f"rank must be a positive integer, got {v}; use e.g. 16, 32 or 64")
        return v


class ConditioningConfig(_Section):
    """The fields every conditioning strategy has (the reference's ``conditioning`` section); each strategy's section
    below fixes ``mode``, and ``conditioning`` is their tagged union (see ltx_train_lib.training.strategy)."""

    mode: Literal["none", "reference_video"] = Field("none", description="Training strategy: 'none' = standard flow matching (with first-frame conditioning); 'reference_video' trains an IC-LoRA on paired reference latents.")
    first_frame_conditioning_p: float = Field(
        0.1, ge=0.0, le=1.0, description="Probability, drawn per sample, of feeding the first latent frame clean (timestep 0, no loss): image-to-video."
    )
    reference_latents_dir: str = Field("reference_latents", description="Folder of reference latents under .precomputed (IC-LoRA).")


class StandardConditioning(ConditioningConfig):
    mode: Literal["none"] = Field("none", description="Standard flow matching, with per-sample first-frame (image-to-video) conditioning.")


class ReferenceVideoConditioning(ConditioningConfig):
    mode: Literal["reference_video"] = Field(..., description="IC-LoRA: clean reference latents prepended to the noisy target.")


def _conditioning_tag(value: Any) -> str:
    # A section without ``mode`` is the standard strategy, as in the reference's configs.
    if isinstance(value, dict):
        return str(value.get("mode", "none"))
    return str(getattr(value, "mode", "none"))


ConditioningSection = Annotated[
    Annotated[StandardConditioning, Tag("none")] | Annotated[ReferenceVideoConditioning, Tag("reference_video")],
    Discriminator(_conditioning_tag, custom_error_type="invalid_mode",
                  custom_error_message="conditioning.mode must be 'none' or 'reference_video'"),
]


# Upper bound of optimization.steps: far beyond any real run (years at one step per second), low enough that a typo
# (an extra few zeros) is caught at once instead of planning a run that never ends.
MAX_STEPS = 10_000_000

SchedulerType = Literal["constant", "linear", "cosine", "cosine_with_restarts", "polynomial"]


class OptimizationConfig(_Section):
    learning_rate: float = Field(5e-4, gt=0, description="Peak learning rate.")
    steps: int = Field(3000, ge=1, le=MAX_STEPS, description="Number of optimizer steps.")
    batch_size: int = Field(2, ge=1, description="Samples per process per micro-step (batches are formed within one resolution bucket).")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps per optimizer step.")
    max_grad_norm: float = Field(1.0, description="Gradient clipping norm; <= 0 disables clipping.")
    optimizer_type: Literal["adamw", "adamw8bit"] = Field("adamw", description="AdamW, or bitsandbytes 8-bit AdamW (CUDA only).")
    scheduler_type: SchedulerType = Field("linear", description="Learning-rate schedule after warmup.")
    scheduler_params: dict[str, Any] = Field(default_factory=dict, description="Extra keyword arguments for the scheduler.")
    enable_gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass: less memory, ~30% slower.")
    warmup_steps: int = Field(0, ge=0, description="(addition) Linear learning-rate warmup from 0 over this many optimizer steps.")
    weight_decay: float = Field(0.01, ge=0.0, description="(addition) AdamW weight decay (torch default 0.01, as the reference).")
    optimizer_implementation: Literal["auto", "fused", "foreach", "for_loop"] = Field(
        "auto",
        description="(addition) How torch's AdamW runs its update: 'fused' (one kernel for all parameters), 'foreach' "
        "(batched tensor ops) or 'for_loop' (one parameter at a time, torch's CPU default). 'auto' picks 'fused' where "
        "torch has it for the parameters' device and dtype, else 'foreach'; training_config.yaml records the choice. "
        "Same math (rounding may differ in the last bit); ignored by adamw8bit.",
    )

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_in_range(cls, v: Any) -> Any:
        # Checked before the type so the message says what a sensible value is; the Field bound stays for the schema
        # (node widgets and docs read it).
        if isinstance(v, int) and not isinstance(v, bool) and v > MAX_STEPS:
            raise ValueError(
                f"steps {v:,} is more than the limit of {MAX_STEPS:,}; a LoRA typically needs a few hundred to a few "
                "thousand steps (e.g. 500-3000)"
            )
        return v


class AccelerationConfig(_Section):
    mixed_precision_mode: Literal["no", "fp16", "bf16"] | None = Field("bf16", description="Autocast precision for the forward pass.")
    quantization: (
        Literal["no_change", "int8-torchao", "fp8-torchao", "int8-quanto", "int4-quanto", "int2-quanto", "fp8-quanto",
                "fp8uz-quanto"] | None
    ) = Field(
        None,
        description="Weight quantization of the frozen base model (LoRA only; the LoRA trains and is saved in full "
        "precision). 'int8-torchao': int8 weight-only through torchao, any device; 'fp8-torchao': float8 weight-only, "
        "GPUs of compute capability 8.9+ (Ada, Hopper, Blackwell); '*-quanto': optimum-quanto (as the reference; no "
        "release since March 2025).",
    )
    load_text_encoder_in_8bit: bool = Field(False, description="Load T5 in 8-bit (bitsandbytes, CUDA only).")
    compile_with_inductor: bool = Field(
        False,
        description="torch.compile each transformer block (GPU, and CPU where a C++ compiler is installed; off by "
        "default, as in the reference's own configs): faster steps after a first step per bucket shape that compiles. "
        "Validation always samples through the eager blocks.",
    )
    compilation_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default", description="torch.compile mode; 'default' (CUDA graphs of 'reduce-overhead' break with varying bucket shapes)."
    )


class DataConfig(_Section):
    preprocessed_data_root: str = Field(..., description="Dataset folder (containing .precomputed/) or the .precomputed folder itself.")
    num_dataloader_workers: int = Field(2, ge=0, description="DataLoader worker processes (0 = load in the main process).")
    trigger_word: str | None = Field(
        None,
        description="(addition) The trigger word the dataset's captions were prefixed with at preprocessing; written into the "
        "LoRA metadata and the model card (training itself reads the cached conditions).",
    )
    text_encoding: TextEncoding = Field(
        DEFAULT_TEXT_ENCODING,
        description="(addition) How the cached caption embeddings were made: 'comfyui' (T5 with its attention mask, as "
        "ComfyUI feeds the model) or 'reference' (without it, as the reference trainer). Training refuses a cache "
        "preprocessed with the other one; validation prompts are encoded this way too.",
    )

    @field_validator("preprocessed_data_root", mode="before")
    @classmethod
    def _path_to_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, Path) else v


class ValidationConfig(_Section):
    prompts: list[str] = Field(default_factory=list, description="Prompts sampled at each validation.")
    negative_prompt: str = Field("worst quality, inconsistent motion, blurry, jittery, distorted", description="Negative prompt for CFG.")
    images: list[str] | None = Field(None, description="First-frame images for image-to-video validation, one per prompt.")
    reference_videos: list[str] | None = Field(None, description="Reference videos for IC-LoRA validation, one per prompt.")
    video_dims: tuple[int, int, int] = Field((704, 480, 161), description="Width, height, frames of validation videos (W,H multiple of 32; F = 8k+1).")
    frame_rate: float | None = Field(
        None,
        gt=0,
        description="(addition) Frame rate for RoPE and for the written mp4; null = the dataset's fps (the most common "
        "fps of its clips; training_config.yaml records the value used). Sample in ComfyUI at this rate too "
        "(LTXVConditioning frame_rate).",
    )
    seed: int = Field(42, description="Generator seed for validation sampling.")
    inference_steps: int = Field(50, gt=0, description="Denoising steps per validation video.")
    interval: int | None = Field(100, gt=0, description="Validate every N optimizer steps; null disables validation.")
    videos_per_prompt: int = Field(1, gt=0, description="Videos generated per prompt (seeds seed, seed+1, ...).")
    guidance_scale: float = Field(3.5, ge=1.0, description="Classifier-free guidance scale.")
    skip_initial_validation: bool = Field(False, description="Skip the validation before the first step.")

    @field_validator("video_dims")
    @classmethod
    def _dims(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        w, h, f = v
        if w % 32 or h % 32 or w <= 0 or h <= 0:
            raise ValueError(f"width and height must be positive multiples of 32, got {w}x{h}; e.g. {max(32, w // 32 * 32)}x{max(32, h // 32 * 32)}")
        if f < 1 or (f - 1) % 8:
            raise ValueError(f"the frame count must be 8k+1 (1, 9, 17, 25, ...), got {f}; e.g. {max(1, (f - 1) // 8 * 8 + 1)}")
        return v


class CheckpointsConfig(_Section):
    interval: int | None = Field(None, gt=0, description="Save a resumable checkpoint every N optimizer steps; null saves only at the end.")
    keep_last_n: int = Field(1, ge=-1, description="Keep the last N checkpoints; -1 keeps all.")
    resume: bool = Field(True, description="(addition) Resume automatically from the newest full-state checkpoint in output_dir/checkpoints.")


class HubConfig(_Section):
    push_to_hub: bool = Field(False, description="Upload the result to the Hugging Face Hub when training ends.")
    hub_model_id: str | None = Field(None, description="Target repository, e.g. 'user/my-lora'. The token comes from HF_TOKEN or the login cache only.")
    private: bool = Field(False, description="(addition) Create the repository as private.")


class FlowMatchingConfig(_Section):
    timestep_sampling_mode: Literal["uniform", "shifted_logit_normal"] = Field("shifted_logit_normal", description="How sigmas are drawn.")
    timestep_sampling_params: dict[str, Any] = Field(default_factory=dict, description="Sampler parameters: std (shifted_logit_normal) or min_value/max_value (uniform).")


class WandbConfig(_Section):
    enabled: bool = Field(False, description="Log to Weights & Biases.")
    project: str = Field("ltxv-trainer", description="W&B project.")
    entity: str | None = Field(None, description="W&B entity.")
    tags: list[str] = Field(default_factory=list, description="W&B tags.")
    log_validation_videos: bool = Field(True, description="Upload validation videos to W&B.")


class TensorboardConfig(_Section):
    enabled: bool = Field(False, description="(addition) Write TensorBoard logs (loss, learning rate, validation videos).")
    log_dir: str | None = Field(None, description="(addition) Log folder; default output_dir/tensorboard.")


class MemoryConfig(_Section):
    budget_gb: float | Literal["auto"] | None = Field(
        None,
        description="(addition) GPU memory this run may use, in GB (GiB, 2^30 bytes, as GPU sizes are quoted): the trainer plans the run's peak before "
        "loading anything and picks the cheapest settings that fit (as configured, then gradient checkpointing, "
        "8-bit AdamW, an int8 base, then swapping blocks to CPU memory); a run that cannot fit is refused, naming what "
        "would make it fit. 'auto' = the CUDA device's free memory at start; null = no budget (train as configured). "
        "scripts/train.py CONFIG --plan prints the plan.",
    )
    blocks_to_swap: int = Field(
        0,
        ge=0,
        description="(addition) Transformer blocks kept in CPU memory (pinned) and brought to the GPU one at a time for "
        "their forward and backward, the next one prefetched: less GPU memory for the frozen base, some speed lost. "
        "LoRA only; 0 = every block stays on the GPU.",
    )

    @field_validator("budget_gb", mode="before")
    @classmethod
    def _budget(cls, v: Any) -> Any:
        hint = "e.g. 16 for a 16 GB card, or 'auto' for the free memory of the GPU"
        if isinstance(v, str):
            text = v.strip().lower()
            if text == "auto":
                return "auto"
            try:
                v = float(text.removesuffix("gb").strip())
            except ValueError:
                raise ValueError(f"budget_gb must be a number of GB, 'auto' or null, got {v!r}; {hint}") from None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0:
            raise ValueError(f"budget_gb must be a positive number of GB, 'auto' or null, got {v}; {hint}")
        return v


class DistributedConfig(_Section):
    """How a run on several processes or machines fails: neither hangs nor trains on as an orphan."""

    collective_timeout_s: float = Field(
        600.0,
        ge=1.0,
        description="(addition) Seconds a process waits for the others in a collective (a gradient all-reduce, a "
        "barrier) before the run stops with an error naming the process that stalled (torch's default is 30 "
        "minutes). Phases only rank 0 works in (validation, checkpoint writing) are not limited by it: the others "
        "wait as long as rank 0 is alive. Raise it when one machine loads the model much more slowly than the rest.",
    )
    orphan_grace_s: float = Field(
        30.0,
        ge=0.0,
        description="(addition) When the launcher (accelerate launch, scripts/train_distributed.py) or the ComfyUI "
        "process dies, every training process stops at the next optimizer step with a resumable checkpoint; one "
        "still running this many seconds later (in a long validation, a hung step) exits at once.",
    )


class TrainerConfig(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model and training mode.")
    lora: LoraConfig | None = Field(None, description="LoRA settings; required when model.training_mode is 'lora'.")
    conditioning: ConditioningSection = Field(default_factory=StandardConditioning, description="Training strategy and its conditioning settings (tagged by 'mode').")
    optimization: OptimizationConfig = Field(default_factory=OptimizationConfig, description="Optimizer and schedule.")
    acceleration: AccelerationConfig = Field(default_factory=AccelerationConfig, description="Precision, quantization, compilation.")
    data: DataConfig = Field(..., description="Where the precomputed dataset is.")
    validation: ValidationConfig = Field(default_factory=ValidationConfig, description="Validation sampling.")
    checkpoints: CheckpointsConfig = Field(default_factory=CheckpointsConfig, description="Checkpointing and resume.")
    hub: HubConfig = Field(default_factory=HubConfig, description="Hugging Face Hub upload.")
    flow_matching: FlowMatchingConfig = Field(default_factory=FlowMatchingConfig, description="Sigma sampling.")
    wandb: WandbConfig = Field(default_factory=WandbConfig, description="Weights & Biases logging.")
    tensorboard: TensorboardConfig = Field(default_factory=TensorboardConfig, description="(addition) TensorBoard logging.")
    memory: MemoryConfig = Field(default_factory=MemoryConfig, description="(addition) GPU memory budget and block swapping.")
    distributed: DistributedConfig = Field(default_factory=DistributedConfig, description="(addition) Timeouts of multi-process runs: stalled and orphaned processes.")
    seed: int = Field(42, description="Global seed; each process derives its own noise stream from it and its rank.")
    output_dir: str = Field("outputs", description="Where weights, checkpoints, samples and logs go.")

    @field_validator("output_dir", mode="before")
    @classmethod
    def _path_to_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, Path) else v

    @model_validator(mode="after")
    def _cross_field_rules(self) -> TrainerConfig:
        if self.model.training_mode == "lora" and self.lora is None:
            raise ValueError("model.training_mode is 'lora' but the 'lora' section is missing; add lora: {rank: 32, alpha: 32}")
        if self.model.training_mode == "full" and self.acceleration.quantization not in (None, "no_change"):
            raise ValueError("acceleration.quantization is only allowed with training_mode 'lora'; remove it for full fine-tuning")
        if self.conditioning.mode == "reference_video":
            if self.model.training_mode != "lora":
                raise ValueError("conditioning.mode 'reference_video' (IC-LoRA) requires model.training_mode 'lora'")
            if not self.validation.reference_videos:
                raise ValueError("conditioning.mode 'reference_video' requires validation.reference_videos")
        n = len(self.validation.prompts)
        if self.validation.images is not None and len(self.validation.images) != n:
            raise ValueError(f"validation.images has {len(self.validation.images)} entries but validation.prompts has {n}; give one image per prompt")
        if self.validation.reference_videos is not None and len(self.validation.reference_videos) != n:
            raise ValueError(
                f"validation.reference_videos has {len(self.validation.reference_videos)} entries but validation.prompts has {n}"
            )
        if self.memory.blocks_to_swap and self.model.training_mode != "lora":
            raise ValueError("memory.blocks_to_swap works with training_mode 'lora' only (a full fine-tune trains the "
                             "swapped weights); set it to 0, or use a memory budget that fits without it")
        if self.memory.blocks_to_swap and self.acceleration.compile_with_inductor:
            raise ValueError("memory.blocks_to_swap cannot be combined with acceleration.compile_with_inductor yet; "
                             "turn one of them off")
        if self.hub.push_to_hub and not self.hub.hub_model_id:
            raise ValueError("hub.push_to_hub is true but hub.hub_model_id is not set; set it to 'user/repo'")
        return self


def section_classes(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (``X | None``, tagged unions of ``Annotated`` members)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [c for arg in typing.get_args(annotation) for c in section_classes(arg)]


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at ``loc``'s parent, for 'did you mean' hints."""
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = next(iter(section_classes(field.annotation)), None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}).keys())


_UNION_TAGS = {"none", "reference_video"}  # tags pydantic inserts into error locations of tagged unions


def _user_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The error location as the user wrote it: without the tag a tagged union adds (``conditioning.none.x``)."""
    return tuple(p for i, p in enumerate(loc) if not (i > 0 and loc[i - 1] == "conditioning" and p in _UNION_TAGS))


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid training config:"]
    for e in err.errors():
        loc = _user_loc(e["loc"])
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _known_keys(TrainerConfig, loc), n=1)
            fix = f"; did you mean '{hint[0]}'?" if hint else "; remove it"
            lines.append(f"  {dotted}: unknown key{fix}")
        elif e["type"] == "missing":
            lines.append(f"  {dotted}: required field is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  {dotted}: {msg} (got {e.get('input')!r})" if e["type"] != "value_error" else f"  {dotted}: {msg}")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "config") -> TrainerConfig:
    try:
        return TrainerConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(path: str | Path) -> TrainerConfig:
    """Read and validate a YAML config; every failure is a ConfigError naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass the path of a YAML training config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax or pass a .yaml config") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; pass a YAML training config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping of sections (model:, lora:, data:, ...), got {type(data).__name__}")
    return config_from_dict(data, str(path))


def dump_config(cfg: TrainerConfig) -> str:
    """The resolved config as YAML (what training_config.yaml holds)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
