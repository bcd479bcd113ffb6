"""The LoRA health gate: does a LoRA hold numbers (no NaN/Inf) and does it change the model at all?

A LoRA module adds ``scale * lora_B @ lora_A`` to a weight. The scan looks at every tensor of a LoRA state dict or
``.safetensors`` file, in any key layout (peft, diffusers ``transformer.``, ComfyUI ``diffusion_model.`` with
``lora_down/lora_up`` and ``.alpha``), and reports:

- **non-finite tensors**: any NaN or Inf value. Always a failure: ComfyUI would turn every frame into noise or black.
- **zero modules**: modules whose update is exactly zero (``lora_B`` or ``lora_A`` all zero, or ``alpha`` 0, and no
  non-zero ``lora_B`` bias). A fresh peft LoRA has ``lora_B = 0`` by design, so at step 0 this is expected and not
  reported. After training steps some zero modules are a warning (their gradient never reached them); *every* module
  zero means the LoRA does nothing, which is a failure where an update is required (``require_update``: the final
  weights of a run, and any file whose header says it was trained). The trainer does not require it at intermediate
  checkpoints: fp16 loss scaling may skip the first optimizer steps.

What the trainer does with the report (see ``Trainer._check_health``): every saved LoRA (each checkpoint and the
final pair) is scanned before anything is written; the result goes into the safetensors header under
:data:`HEALTH_KEY` and into a ``health`` event. An unhealthy LoRA is never written: the run stops with a
``TrainingError`` (CLI exit status 2) naming the tensors and the fix, and the last healthy checkpoint is kept. The
Hub push (:func:`check_files`) and ConvertComfy refuse a file whose scan fails.

:func:`comfy_key_check` is the other half of "healthy": which keys of a ComfyUI-layout file ComfyUI's own key map
for a model would not load (the ComfyUI side is in ``nodes/comfy.py``, the only module that imports ComfyUI).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ltx_train_lib.errors import LtxTrainError

if TYPE_CHECKING:
    from torch import Tensor

HEALTH_KEY = "ltx_trainer_health"  # safetensors header entry: the compact JSON of LoraHealth.to_metadata()
STEPS_KEY = "training_steps"  # the header entry outputs.weights_metadata writes
# How many names a message or a header lists before it says "... (N in all)"; the report itself keeps them all.
NAMES_SHOWN = 5
NAMES_STORED = 20
FIX_NONFINITE = (
    "lower optimization.learning_rate, keep gradient clipping on (optimization.max_grad_norm > 0), train in bf16 "
    "rather than fp16 (acceleration.mixed_precision_mode: bf16), and check the dataset for broken latents "
    "(scripts/decode_latents.py)"
)
FIX_ZERO = (
    "check that lora.target_modules name layers the model uses, that optimization.learning_rate is not tiny, and "
    "that the loss changes over the steps (fp16 loss scaling skipping every step also leaves the LoRA at zero)"
)

# <module>.<lora_A|lora_B|lora_down|lora_up>[.<adapter>].<weight|bias> and <module>.alpha (export.py's layouts)
_LORA_PART = re.compile(
    r"^(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_down|lora_up)(?:\.(?P<adapter>[^.]+))?\.(?P<param>weight|bias)$"
)
_DOWN, _UP = ("lora_A", "lora_down"), ("lora_B", "lora_up")


class LoraHealthError(LtxTrainError):
    """A LoRA file holds NaN/Inf values or does nothing; it must not be published or loaded."""


class TensorStats(BaseModel):
    """What the scan needs of one tensor (so a file is read one tensor at a time)."""

    model_config = ConfigDict(frozen=True)
    nonfinite: int = 0  # NaN or +/-Inf values
    all_zero: bool = False
    numel: int = 0


def tensor_stats(t: Tensor) -> TensorStats:
    import torch

    if t.is_floating_point() or t.is_complex():
        nonfinite = int((~torch.isfinite(t)).sum().item())
    else:
        nonfinite = 0
    return TensorStats(nonfinite=nonfinite, all_zero=t.numel() > 0 and not bool(t.any().item()), numel=t.numel())


class LoraHealth(BaseModel):
    """The scan's verdict. ``ok`` is False exactly when ``problems`` is not empty."""

    model_config = ConfigDict(frozen=True)

    ok: bool = Field(description="No NaN/Inf tensor, and (where an update is required) at least one module changes the model.")
    step: int | None = Field(None, description="Training step of the weights (the header's training_steps); None when unknown.")
    tensors: int = Field(description="Tensors scanned.")
    modules: int = Field(description="LoRA modules found (lora_A/lora_B pairs).")
    nonfinite: dict[str, int] = Field(default_factory=dict, description="Tensor name -> number of NaN/Inf values.")
    zero_modules: list[str] = Field(default_factory=list, description="Modules whose update is exactly zero.")
    problems: list[str] = Field(default_factory=list, description="Why the LoRA is unhealthy (empty when ok).")
    warnings: list[str] = Field(default_factory=list, description="Worth knowing, not a failure.")

    def summary(self) -> str:
        """One line for a node's text, the model card and the CLI."""
        at = f" at step {self.step}" if self.step is not None else ""
        if not self.ok:
            return f"LoRA health: FAILED{at}: " + "; ".join(self.problems)
        text = f"LoRA health: ok{at} ({self.tensors} tensors, {self.modules} modules, no NaN/Inf"
        if self.zero_modules and not self.warnings:
            text += ", lora_B still zero as initialised"
        text += ")"
        return text + ("; " + "; ".join(self.warnings) if self.warnings else "")

    def failure_message(self, source: str) -> str:
        """``source``: what was scanned (a file, "the LoRA at step 40"). Names the tensors and the fix."""
        fixes = []
        if self.nonfinite:
            fixes.append(FIX_NONFINITE)
        if any("changes the model" in p for p in self.problems):
            fixes.append(FIX_ZERO)
        return f"{source}: LoRA health check failed: " + "; ".join(self.problems) + ". To fix: " + "; ".join(fixes)

    def to_metadata(self) -> str:
        """The header value: compact JSON with at most NAMES_STORED names per list (the counts stay exact)."""
        data = self.model_dump()
        data["nonfinite_tensors"] = len(self.nonfinite)
        data["nonfinite"] = dict(list(self.nonfinite.items())[:NAMES_STORED])
        data["zero_module_count"] = len(self.zero_modules)
        data["zero_modules"] = self.zero_modules[:NAMES_STORED]
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str] | None) -> LoraHealth | None:
        """The report a file's header carries, or None (no entry, or one this version cannot read)."""
        raw = (metadata or {}).get(HEALTH_KEY)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls.model_validate({k: v for k, v in data.items() if k in cls.model_fields})
        except (ValueError, TypeError):
            return None


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > NAMES_SHOWN else "")


