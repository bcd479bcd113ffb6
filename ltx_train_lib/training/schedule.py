"""Learning-rate schedules as pure functions of the optimizer step (so resume only needs the step), and the clock
that keeps the learning rate continuous when a resumed run changes ``optimization.steps``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ltx_train_lib.errors import ConfigError

_ALLOWED = {
    "constant": set(),
    "linear": {"start_factor", "end_factor"},
    "cosine": {"eta_min"},
    "cosine_with_restarts": {"T_0", "T_mult", "eta_min"},
    "polynomial": {"power", "lr_end"},
}


def lr_factor(kind: str, params: dict[str, Any], step: float, total: int, base_lr: float, warmup: int = 0) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based; a fraction on a re-based clock).

    Matches the reference's torch schedulers: linear 1.0 -> 0.1, cosine to 0, cosine with restarts
    (T_0 = steps // 4, eta_min 5e-5), polynomial power 1; plus an optional linear warmup (our addition).
    """
    if kind not in _ALLOWED:
        raise ConfigError(f"optimization.scheduler_type: unknown '{kind}'; use one of {sorted(_ALLOWED)}")
    unknown = set(params) - _ALLOWED[kind]
    if unknown:
        raise ConfigError(f"optimization.scheduler_params: unknown key(s) {sorted(unknown)} for {kind}; allowed: {sorted(_ALLOWED[kind]) or 'none'}")
    total = max(total, 1)
    if kind == "constant":
        factor = 1.0
    elif kind == "linear":
        start, end = float(params.get("start_factor", 1.0)), float(params.get("end_factor", 0.1))
        factor = start + (end - start) * min(step, total) / total
    elif kind == "cosine":
        eta = float(params.get("eta_min", 0.0)) / base_lr
        factor = eta + (1 - eta) * (1 + math.cos(math.pi * min(step, total) / total)) / 2
    elif kind == "cosine_with_restarts":
        t0 = max(int(params.get("T_0", max(total // 4, 1))), 1)
        t_mult = int(params.get("T_mult", 1))
        eta = float(params.get("eta_min", 5e-5)) / base_lr
        t_cur, period = step, t0
        while t_cur >= period:
            t_cur -= period
            period *= max(t_mult, 1)
        factor = eta + (1 - eta) * (1 + math.cos(math.pi * t_cur / period)) / 2
    else:  # polynomial
        power = float(params.get("power", 1.0))
        end = float(params.get("lr_end", 0.0)) / base_lr
        factor = (1 - min(step, total) / total) ** power * (1 - end) + end
    return factor * warmup_factor(step, warmup)


def warmup_factor(step: float, warmup: int) -> float:
    """The linear warmup's multiplier: (step + 1) / warmup over the first ``warmup`` steps, then 1."""
    return (step + 1) / warmup if warmup > 0 and step < warmup else 1.0


@dataclass(frozen=True)
class ScheduleClock:
    """Maps the optimizer step to the position in the schedule planned for ``total`` steps.

    A fresh run is the identity. When a run is resumed at step ``s0`` with ``optimization.steps`` changed to ``T'``,
    the schedule is *re-based*: the part not yet run, from its position ``p0`` at ``s0`` to its end ``total``, is
    stretched (or squeezed) linearly over the real steps ``s0 .. T'``::

        position(s) = p0 + (s - s0) * (total - p0) / (T' - s0)        for s >= s0

    so the learning rate is continuous at the resume step and reaches the schedule's end value at the new total. The
    warmup stays in real steps (``warmup_steps`` is a step count, not a share of the run). Re-basing again composes
    (``p0`` is then the re-based position); the clock is saved in every checkpoint. A run resumed after it already
    reached its end (``p0 == total``) stays at the end value for the added steps.
    """

    total: int  # the steps the schedule's shape was planned for (the first run's optimization.steps)
    anchor: int = 0  # real step from which the current mapping applies
    anchor_position: float = 0.0  # schedule position at ``anchor``
    end: int | None = None  # real step at which the position reaches ``total``; None: no re-basing (end == total)

    @property
    def end_step(self) -> int:
        return self.total if self.end is None else self.end

    @property
    def is_identity(self) -> bool:
        return self.end is None

    def position(self, step: int) -> float:
        if self.end is None:
            return step
        if step <= self.anchor or self.end <= self.anchor:
            return self.anchor_position
        return min(self.anchor_position + (step - self.anchor) * (self.total - self.anchor_position) / (self.end - self.anchor),
                   float(self.total))

    def rebased(self, step: int, new_end: int) -> ScheduleClock:
        """The clock of a run resumed at ``step`` that now ends at ``new_end`` (> ``step``)."""
        if new_end <= step:
            raise ValueError(f"cannot re-base a schedule at step {step} to end at step {new_end}")
        if new_end == self.end_step:
            return self
        return ScheduleClock(self.total, step, self.position(step), new_end)

    def factor(self, kind: str, params: dict[str, Any], step: int, base_lr: float, warmup: int = 0) -> float:
        """The learning-rate multiplier for optimizer step ``step`` (0-based), as :func:`lr_factor` on the clock."""
        if self.end is None:
            return lr_factor(kind, params, step, self.total, base_lr, warmup)
        return lr_factor(kind, params, self.position(step), self.total, base_lr) * warmup_factor(step, warmup)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any] | None, total: int) -> ScheduleClock:
        """A saved clock; ``None`` (a checkpoint written before clocks were saved) is the identity for ``total``."""
        if not state:
            return cls(total)
        return cls(int(state["total"]), int(state["anchor"]), float(state["anchor_position"]),
                   None if state.get("end") is None else int(state["end"]))
