"""The memory plan as a table (rich) for ``scripts/train.py CONFIG --plan``, and as one line for logs and nodes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ltx_train_lib.memory.plan import ALLOCATOR_SLACK, CONTEXT_BYTES, GPU_PARTS, RAM_PARTS, MemoryPlan, gb

if TYPE_CHECKING:
    from rich.console import Console

    from ltx_train_lib.memory.budget import Resolution


def _cell(n: int | None) -> str:
    return "" if not n else gb(n)


_SHORT = {"weights": "weights", "trainable": "trainable", "gradients": "grads", "optimizer": "optim.",
          "activations": "activ.", "text encoder": "text enc.", "VAE": "VAE", "process": "process",
          "quantized": "quantized", "swapped blocks": "swapped"}


def plan_tables(plan: MemoryPlan):
    """(GPU table, RAM table): one row per phase, one column per part that is ever non-zero, GB."""
    from rich.table import Table

    peak = plan.peak_gpu_phase
    out = []
    for title, parts, pick, total in (("GPU memory (GB)", GPU_PARTS, lambda ph: ph.gpu, lambda ph: ph.gpu_total),
                                      ("system RAM (GB)", RAM_PARTS, lambda ph: ph.ram, lambda ph: ph.ram_total)):
        used = [p for p in parts if any(pick(ph).get(p) for ph in plan.phases)]
        table = Table(title=title, title_justify="left")
        table.add_column("phase", no_wrap=True)
        for part in used:
            table.add_column(_SHORT[part], justify="right")
        table.add_column("total", justify="right", style="bold")
        for phase in plan.phases:
            name = phase.name + (" (peak)" if phase is peak and title.startswith("GPU") else "")
            table.add_row(name, *(_cell(pick(phase).get(p)) for p in used), gb(total(phase)),
                          style=None if phase.chosen else "dim")
        out.append(table)
    return out


def print_plan(plan: MemoryPlan, console: Console, *, buckets_from: str = "", resolution: Resolution | None = None) -> None:
    s = plan.settings
    console.print(f"[bold]{plan.architecture}[/bold] on {s.device}: {s.describe()}")
    if buckets_from:
        console.print(f"buckets from {buckets_from}")
    for table in plan_tables(plan):
        console.print(table)
    peak = plan.peak_gpu_phase
    console.print(
        f"GPU peak: {gb(plan.peak_gpu)} GB allocated in '{peak.name}'; with the CUDA context ({gb(CONTEXT_BYTES)} GB) "
        f"and {ALLOCATOR_SLACK:.0%} allocator slack the run needs [bold]{gb(plan.needed)} GB[/bold]. "
        f"RAM peak: {gb(plan.peak_ram)} GB ('{plan.peak_ram_phase.name}')."
    )
    accuracy = (f"activations within {plan.activation_tolerance:.0%} of measurement (CPU, saved tensors)"
                if plan.activations_calibrated else f"activations rough (+-{plan.activation_tolerance:.0%}): not calibrated")
    console.print(f"Weights, gradients and optimizer state are exact; {accuracy}; dim rows: the other gradient "
                  "checkpointing setting.")
    for note in plan.notes:
        console.print(f"note: {note}")
    if resolution is not None:
        console.print(resolution.summary)
        for note in resolution.notes:
            console.print(f"note: {note}")