def _module_of(key: str) -> tuple[str, str] | None:
    """(module, part) of a LoRA key: part is "down", "up", "up_bias", "down_bias" or "alpha"; None for other keys."""
    key = key.replace("_orig_mod.", "")
    if key.endswith(".alpha"):
        return key[: -len(".alpha")], "alpha"
    m = _LORA_PART.match(key)
    if m is None:
        return None
    side = "down" if m["kind"] in _DOWN else "up"
    return m["module"], side if m["param"] == "weight" else f"{side}_bias"


def scan_stats(
    stats: Iterable[tuple[str, TensorStats]],
    *,
    step: int | None = None,
    require_update: bool | None = None,
) -> LoraHealth:
    """The verdict from per-tensor stats (``(name, stats)`` in file order; an ``.alpha`` of 0 is an all-zero
    tensor). ``require_update`` None: required when ``step`` > 0."""
    if require_update is None:
        require_update = bool(step and step > 0)
    nonfinite: dict[str, int] = {}
    parts: dict[str, dict[str, TensorStats]] = {}
    count = 0
    for name, st in stats:
        count += 1
        if st.nonfinite:
            nonfinite[name] = st.nonfinite
        found = _module_of(name)
        if found is not None:
            module, part = found
            parts.setdefault(module, {})[part] = st
    modules = {m: p for m, p in parts.items() if "down" in p and "up" in p}
    zero = sorted(
        m
        for m, p in modules.items()
        if (p["down"].all_zero or p["up"].all_zero or p.get("alpha", TensorStats()).all_zero)
        and ("up_bias" not in p or p["up_bias"].all_zero)
    )
    problems: list[str] = []
    warnings: list[str] = []
    if nonfinite:
        values = sum(nonfinite.values())
        problems.append(f"{len(nonfinite)} tensor(s) hold NaN/Inf values ({values} values): {_names(list(nonfinite))}")
    if count == 0 or not modules:
        problems.append("no LoRA modules found (no lora_A/lora_B or lora_down/lora_up pairs); this is not a LoRA file")
    elif zero and step is not None and step > 0:
        if len(zero) == len(modules) and require_update:
            problems.append(
                f"none of the {len(modules)} LoRA modules changes the model after {step} training steps (lora_B or "
                f"lora_A all zero in every one, e.g. {_names(zero)}): the LoRA does nothing"
            )
        else:
            warnings.append(f"{len(zero)} of {len(modules)} modules are still zero after {step} steps: {_names(zero)}")
    return LoraHealth(
        ok=not problems, step=step, tensors=count, modules=len(modules), nonfinite=nonfinite, zero_modules=zero,
        problems=problems, warnings=warnings,
    )


