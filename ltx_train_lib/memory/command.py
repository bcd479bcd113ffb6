"""``scripts/train.py CONFIG --plan``: the memory plan of a config, printed without loading any weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ltx_train_lib.config import TrainerConfig


def token_factor(cfg: TrainerConfig, family) -> int:
    """How many times a sample's latent tokens the transformer sees: twice when the strategy prepends reference
    latents of the same size (IC-LoRA)."""
    from ltx_train_lib.training.strategy import build_strategy

    strategy = build_strategy(cfg.conditioning, cfg.flow_matching, family, data=cfg.data)
    return 2 if strategy.uses_reference_videos else 1


def plan_command(cfg: TrainerConfig, *, buckets: list[str] | None = None, device: str | None = None) -> int:
    """Print the plan (and, with ``memory.budget_gb``, the recipe the trainer would pick); 0 when the run fits or no
    budget is set. A budget no recipe meets raises :class:`~ltx_train_lib.memory.budget.MemoryBudgetError`."""
    import torch
    from rich.console import Console

    from ltx_train_lib.memory.budget import budget_bytes, resolve
    from ltx_train_lib.memory.plan import config_buckets, load_profile
    from ltx_train_lib.memory.report import print_plan
    from ltx_train_lib.models.registry import family_for_source

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    family = family_for_source(cfg.model.model_source)
    shapes, where = config_buckets(cfg, family, override=buckets)
    budget, source = budget_bytes(cfg, device)
    resolution = resolve(cfg, family, shapes, device=device, budget=budget, budget_source=source,
                         profile=load_profile(cfg, family), token_factor=token_factor(cfg, family))
    if budget is None and cfg.memory.budget_gb is not None:
        resolution.notes.append(source)
    import shutil

    print_plan(resolution.plan, Console(width=max(shutil.get_terminal_size((120, 40)).columns, 110)), buckets_from=where,
               resolution=resolution)
    if resolution.config is not cfg:
        from ltx_train_lib.memory.budget import PINNED_ON_RESUME

        changed = [f"{k} {v!r}" for k, v in _changes(cfg, resolution.config, (*PINNED_ON_RESUME, "memory.blocks_to_swap",
                                                                             "acceleration.compile_with_inductor"))]
        print("the trainer would train with: " + ", ".join(changed))
    return 0


def _changes(before: TrainerConfig, after: TrainerConfig, keys) -> list[tuple[str, object]]:
    out = []
    for dotted in keys:
        section, name = dotted.split(".")
        value = getattr(getattr(after, section), name)
        if getattr(getattr(before, section), name) != value:
            out.append((dotted, value))
    return out
