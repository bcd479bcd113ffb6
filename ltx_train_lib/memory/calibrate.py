"""Calibrating a family's activation coefficients: measure training steps and sampling forwards of random
architectures on CPU, then fit bytes per term by least squares.

A family's driver (``bench/calibrate_activations.py`` for LTX-Video) builds small random transformers, a batch of
the family's shapes, calls :func:`measure_training` / :func:`measure_sampling` and :func:`fit` on the terms its
:class:`~ltx_train_lib.memory.profile.LinearActivations` uses, and keeps the printed table in its profile. The
measurements run the standard flow-matching objective (the trainer's own loss) through the family's ``predict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch

from ltx_train_lib.memory.measure import LiveTensors, SavedBytes, saved_tensor_bytes

if TYPE_CHECKING:
    from ltx_train_lib.models.family import ForwardInputs, ModelFamily


def _autocast(amp: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if amp else nullcontext()


def training_loss(family: ModelFamily, model: torch.nn.Module, batch: dict, amp: bool, model_dtype: torch.dtype) -> torch.Tensor:
    from ltx_train_lib.training.strategy import flow_matching_loss

    generator = torch.Generator().manual_seed(0)
    with _autocast(amp):
        return flow_matching_loss(model, batch, generator, sampling_mode="shifted_logit_normal", sampling_params={},
                                  first_frame_p=0.0, device=torch.device("cpu"), model_dtype=model_dtype,
                                  family=family).loss


def measure_training(family: ModelFamily, model: torch.nn.Module, batch: dict, *, amp: bool, model_dtype: torch.dtype,
                     checkpointing: bool) -> SavedBytes:
    """What autograd keeps after one training forward (and its loss) of ``model`` on ``batch``."""
    saved, _loss_value = saved_tensor_bytes(
        family.blocks(model), lambda: training_loss(family, model, batch, amp, model_dtype),
        exclude=[*model.parameters(), *model.buffers()], checkpointing=checkpointing,
    )
    return saved


def measure_step_peak(family: ModelFamily, model: torch.nn.Module, batch: dict, *, amp: bool,
                      model_dtype: torch.dtype) -> tuple[int, int]:
    """(bytes alive after the forward, peak bytes alive during forward and backward) of the tensors the step
    creates (gradients included; the weights are not)."""
    live = LiveTensors()
    with live:
        loss = training_loss(family, model, batch, amp, model_dtype)
        after_forward = live.current
        loss.backward()
    return after_forward, live.peak


def measure_sampling(family: ModelFamily, model: torch.nn.Module, inputs: ForwardInputs, *, amp: bool,
                     model_dtype: torch.dtype) -> int:
    """Peak bytes of the tensors one no-grad forward holds at once (its output included)."""
    live = LiveTensors()
    with torch.no_grad(), _autocast(amp), live:
        family.predict(model, inputs, device=torch.device("cpu"), dtype=model_dtype)
    return live.peak


def fit(rows: Sequence[tuple[Mapping[str, float], float]]) -> tuple[dict[str, float], float]:
    """Least-squares bytes per term for ``rows`` of (term values, measured bytes); returns the coefficients (terms
    that are zero in every row left out) and the largest relative error of the fit over the rows."""
    import numpy as np

    names = sorted({name for terms, _ in rows for name in terms})
    x = np.array([[float(terms.get(n, 0.0)) for n in names] for terms, _ in rows])
    y = np.array([float(measured) for _, measured in rows])
    used = np.abs(x).sum(axis=0) > 0
    coef = np.zeros(len(names))
    if used.any():
        coef[used] = np.linalg.lstsq(x[:, used], y, rcond=None)[0]
    pred = x @ coef
    err = float(np.max(np.abs(pred - y) / np.maximum(np.abs(y), 1.0))) if len(y) else 0.0
    return {n: round(float(c), 3) for n, c, u in zip(names, coef, used, strict=True) if u and abs(c) > 1e-6}, err


def describe(values: Any) -> str:
    """A coefficient table as Python source (what the family's profile keeps)."""
    lines = ["{"]
    for key in sorted(values):
        inner = ", ".join(f'"{k}": {v:g}' for k, v in sorted(values[key].items()))
        lines.append(f'    "{key}": {{{inner}}},')
    lines.append("}")
    return "\n".join(lines)