def _stats_of(items: Iterable[tuple[str, Tensor]]) -> Iterator[tuple[str, TensorStats]]:
    for name, t in items:
        yield name, tensor_stats(t)


def scan_state_dict(
    sd: Mapping[str, Tensor], *, step: int | None = None, require_update: bool | None = None
) -> LoraHealth:
    """Scan a LoRA state dict in any key layout (see the module docstring for ``require_update``)."""
    return scan_stats(_stats_of(sd.items()), step=step, require_update=require_update)


def _steps_of(metadata: Mapping[str, str]) -> int | None:
    try:
        return int(metadata[STEPS_KEY])
    except (KeyError, TypeError, ValueError):
        return None


def scan_file(path: str | Path, *, require_update: bool | None = None) -> LoraHealth:
    """Scan a ``.safetensors`` LoRA one tensor at a time (its header's ``training_steps`` is the step). An unreadable
    file is a :class:`LoraHealthError` naming it."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            # One tensor in memory at a time: a 13B LoRA of high rank is large.
            stats = [(key, tensor_stats(f.get_tensor(key))) for key in f.keys()]  # noqa: SIM118 - no iteration
    except Exception as exc:  # safetensors raises its own error types, OSError or ValueError
        raise LoraHealthError(
            f"{path}: cannot be read as safetensors ({type(exc).__name__}: {exc}); pass the LoRA's .safetensors file"
        ) from None
    return scan_stats(stats, step=_steps_of(metadata), require_update=require_update)


def check_files(paths: Iterable[str | Path], *, action: str) -> list[LoraHealth]:
    """Scan each file; raise :class:`LoraHealthError` for the first that fails. ``action`` says what is refused
    ("upload to the Hub")."""
    reports = []
    for path in paths:
        report = scan_file(path)
        if not report.ok:
            raise LoraHealthError(
                report.failure_message(str(path)) + f". Refusing to {action}: retrain (a run stops at the first "
                "unhealthy save and keeps its last healthy checkpoint)"
            )
        reports.append(report)
    return reports


# ------------------------------------------------------------------------------------------- ComfyUI's key map


class ComfyKeyCheck(BaseModel):
    """Which keys of a LoRA file ComfyUI would load into a model (from ComfyUI's own key map and loader)."""

    model_config = ConfigDict(frozen=True)
    keys: int = Field(description="Keys in the file.")
    modules: int = Field(description="LoRA modules in the file.")
    not_loaded: list[str] = Field(default_factory=list, description="File keys that would patch no model weight.")

    @property
    def ok(self) -> bool:
        return not self.not_loaded

    def summary(self) -> str:
        if self.ok:
            return f"ComfyUI key check: all {self.keys} keys load ({self.modules} modules)"
        return f"ComfyUI key check: {len(self.not_loaded)} of {self.keys} keys would not load: {_names(self.not_loaded)}"


# Suffixes of a ComfyUI LoRA key after its module path (the parts comfy/lora.py and its weight adapters read).
COMFY_LORA_SUFFIXES = (
    ".lora_A.weight", ".lora_B.weight", ".lora_down.weight", ".lora_up.weight", ".lora_mid.weight", ".alpha",
    ".dora_scale", ".lora_A.bias", ".lora_B.bias", ".lora_up.bias", ".lora_down.bias",
)


def lora_file_modules(keys: Iterable[str]) -> dict[str, list[str]]:
    """Module prefix (as ComfyUI's key map names it) -> the file keys that belong to it."""
    modules: dict[str, list[str]] = {}
    for key in keys:
        prefix = next((key[: -len(s)] for s in COMFY_LORA_SUFFIXES if key.endswith(s)), key)
        modules.setdefault(prefix, []).append(key)
    return modules


def comfy_key_check(
    file_keys: Iterable[str], key_map: Mapping[str, Any], patched: Iterable[Any], model_keys: Iterable[str] | None = None
) -> ComfyKeyCheck:
    """The keys that would not load: their module is not in ComfyUI's ``key_map`` (``model_lora_keys_unet``), the
    loader (``load_lora``) made no patch for its target, or the target is not a weight of the model (``model_keys``,
    what ``ModelPatcher.add_patches`` checks; a target may be ``(key, slice)`` for fused weights)."""
    keys = list(file_keys)
    patched_set = set(patched)
    present = set(model_keys) if model_keys is not None else None
    missing: list[str] = []
    modules = lora_file_modules(keys)
    for prefix, members in modules.items():
        target = key_map.get(prefix)
        weight = target[0] if isinstance(target, tuple) else target
        if target is None or target not in patched_set or (present is not None and weight not in present):
            missing.extend(members)
    return ComfyKeyCheck(keys=len(keys), modules=len(modules), not_loaded=sorted(missing))
