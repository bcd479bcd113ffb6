"""What the memory plan knows of a family's architecture: its transformer on the meta device (shapes, no weights),
what a training step's activations take, and its text encoder and VAE.

A family describes itself through ``ModelFamily.memory_profile(source)``. One that does not override it gets
:func:`generic_profile`: exact parameter counts from its transformer built on the meta device, and activations from
a per-token rule of thumb (:class:`GenericActivations`), reported as rough. A family that wants exact activations
names the terms its blocks' saved tensors scale with and gives coefficients measured with
:func:`ltx_train_lib.memory.measure.saved_tensor_bytes` (:class:`LinearActivations`; the LTX-Video family's
``models/ltxv/memory.py`` and ``bench/calibrate_activations.py`` show how).

Importable without torch (config validation and ComfyUI's start stay light); the builders import it inside.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ltx_train_lib.errors import ConfigError

if TYPE_CHECKING:
    from ltx_train_lib.models.family import ModelFamily, ResolvedSource

# Backward keeps, on top of what the forward saved, the gradients in flight through one block (and, with
# checkpointing, that block's recomputed activations): this fraction of one block's saved bytes. Measured on CPU
# with LiveTensors over LTX-Video architectures (0.29-0.56 without, 1.11-1.55 with checkpointing; the upper ends
# on the tiny model, whose text terms dominate).
BACKWARD_FACTOR = {False: 0.5, True: 1.3}


class PlanError(ConfigError):
    """The memory plan cannot be made for this config (an architecture it cannot see without loading weights)."""


@dataclass(frozen=True)
class StepShape:
    """One micro-step as the activations see it."""

    batch: int
    tokens: int  # sequence length per sample the transformer sees (latent tokens, plus any a strategy prepends)
    text_tokens: int
    amp: bool  # under bf16/fp16 autocast (activations mostly 2 bytes)
    training_mode: str = "lora"  # "lora" | "full"
    lora_rank: int = 0
    lora_dropout: bool = False
    checkpointing: bool = False
    fp32_base: bool = False  # frozen base in fp32 under autocast (fp16 mixed precision): weights cast every forward
    lora_targets: tuple[str, ...] = ()  # lora.target_modules


@dataclass(frozen=True)
class ActivationEstimate:
    kept: int  # bytes autograd keeps after the forward (what saved_tensor_bytes measures)
    block: int  # one block's saved bytes without checkpointing (recomputed block by block with it)
    backward: int  # bytes alive on top of ``kept`` at the peak of the backward

    @property
    def peak(self) -> int:
        return self.kept + self.backward


class ActivationModel:
    """How many bytes a family's transformer keeps for backward, and holds while sampling."""

    calibrated: bool = False
    tolerance: float = 0.5  # relative error against the saved-tensor measurement, as stated in the plan

    def training(self, shape: StepShape) -> ActivationEstimate:
        raise NotImplementedError

    def sampling(self, batch: int, tokens: int, text_tokens: int, amp: bool) -> int:
        """Peak bytes of the tensors one no-grad forward holds at once."""
        raise NotImplementedError


class LinearActivations(ActivationModel):
    """Bytes as sums of coefficient x term, per part of the model.

    ``terms(shape)`` returns, for the parts ``block`` (one transformer block), ``outside`` (everything else that
    autograd keeps: embeddings, projections, tables shared by the blocks, the loss; with checkpointing also the
    blocks' inputs) and ``sampling`` (one no-grad forward), the values of named terms (products of the step's shape
    and the architecture's dimensions, e.g. batch x tokens x hidden). ``coefficients`` maps
    ``"<training mode>/<fp32|amp>/<part>"`` (``outside_gc`` for the outside part under checkpointing; ``first``,
    optional, for the first block's share when it differs from the others') and
    ``"sampling/<fp32|amp>"`` to bytes per unit of each term."""

    calibrated = True

    def __init__(self, num_blocks: int, terms: Callable[[StepShape], Mapping[str, Mapping[str, float]]],
                 coefficients: Mapping[str, Mapping[str, float]], *, tolerance: float = 0.05) -> None:
        self.num_blocks = num_blocks
        self.terms = terms
        self.coefficients = coefficients
        self.tolerance = tolerance

    def _dot(self, key: str, values: Mapping[str, float]) -> int:
        coef = self.coefficients[key]
        return int(round(max(0.0, sum(coef.get(name, 0.0) * v for name, v in values.items()))))

    def training(self, shape: StepShape) -> ActivationEstimate:
        terms = self.terms(shape)
        mode = shape.training_mode
        if mode == "lora" and shape.amp and shape.fp32_base and "lora/amp32/block" not in self.coefficients:
            mode = "full"  # a LoRA over an fp32 base under autocast keeps at most what a full fine-tune keeps
        prefix = f"{mode}/{'amp' if shape.amp else 'fp32'}"
        block = self._dot(f"{prefix}/block", terms["block"])
        # The first block may keep less: in a LoRA its input needs no gradient (``<prefix>/first``, else as the rest).
        first = self._dot(f"{prefix}/first", terms["block"]) if f"{prefix}/first" in self.coefficients else block
        outside = self._dot(f"{prefix}/outside_gc" if shape.checkpointing else f"{prefix}/outside", terms["outside"])
        kept = outside if shape.checkpointing else outside + first + (self.num_blocks - 1) * block
        return ActivationEstimate(kept, block, int(BACKWARD_FACTOR[shape.checkpointing] * block))

    def sampling(self, batch: int, tokens: int, text_tokens: int, amp: bool) -> int:
        """A no-grad forward frees each tensor once it is used, so it never holds more than what a training forward
        keeps outside the blocks plus what one block keeps (its tables and one block's tensors): that bound,
        unless the family calibrated ``sampling/<precision>`` itself."""
        shape = StepShape(batch, tokens, text_tokens, amp)
        key = f"sampling/{'amp' if amp else 'fp32'}"
        if key in self.coefficients:
            return self._dot(key, self.terms(shape)["sampling"])
        terms = self.terms(shape)
        prefix = f"lora/{'amp' if amp else 'fp32'}"
        return self._dot(f"{prefix}/block", terms["block"]) + self._dot(f"{prefix}/outside", terms["outside"])


