"""Sigma (noise level) samplers for flow matching."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ltx_train_lib.errors import ConfigError


def sample_sigmas(mode: str, params: dict, batch_size: int, num_tokens: int, generator: torch.Generator,
                  shift_for_tokens: Callable[[int], float] | None = None) -> torch.Tensor:
    """One sigma per sample in [0, 1].

    ``shifted_logit_normal``: sigmoid(N(shift, std)) with the model family's token-count shift (``shift_for_tokens``;
    default the LTX-Video family's: linear, 0.95 at 1024 tokens, 2.05 at 4096, not clamped). ``uniform``:
    U(min_value, max_value).
    """
    if mode == "shifted_logit_normal":
        unknown = set(params) - {"std", "shift"}
        if unknown:
            raise ConfigError(f"flow_matching.timestep_sampling_params: unknown key(s) {sorted(unknown)} for shifted_logit_normal; use 'std' (and optionally 'shift')")
        std = float(params.get("std", 1.0))
        if "shift" in params:
            shift = float(params["shift"])
        else:
            if shift_for_tokens is None:
                from ltx_train_lib.models.registry import DEFAULT_FAMILY, get_family

                shift_for_tokens = get_family(DEFAULT_FAMILY).sigma_shift
            shift = float(shift_for_tokens(num_tokens))
        normal = torch.randn(batch_size, generator=generator) * std + shift
        return torch.sigmoid(normal)
    if mode == "uniform":
        unknown = set(params) - {"min_value", "max_value"}
        if unknown:
            raise ConfigError(f"flow_matching.timestep_sampling_params: unknown key(s) {sorted(unknown)} for uniform; use min_value/max_value")
        lo, hi = float(params.get("min_value", 0.0)), float(params.get("max_value", 1.0))
        return torch.rand(batch_size, generator=generator) * (hi - lo) + lo
    raise ConfigError(f"flow_matching.timestep_sampling_mode: unknown mode '{mode}'; use shifted_logit_normal or uniform")
