"""``memory.budget_gb``: pick the cheapest settings whose plan fits, or refuse naming what would make the run fit.

Recipes, cheapest first, each adding to the one before: the config as written; gradient checkpointing (~30 %
slower); 8-bit AdamW, and the text encoder in 8-bit for the validation prompts (CUDA with bitsandbytes only); an
int8 base (torchao, else optimum-quanto; LoRA only); then swapping the fewest blocks to pinned CPU memory that fits (LoRA only;
per-block compile is turned off with it). Resuming a run keeps the settings that change its math (checkpointing too,
as the checkpoint's fingerprint holds it): those of the ``training_config.yaml`` the interrupted run wrote.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltx_train_lib.errors import ConfigError
from ltx_train_lib.memory.plan import GIB, MemoryPlan, gb, load_profile, make_plan, needed_bytes

if TYPE_CHECKING:
    from ltx_train_lib.config import TrainerConfig
    from ltx_train_lib.memory.profile import MemoryProfile
    from ltx_train_lib.models.family import ModelFamily

# What a resumed run must keep as its checkpoint was made (dotted config paths).
PINNED_ON_RESUME = ("optimization.enable_gradient_checkpointing", "optimization.optimizer_type", "acceleration.quantization")


class MemoryBudgetError(ConfigError):
    """No recipe fits ``memory.budget_gb``; the message names the settings that would."""


@dataclass
class Resolution:
    config: TrainerConfig  # the config to train with (the chosen recipe applied)
    plan: MemoryPlan
    recipe: str  # "as configured", or the settings the budget added
    budget: int | None  # bytes; None: no budget applies
    budget_source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.budget is None:
            return (f"memory plan: needs {gb(self.plan.needed)} GB GPU at its peak ({self.plan.peak_gpu_phase.name}), "
                    f"{gb(self.plan.peak_ram)} GB RAM")
        return (f"memory budget {gb(self.budget)} GB ({self.budget_source}): {self.recipe}; the plan needs "
                f"{gb(self.plan.needed)} GB at its peak ({self.plan.peak_gpu_phase.name}), {gb(self.plan.peak_ram)} GB RAM")


def _get(cfg: TrainerConfig, dotted: str) -> Any:
    section, name = dotted.split(".")
    return getattr(getattr(cfg, section), name)


def apply(cfg: TrainerConfig, changes: dict[str, Any]) -> TrainerConfig:
    """``cfg`` with dotted-path ``changes``, validated again."""
    from ltx_train_lib.config import config_from_dict

    data = cfg.model_dump(mode="json")
    for dotted, value in changes.items():
        section, name = dotted.split(".")
        data[section][name] = value
    return config_from_dict(data, "memory recipe")


def budget_bytes(cfg: TrainerConfig, device: str) -> tuple[int | None, str]:
    """The budget in bytes and where it came from; None with the reason when none applies."""
    value = cfg.memory.budget_gb
    if value is None:
        return None, "no memory.budget_gb"
    if value != "auto":
        return int(float(value) * GIB), f"memory.budget_gb {float(value):g}"
    if device != "cuda":
        return None, "memory.budget_gb 'auto': no CUDA device on this machine, so no budget applies"
    import torch

    free, _total = torch.cuda.mem_get_info()
    return int(free), f"auto: free memory of {torch.cuda.get_device_name()}"


def _can(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def recipes(cfg: TrainerConfig, device: str, pinned: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """[(name, cumulative changes)] cheapest first (block swapping excluded), and why steps were left out."""
    steps: list[tuple[str, dict[str, Any]]] = [("as configured", {})]
    skipped: list[str] = []
    changes: dict[str, Any] = {}
    names: list[str] = []

    def add(name: str, dotted: str, value: Any) -> None:
        if _get(cfg, dotted) == value:
            return
        if dotted in pinned:
            skipped.append(f"{name}: kept as the run being resumed was made ({dotted} {pinned[dotted]!r})")
            return
        changes[dotted] = value
        names.append(name)
        steps.append((" + ".join(names), dict(changes)))

    add("gradient checkpointing", "optimization.enable_gradient_checkpointing", True)
    if device == "cuda" and _can("bitsandbytes"):
        add("8-bit AdamW", "optimization.optimizer_type", "adamw8bit")
        if cfg.validation.prompts and cfg.validation.interval is not None:
            add("8-bit text encoder", "acceleration.load_text_encoder_in_8bit", True)  # used once, at the start
    elif cfg.optimization.optimizer_type != "adamw8bit":
        skipped.append("8-bit AdamW: needs a CUDA GPU and bitsandbytes" + ("" if device == "cuda" else " (no CUDA device)"))
    if cfg.model.training_mode == "lora" and cfg.acceleration.quantization in (None, "no_change"):
        if _can("torchao"):
            add("int8 base", "acceleration.quantization", "int8-torchao")
        elif _can("optimum.quanto"):
            add("int8 base", "acceleration.quantization", "int8-quanto")
        else:
            skipped.append("int8 base: needs torchao (pip install torchao)")
    return steps, skipped


def resolve(cfg: TrainerConfig, family: ModelFamily, buckets: list[tuple[int, int, int]], *, device: str,
            budget: int | None, budget_source: str = "", profile: MemoryProfile | None = None, token_factor: int = 1,
            pinned: dict[str, Any] | None = None) -> Resolution:
    """The first recipe whose plan fits ``budget`` bytes (None: the config as written, unchecked); raises
    :class:`MemoryBudgetError` when none does."""
    profile = profile or load_profile(cfg, family)
    num_blocks = len(family.blocks(profile.transformer))

    def plan_of(config: TrainerConfig, shapes: list[tuple[int, int, int]] | None = None) -> MemoryPlan:
        return make_plan(config, family, shapes or buckets, device=device, profile=profile, token_factor=token_factor)

    first = plan_of(cfg)
    if budget is None:
        return Resolution(cfg, first, "as configured", None, budget_source)
    steps, skipped = recipes(cfg, device, pinned or {})
    last_cfg, last_name = cfg, "as configured"
    for name, changes in steps:
        candidate = apply(cfg, changes) if changes else cfg
        plan = plan_of(candidate) if changes else first
        if plan.fits(budget):
            return Resolution(candidate, plan, name, budget, budget_source, skipped)
        last_cfg, last_name = candidate, name
    if cfg.model.training_mode == "lora" and last_cfg.memory.blocks_to_swap < num_blocks:
        most = apply(last_cfg, _swap_changes(num_blocks))
        if plan_of(most).fits(budget):
            lo, hi = last_cfg.memory.blocks_to_swap + 1, num_blocks  # the need falls as blocks leave the GPU
            while lo < hi:
                mid = (lo + hi) // 2
                if plan_of(apply(last_cfg, _swap_changes(mid))).fits(budget):
                    hi = mid
                else:
                    lo = mid + 1
            chosen = apply(last_cfg, _swap_changes(lo))
            name = ("" if last_name == "as configured" else last_name + " + ") + f"{lo} of {num_blocks} blocks swapped to CPU"
            return Resolution(chosen, plan_of(chosen), name, budget, budget_source, skipped)
        last_cfg, last_name = most, ("" if last_name == "as configured" else last_name + " + ") + f"all {num_blocks} blocks swapped"
    raise MemoryBudgetError(_refusal(last_cfg, last_name, plan_of, buckets, budget, budget_source, skipped, family, token_factor))


def _swap_changes(n: int) -> dict[str, Any]:
    return {"memory.blocks_to_swap": n, "acceleration.compile_with_inductor": False}


def _refusal(cfg: TrainerConfig, name: str, plan_of, buckets, budget: int, source: str, skipped: list[str],
             family: ModelFamily, token_factor: int) -> str:
    """Why the cheapest recipe does not fit, and the settings (added on top of it, in this order) that would."""
    from ltx_train_lib.memory.plan import PlanBucket

    plan = plan_of(cfg)
    peak = plan.peak_gpu_phase
    fixes: list[str] = []
    current = cfg

    def side_too_big(config: TrainerConfig) -> list[str]:
        return [p.name for p in plan_of(config).phases
                if p.chosen and not p.name.startswith("train") and needed_bytes(p.gpu_total) > budget]

    if current.optimization.batch_size > 1:
        current = apply(current, {"optimization.batch_size": 1})
        fixes.append("optimization.batch_size 1")
    too_big = side_too_big(current)
    if too_big == ["encode prompts"] and plan.settings.device == "cuda" and not current.acceleration.load_text_encoder_in_8bit:
        current = apply(current, {"acceleration.load_text_encoder_in_8bit": True})
        fixes.append("acceleration.load_text_encoder_in_8bit true")
        too_big = side_too_big(current)
    if too_big:
        current = apply(current, {"validation.interval": None})
        fixes.append("validation.interval null (no validation videos; or smaller validation.video_dims)")
    largest = max(buckets, key=lambda b: b[0] * b[1] * b[2])
    f, h, w = largest

    def fits_tokens(t: int) -> bool:
        return plan_of(current, [(1, 1, t)]).fits(budget)

    fits = plan_of(current).fits(budget)
    if not fits and fits_tokens(1):
        lo, hi = 1, f * h * w
        while lo < hi:  # the most tokens per sample that fit
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits_tokens(mid) else (lo, mid - 1)
        scale = (lo / (f * h * w)) ** 0.5
        example = PlanBucket.from_latent((f, max(1, int(h * scale)), max(1, int(w * scale))), family, token_factor)
        now = PlanBucket.from_latent(largest, family, token_factor)
        fixes.append(f"resolution buckets of at most {lo * token_factor} tokens per sample, e.g. {example.label} "
                     f"(the largest now is {now.label}: {now.tokens} tokens)")
        fits = True
    text = (f"memory.budget_gb: the run does not fit in {gb(budget)} GB ({source}). Even with {name}, the memory plan "
            f"needs {gb(plan.needed)} GB at its peak ({peak.name}: {gb(peak.gpu_total)} GB allocated, plus the CUDA "
            "context and allocator slack).")
    if fits and fixes:
        text += " It would fit with " + ("all of: " if len(fixes) > 1 else "") + "; ".join(fixes) + "."
    else:
        text += " It cannot fit even with the smallest buckets and no validation: the weights alone are too large."
    text += f" Or give it a GPU with at least {gb(plan.needed)} GB free (memory.budget_gb)."
    if skipped:
        text += " Not tried: " + "; ".join(skipped) + "."
    return text


# ---------------------------------------------------------------------------------------------------- the trainer


def pinned_from_previous_run(output_dir: Path) -> dict[str, Any]:
    """The math-changing settings an interrupted run in ``output_dir`` chose (from its training_config.yaml), when a
    checkpoint of it exists: a resume must keep them."""
    from ltx_train_lib.config import load_config
    from ltx_train_lib.errors import LtxTrainError
    from ltx_train_lib.training import checkpoint as ckpt

    previous = output_dir / "training_config.yaml"
    if ckpt.latest_state_checkpoint(output_dir) is None or not previous.is_file():
        return {}
    try:
        prev = load_config(previous)
    except LtxTrainError:
        return {}
    return {dotted: _get(prev, dotted) for dotted in PINNED_ON_RESUME}


def fit_for_training(cfg: TrainerConfig, family: ModelFamily, dataset: Any, *, device: str, output_dir: Path,
                     token_factor: int = 1, world_size: int = 1) -> Resolution:
    """What the trainer calls before loading anything when ``memory.budget_gb`` is set: the recipe for this run on
    ``dataset`` (its samples' shapes are the buckets). With several processes the smallest free memory counts."""
    from ltx_train_lib.memory.plan import config_buckets

    budget, source = budget_bytes(cfg, device)
    if budget is not None and world_size > 1 and cfg.memory.budget_gb == "auto":
        from accelerate.utils import gather_object

        budget = min(gather_object([budget]))
    buckets, _where = config_buckets(cfg, family, dataset=dataset)
    pinned = pinned_from_previous_run(output_dir)
    if pinned:
        cfg = apply(cfg, pinned)
    resolution = resolve(cfg, family, buckets, device=device, budget=budget, budget_source=source,
                         token_factor=token_factor, pinned=pinned)
    if budget is None:
        resolution.notes.append(source)
    return resolution