class GenericActivations(ActivationModel):
    """A rule of thumb for a transformer the family does not describe: per block, bytes per (sample x token x
    hidden unit) as LTX-Video's blocks measure (self- and cross-attention, a 4x MLP, per-token modulation);
    text tokens and LoRA terms ignored. Rough: +-50 % for DiT-like blocks, more for others."""

    calibrated = False
    tolerance = 0.5
    # bytes per (sample x token x hidden) for one block / outside the blocks / a checkpointed block's input
    _PER_UNIT = {False: (100.0, 16.0, 4.0), True: (72.0, 12.0, 2.0)}

    def __init__(self, num_blocks: int, hidden: int) -> None:
        self.num_blocks = num_blocks
        self.hidden = hidden

    def training(self, shape: StepShape) -> ActivationEstimate:
        per_block, outside, ckpt = self._PER_UNIT[shape.amp]
        unit = shape.batch * shape.tokens * self.hidden
        if shape.training_mode == "full":
            per_block, outside = per_block * 1.5, outside * 2.5
        block = int(per_block * unit)
        kept = int(outside * unit) + (int(self.num_blocks * ckpt * unit) if shape.checkpointing else self.num_blocks * block)
        return ActivationEstimate(kept, block, int(BACKWARD_FACTOR[shape.checkpointing] * block))

    def sampling(self, batch: int, tokens: int, text_tokens: int, amp: bool) -> int:
        return int((40.0 if not amp else 24.0) * batch * tokens * self.hidden)


@dataclass(frozen=True)
class ComponentProfile:
    """A text encoder or VAE: its parameter count, and for a VAE the peak bytes of decoding one video."""

    name: str
    parameters: int
    decode_bytes: Callable[[int, int, int, int], int] | None = None  # (width, height, frames, bytes per element)


@dataclass
class MemoryProfile:
    """What :func:`ltx_train_lib.memory.plan.make_plan` needs from a family."""

    transformer: Any  # torch.nn.Module on the meta device
    activations: ActivationModel
    text_tokens: int
    architecture: str  # e.g. "LTX-Video 13B: 48 blocks, hidden 4096"
    text_encoder: ComponentProfile | None = None
    vae: ComponentProfile | None = None
    notes: list[str] = field(default_factory=list)


def meta_module(build: Callable[[], Any]) -> Any:
    """``build()`` under the meta device: modules get shapes and dtypes but no memory, and nothing is read."""
    import torch

    with torch.device("meta"):
        return build()


def main_hidden_size(block: Any) -> int:
    """The width most of a block's Linear layers read: its hidden size, for a family that does not state it."""
    from collections import Counter

    widths = Counter(m.in_features for m in block.modules() if isinstance(getattr(m, "in_features", None), int))
    if not widths:
        raise PlanError(f"cannot tell the hidden size of a {type(block).__name__} block (it has no Linear layers)")
    return widths.most_common(1)[0][0]


def generic_profile(family: ModelFamily, source: ResolvedSource) -> MemoryProfile:
    """The plan's view of a family that does not describe itself: the architecture of a named version (or the tiny
    model) on the meta device; activations from :class:`GenericActivations`."""
    if source.kind == "tiny":
        size = family.tiny_source
    elif source.version is not None:
        size = source.version.size
    else:
        raise PlanError(
            f"model.model_source: the memory plan needs the architecture of '{source.location}' without loading it, "
            f"which the {family.display_name} family can only tell for its named versions; use a named version "
            f"({', '.join(list(family.versions())[:3])}, ...) for the plan, or train without memory.budget_gb"
        )
    transformer = meta_module(lambda: family.build_random_transformer(size))
    blocks = family.blocks(transformer)
    hidden = main_hidden_size(blocks[0])
    return MemoryProfile(
        transformer=transformer,
        activations=GenericActivations(len(blocks), hidden),
        text_tokens=family.text_max_tokens,
        architecture=f"{family.display_name} {size}: {len(blocks)} blocks, hidden {hidden}",
        notes=[f"activations of {family.display_name} are a rule of thumb (+-50 %): the family has no calibrated profile"],
    )
