"""Learning-rate schedules as pure functions of the optimizer step (so resume only needs the step)."""

from __future__ import annotations

import math
from typing import Any

from ltx_train_lib.errors import ConfigError

_ALLOWED = {
    "constant": set(),
    "linear": {"start_factor", "end_factor"},
    "cosine": {"eta_min"},
    "cosine_with_restarts": {"T_0", "T_mult", "eta_min"},
    "polynomial": {"power", "lr_end"},
}


def lr_factor(kind: str, params: dict[str, Any], step: int, total: int, base_lr: float, warmup: int = 0) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based).

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
    if warmup > 0 and step < warmup:
        factor *= (step + 1) / warmup
    return factor
