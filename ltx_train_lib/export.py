"""LoRA and full-model weights: key conversion between the diffusers/peft and ComfyUI layouts, and saving.

Module names come from the model family (``ModelFamily.to_comfy_path`` / ``to_diffusers_path``); every function takes
an optional ``family`` and defaults to the LTX-Video family, whose files were the only kind before there was a
second. Layouts:

- ``peft_lora``: ``get_peft_model_state_dict`` output, ``transformer_blocks.0.attn1.to_q.lora_A.weight`` (maybe with
  ``base_model.model.``, ``_orig_mod.`` or ``.lora_A.default.weight``).
- ``diffusers_lora``: ``transformer.<module>.lora_A.weight`` / ``.lora_B.weight``; what
  diffusers' ``load_lora_weights`` loads. diffusers rejects ``.alpha`` keys, so its alpha/rank scale lives in the
  ``lora_adapter_metadata`` header.
- ``comfy_lora``: ``diffusion_model.<module>.lora_A/lora_B.weight`` (or ``lora_down/lora_up``) plus optional
  ``diffusion_model.<module>.alpha``. ComfyUI scales by alpha/rank and by 1.0 when ``.alpha`` is missing.
- ``diffusers_full``: the transformer's ``state_dict()`` (unprefixed, as the reference trainer saves it).
- ``comfy_full``: ``model.diffusion_model.<module>`` as in Lightricks' single-file checkpoints.

For LTX-Video, module names differ only at the top level (``proj_in``/``patchify_proj``, ``time_embed``/
``adaln_single``) and in the attention norms (``norm_q``/``q_norm``, ``norm_k``/``k_norm``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ltx_train_lib.errors import ConversionError
from ltx_train_lib.fileio import atomic_path

if TYPE_CHECKING:
    from torch import Tensor

    from ltx_train_lib.models.family import ModelFamily

logger = logging.getLogger(__name__)

Layout = Literal["diffusers_lora", "comfy_lora", "peft_lora", "diffusers_full", "comfy_full"]
Side = Literal["comfy", "diffusers"]

DIFFUSERS_PREFIX = "transformer."  # diffusers LoRA files of every LTX family
COMFY_PREFIX = "diffusion_model."  # what ComfyUI's LoRA loader maps onto its diffusion model
COMFY_FULL_PREFIX = "model." + COMFY_PREFIX  # Lightricks single-file checkpoints, ComfyUI's diffusion_models loader
ACCEPTED_LAYOUTS_HELP = (
    "accepted layouts: diffusers LoRA (transformer.<module>.lora_A/lora_B.weight), "
    "ComfyUI LoRA (diffusion_model.<module>.lora_A/lora_B or lora_down/lora_up .weight, optional .alpha), "
    "peft LoRA (<module>.lora_A/lora_B.weight), "
    "diffusers full transformer (transformer_blocks.N..., proj_in..., time_embed...), "
    "ComfyUI full transformer (model.diffusion_model.transformer_blocks.N..., patchify_proj..., adaln_single...)"
)


# <module>.<lora_A|lora_B|lora_down|lora_up>[.<adapter name>].<weight|bias>
_LORA_KEY = re.compile(
    r"^(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_down|lora_up)(?:\.(?P<adapter>[^.]+))?\.(?P<param>weight|bias)$"
)
_KIND_TO_PEFT = {"lora_A": "lora_A", "lora_B": "lora_B", "lora_down": "lora_A", "lora_up": "lora_B"}
# Parts of a ComfyUI LoRA we cannot express in diffusers/peft; named in the error instead of being dropped.
_UNSUPPORTED_LORA_PARTS = ("lora_mid", "dora_scale", "diff", "diff_b", "set_weight", "reshape_weight")
# Non-transformer parts of a single-file checkpoint (VAE, text encoders) that a transformer conversion drops.
_CHECKPOINT_OTHER_PREFIXES = (
    "vae.",
    "text_encoders.",
    "text_encoder.",
    "cond_stage_model.",
    "first_stage_model.",
    "conditioner.",
)

LORA_SUFFIX_COMFY = "_comfy"
LORA_SUFFIX_DIFFUSERS = "_diffusers"
META_LAYOUT = "ltx_trainer_layout"
META_CONVERTED_FROM = "ltx_trainer_converted_from"
LORA_ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # diffusers.loaders.lora_base.LORA_ADAPTER_METADATA_KEY


# --------------------------------------------------------------------------------------------------------------------
# Key helpers
# --------------------------------------------------------------------------------------------------------------------


def _strip_wrappers(key: str) -> str:
    """Drop torch.compile (``_orig_mod.``, also inside blocks compiled one by one), DDP and peft wrapper fragments."""
    key = key.replace("_orig_mod.", "")
    key = key.removeprefix("module.")
    while key.startswith("base_model.model."):
        key = key[len("base_model.model.") :]
    return key


def _family(family: ModelFamily | None) -> ModelFamily:
    from ltx_train_lib.models.registry import DEFAULT_FAMILY, get_family

    return family or get_family(DEFAULT_FAMILY)


# Path segments only an audio-video (LTX-2) transformer has, in either layout.
_AUDIO_SEGMENTS = ("audio_attn1", "audio_attn2", "audio_ff", "audio_to_video_attn", "video_to_audio_attn",
                   "audio_proj_in", "audio_patchify_proj", "audio_time_embed", "audio_adaln_single")


def family_of_metadata(metadata: Mapping[str, str] | None, keys: Iterable[str] = ()) -> ModelFamily:
    """The family a file was trained on: the ``model_family`` header of our files; for other tools' files LTX-2
    when a tensor belongs to the audio stream, else the default family (their video-only names are the same)."""
    from ltx_train_lib.models.registry import DEFAULT_FAMILY, get_family

    named = (metadata or {}).get("model_family")
    if named:
        return get_family(named)
    if any(seg in _AUDIO_SEGMENTS for k in keys for seg in k.split(".")):
        return get_family("ltx2")
    return get_family(DEFAULT_FAMILY)


def to_comfy_path(name: str, family: ModelFamily | None = None) -> str:
    """diffusers module/parameter path (no prefix) -> ComfyUI path (no prefix)."""
    return _family(family).to_comfy_path(name)


def to_diffusers_path(name: str, family: ModelFamily | None = None) -> str:
    """ComfyUI module/parameter path (no prefix) -> diffusers path (no prefix)."""
    return _family(family).to_diffusers_path(name)


def _is_lora_key(key: str) -> bool:
    return (
        bool(_LORA_KEY.match(key))
        or key.endswith(".alpha")
        or any(key.endswith("." + p) for p in _UNSUPPORTED_LORA_PARTS)
    )


def _preview(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... ({len(keys)} keys)" if len(keys) > n else "")


def _parse_lora(sd: Mapping[str, Tensor], prefix: str | None, source: str) -> dict[str, dict[str, Tensor]]:
    """Group LoRA tensors by module: ``{module: {"lora_A.weight": t, "lora_B.weight": t, "alpha": t, ...}}``.

    ``prefix`` is stripped when present (keys without it are accepted too: peft keys are bare). Module names are kept
    in the input's naming; callers rename them.
    """
    modules: dict[str, dict[str, Tensor]] = {}
    unsupported: list[str] = []
    unknown: list[str] = []
    for raw_key, tensor in sd.items():
        key = _strip_wrappers(raw_key)
        if prefix and key.startswith(prefix):
            key = key[len(prefix) :]
        m = _LORA_KEY.match(key)
        if m:
            part = f"{_KIND_TO_PEFT[m['kind']]}.{m['param']}"
            module = m["module"]
        elif key.endswith(".alpha"):
            module, part = key[: -len(".alpha")], "alpha"
        elif any(key.endswith("." + p) for p in _UNSUPPORTED_LORA_PARTS):
            unsupported.append(raw_key)
            continue
        else:
            unknown.append(raw_key)
            continue
        parts = modules.setdefault(module, {})
        if part in parts:
            raise ConversionError(
                f"{source}: two tensors map to {module}.{part} (e.g. {raw_key}); "
                "the file mixes naming schemes, keep one"
            )
        parts[part] = tensor
    if unsupported:
        raise ConversionError(
            f"{source}: holds LoRA parts that have no diffusers/peft equivalent ({_preview(unsupported)}); "
            "only plain LoRA (lora_A/lora_B or lora_down/lora_up, optional alpha) can be converted"
        )
    if unknown:
        raise ConversionError(
            f"{source}: {len(unknown)} key(s) are not LoRA weights ({_preview(unknown)}); {ACCEPTED_LAYOUTS_HELP}"
        )
    if not modules:
        raise ConversionError(
            f"{source}: no LoRA weights found (the state dict is empty); pass the weights of a trained LoRA"
        )
    for module, parts in modules.items():
        a, b = parts.get("lora_A.weight"), parts.get("lora_B.weight")
        if a is None or b is None:
            missing = "lora_A/lora_down" if a is None else "lora_B/lora_up"
            raise ConversionError(
                f"{source}: module {module} has no {missing} weight; the file is incomplete, re-export it"
            )
        if a.ndim < 2 or b.ndim < 2 or a.shape[0] != b.shape[1]:
            raise ConversionError(
                f"{source}: module {module} has lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)}, "
                "which do not share a rank; "
                "the file is corrupt or not a LoRA"
            )
    return modules


def _lora_modules_to_sd(modules: Mapping[str, Mapping[str, Tensor]], prefix: str, rename) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for module, parts in modules.items():
        name = rename(module)
        for part, tensor in parts.items():
            out[f"{prefix}{name}.{part}"] = tensor
    return out


def _alpha_for(module: str, alpha: float | Mapping[str, float]) -> float:
    """Alpha of ``module``: one value, or peft-style patterns (``alpha_pattern``) matched as peft matches them."""
    if not isinstance(alpha, Mapping):
        return float(alpha)
    for pattern, value in alpha.items():
        if pattern != "*" and re.match(rf"(.*\.)?({pattern})$", module):
            return float(value)
    if "*" in alpha:
        return float(alpha["*"])
    raise ConversionError(f"no alpha given for LoRA module {module}; pass one alpha or a pattern that matches it")


# --------------------------------------------------------------------------------------------------------------------
# LoRA conversions
# --------------------------------------------------------------------------------------------------------------------


def peft_to_diffusers_lora(peft_sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``get_peft_model_state_dict(transformer)`` -> ``transformer.<module>.lora_A/lora_B.weight`` (diffusers)."""
    modules = _parse_lora(peft_sd, DIFFUSERS_PREFIX, "peft LoRA state dict")
    if any("alpha" in parts for parts in modules.values()):
        raise ConversionError(
            "peft LoRA state dict: holds .alpha tensors, which diffusers rejects; "
            "fold them first (comfy_lora_to_diffusers)"
        )
    return _lora_modules_to_sd(modules, DIFFUSERS_PREFIX, lambda m: m)


def diffusers_lora_to_comfy(
    sd: Mapping[str, Tensor], alpha: float | Mapping[str, float] | None = None, family: ModelFamily | None = None
) -> dict[str, Tensor]:
    """diffusers/peft LoRA -> ComfyUI keys (``diffusion_model.`` prefix, top-level and norm renames).

    With ``alpha`` (one value, or peft ``alpha_pattern``-style patterns), a float32 scalar
    ``diffusion_model.<module>.alpha`` is added for every module whose rank differs from its alpha, so ComfyUI applies
    alpha/rank as peft does. Without it ComfyUI uses scale 1.0, i.e. alpha = rank.
    """
    import torch

    rename = _family(family).to_comfy_path
    modules = _parse_lora(sd, DIFFUSERS_PREFIX, "diffusers LoRA state dict")
    out = _lora_modules_to_sd(modules, COMFY_PREFIX, rename)
    if alpha is not None:
        for module, parts in modules.items():
            if "alpha" in parts:
                continue  # the input already states its own alpha
            value = _alpha_for(module, alpha)
            rank = parts["lora_A.weight"].shape[0]
            if value != rank:
                out[f"{COMFY_PREFIX}{rename(module)}.alpha"] = torch.tensor(value, dtype=torch.float32)
    return out


def comfy_lora_to_diffusers(sd: Mapping[str, Tensor], family: ModelFamily | None = None) -> dict[str, Tensor]:
    """ComfyUI LoRA -> diffusers keys.

    ``.alpha`` is folded into lora_B (times alpha/rank) because diffusers rejects alpha keys.
    """
    import torch

    modules = _parse_lora(sd, COMFY_PREFIX, "ComfyUI LoRA state dict")
    folded: dict[str, dict[str, Tensor]] = {}
    for module, parts in modules.items():
        parts = dict(parts)
        alpha_t = parts.pop("alpha", None)
        if alpha_t is not None:
            rank = parts["lora_A.weight"].shape[0]
            scale = float(alpha_t.float().item()) / rank
            if scale != 1.0:
                for name in ("lora_B.weight", "lora_B.bias"):  # peft scales lora_B's bias with the same factor
                    if name in parts:
                        t = parts[name]
                        parts[name] = (t.to(torch.float32) * scale).to(t.dtype)
        folded[module] = parts
    return _lora_modules_to_sd(folded, DIFFUSERS_PREFIX, _family(family).to_diffusers_path)


# --------------------------------------------------------------------------------------------------------------------
# Full-model conversions
# --------------------------------------------------------------------------------------------------------------------


def full_diffusers_to_comfy(sd: Mapping[str, Tensor], family: ModelFamily | None = None) -> dict[str, Tensor]:
    """Transformer state dict, diffusers names -> ``model.diffusion_model.<ComfyUI name>`` (single-file layout)."""
    out: dict[str, Tensor] = {}
    for raw_key, tensor in sd.items():
        key = _strip_wrappers(raw_key).removeprefix(DIFFUSERS_PREFIX)
        if _is_lora_key(key):
            raise ConversionError(
                f"full model state dict: {raw_key} is a LoRA weight; convert LoRA files with the LoRA functions"
            )
        out[COMFY_FULL_PREFIX + _family(family).to_comfy_path(key)] = tensor
    return out


def full_comfy_to_diffusers(sd: Mapping[str, Tensor], family: ModelFamily | None = None) -> dict[str, Tensor]:
    """ComfyUI/single-file transformer weights (``model.diffusion_model.X`` or bare X) -> unprefixed diffusers names.

    VAE and text-encoder weights of a single-file checkpoint are dropped (logged): a diffusers transformer holds none.
    """
    keys = {raw: _strip_wrappers(raw) for raw in sd}
    prefixed = any(k.startswith(COMFY_FULL_PREFIX) for k in keys.values())
    out: dict[str, Tensor] = {}
    dropped: list[str] = []
    for raw_key, key in keys.items():
        if key.startswith(COMFY_FULL_PREFIX):
            key = key[len(COMFY_FULL_PREFIX) :]
        elif prefixed or key.startswith(_CHECKPOINT_OTHER_PREFIXES):
            dropped.append(raw_key)
            continue
        else:
            key = key.removeprefix(COMFY_PREFIX)
        if _is_lora_key(key):
            raise ConversionError(
                f"full model state dict: {raw_key} is a LoRA weight; convert LoRA files with the LoRA functions"
            )
        out[_family(family).to_diffusers_path(key)] = sd[raw_key]
    if dropped:
        logger.warning(
            "dropped %d non-transformer key(s) (VAE/text encoder), e.g. %s", len(dropped), _preview(dropped, 3)
        )
    return out


# --------------------------------------------------------------------------------------------------------------------
# Layout detection
# --------------------------------------------------------------------------------------------------------------------


def detect_layout(sd: Mapping[str, Any] | list[str], family: ModelFamily | None = None) -> Layout | None:
    """Which layout a state dict (or its key list) is in; ``None`` when it is none of them (or mixes them)."""
    keys = [_strip_wrappers(k) for k in sd]
    if not keys:
        return None
    lora = [k for k in keys if _is_lora_key(k)]
    if lora:
        if len(lora) != len(keys):
            return None  # LoRA keys mixed with model weights: not a file we can convert safely
        if all(k.startswith(COMFY_PREFIX) for k in keys):
            return "comfy_lora"
        if all(k.startswith(DIFFUSERS_PREFIX) for k in keys):
            return "diffusers_lora"
        if not any(k.startswith((COMFY_PREFIX, DIFFUSERS_PREFIX)) for k in keys) and all(
            _LORA_KEY.match(k) for k in keys
        ):
            return "peft_lora"
        return None
    if any(k.startswith(COMFY_FULL_PREFIX) for k in keys):
        return "comfy_full"
    bare = [k.removeprefix(DIFFUSERS_PREFIX) for k in keys]
    fam = _family(family)
    if any(k.startswith(fam.comfy_full_markers) or ".q_norm." in k or ".k_norm." in k for k in bare):
        return "comfy_full"
    if any(k.startswith(fam.diffusers_full_markers) for k in bare):
        return "diffusers_full"
    return None


def _side(layout: Layout) -> Side:
    return "comfy" if layout.startswith("comfy") else "diffusers"


# --------------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------------


def _stringify_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """safetensors header values must be strings; lists/dicts become JSON so they read back unambiguously."""
    out: dict[str, str] = {}
    for k, v in (metadata or {}).items():
        if v is None:
            continue
        out[str(k)] = v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, tuple, dict, bool)) else str(v)
    return out


def _prepare_tensors(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous tensors that share no storage (safetensors refuses aliasing tensors)."""
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    for k, v in sd.items():
        t = v.detach()
        ptr = t.untyped_storage().data_ptr() if t.numel() else 0
        if (ptr and ptr in seen) or not t.is_contiguous():
            t = t.contiguous() if ptr not in seen else t.clone().contiguous()
        seen.add(ptr)
        out[k] = t
    return out


def write_safetensors(sd: Mapping[str, Tensor], path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``sd`` atomically (temp file + rename) with string metadata; returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = _prepare_tensors(sd)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=_stringify_metadata(metadata))
        canonicalise_header(tmp)
    return path


def canonicalise_header(path: str | Path) -> None:
    """Rewrite a .safetensors header with sorted metadata and tensors in data order, in place.

    safetensors serialises its header from hash maps, so the same tensors and metadata give a different byte order
    (and sha256) in every process; identical runs must give identical files. The canonical header has exactly the
    same length (same entries, same compact JSON), so only the header bytes are rewritten, never the data.
    """
    with open(path, "r+b") as fh:
        size = int.from_bytes(fh.read(8), "little")
        raw = fh.read(size)
        header = json.loads(raw)
        meta = header.pop("__metadata__", None)
        ordered: dict[str, Any] = {"__metadata__": dict(sorted(meta.items()))} if meta is not None else {}
        ordered.update(sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"][0], kv[0])))
        text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) > size:
            raise ConversionError(f"{path}: unexpected safetensors header layout; cannot write it canonically")
        fh.seek(8)
        fh.write(text + b" " * (size - len(text)))  # safetensors pads its header with spaces


def read_safetensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and header metadata of a .safetensors file; a missing or unreadable file is a ConversionError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise ConversionError(f"{path}: file not found; pass the path of a .safetensors LoRA or model file")
    if not path.is_file():
        raise ConversionError(f"{path}: is a directory, not a file; pass a .safetensors file inside it")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has keys(), not iteration
    except Exception as exc:  # safetensors raises its own Rust error types, OSError, or ValueError
        raise ConversionError(
            f"{path}: cannot be read as safetensors ({type(exc).__name__}: {exc}); pass a .safetensors file "
            "(.ckpt/.pt/.bin pickles are not accepted: re-save them with safetensors)"
        ) from None
    return sd, metadata


def default_output_path(input_path: str | Path, to: Side) -> Path:
    """``<stem>_comfy.safetensors`` / ``<stem>_diffusers.safetensors`` next to the input; an existing layout suffix
    (or the reference trainer's ``comfy_`` prefix) is replaced, not stacked."""
    p = Path(input_path)
    stem = p.stem if p.suffix == ".safetensors" else p.name
    for suffix in (LORA_SUFFIX_COMFY, LORA_SUFFIX_DIFFUSERS):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        if stem.startswith("comfy_") and len(stem) > len("comfy_"):
            stem = stem[len("comfy_") :]
    return p.with_name(f"{stem}_{to}.safetensors")


def _adapter_metadata(metadata: Mapping[str, str]) -> dict[str, Any] | None:
    """diffusers' ``lora_adapter_metadata`` header, with a pipeline save's ``transformer.`` key prefix removed."""
    raw = metadata.get(LORA_ADAPTER_METADATA_KEY)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        logger.warning("ignoring unreadable %s header", LORA_ADAPTER_METADATA_KEY)
        return None
    if not isinstance(data, dict):
        return None
    if any(k.startswith(DIFFUSERS_PREFIX) for k in data):
        data = {k[len(DIFFUSERS_PREFIX) :]: v for k, v in data.items() if k.startswith(DIFFUSERS_PREFIX)}
    return data


def _alpha_from_metadata(metadata: Mapping[str, str]) -> float | dict[str, float] | None:
    """The alpha diffusers would apply to a diffusers-layout file.

    Only diffusers' own header counts: without it diffusers uses alpha = rank, and so must the ComfyUI file.
    """
    config = _adapter_metadata(metadata)
    if not config or config.get("lora_alpha") is None:
        return None
    alpha = float(config["lora_alpha"])
    pattern = config.get("alpha_pattern") or {}
    if pattern:
        return {**{str(k): float(v) for k, v in pattern.items()}, "*": alpha}
    return alpha


def convert_file(input_path: str | Path, to: Side | None = None, output_path: str | Path | None = None) -> Path:
    """Convert a .safetensors LoRA or transformer file between the diffusers and ComfyUI layouts.

    ``to=None`` converts to the other layout (peft files go to ComfyUI). The header metadata is kept and extended with
    the new layout and the one converted from. Returns the written path.
    """
    input_path = Path(input_path)
    if to not in (None, "comfy", "diffusers"):
        raise ConversionError(f"{input_path}: unknown target layout {to!r}; use 'comfy' or 'diffusers'")
    sd, metadata = read_safetensors(input_path)
    family = family_of_metadata(metadata, sd.keys())
    layout = detect_layout(sd, family)
    if layout is None:
        keys = list(sd)
        n_lora = sum(_is_lora_key(_strip_wrappers(k)) for k in keys)
        raise ConversionError(
            f"{input_path}: not an {family.display_name} LoRA or transformer file in a known layout "
            f"(found {len(keys)} tensors, {n_lora} LoRA-like; first keys: {_preview(sorted(keys)) or 'none'}); "
            f"{ACCEPTED_LAYOUTS_HELP}"
        )
    target: Side = to or ("diffusers" if _side(layout) == "comfy" else "comfy")
    if target == _side(layout) and layout != "peft_lora":
        raise ConversionError(
            f"{input_path}: already in the {target} layout ({layout}); nothing to convert "
            f"(use --to-{'diffusers' if target == 'comfy' else 'comfy'} for the other layout)"
        )
    out_path = Path(output_path) if output_path is not None else default_output_path(input_path, target)
    if out_path.exists() and out_path.resolve() == input_path.resolve():
        raise ConversionError(f"{input_path}: the output path is the input file; pass a different --output-path")

    new_meta = dict(metadata)
    if layout in ("diffusers_lora", "peft_lora") and target == "comfy":
        out_sd = diffusers_lora_to_comfy(sd, alpha=_alpha_from_metadata(metadata), family=family)
        new_layout = "comfy_lora"
    elif layout == "peft_lora":
        out_sd = peft_to_diffusers_lora(sd)
        new_layout = "diffusers_lora"
    elif layout == "comfy_lora":
        out_sd = comfy_lora_to_diffusers(sd, family)
        new_layout = "diffusers_lora"
        # alpha/rank is now baked into lora_B: a stale adapter header would make diffusers scale twice
        if new_meta.pop(LORA_ADAPTER_METADATA_KEY, None) is not None:
            logger.info("dropped the %s header: alpha is folded into lora_B", LORA_ADAPTER_METADATA_KEY)
        if any(k.endswith(".alpha") for k in sd):
            new_meta["ltx_trainer_alpha_folded"] = "true"
    elif layout == "diffusers_full":
        out_sd = full_diffusers_to_comfy(sd, family)
        new_layout = "comfy_full"
    else:
        out_sd = full_comfy_to_diffusers(sd, family)
        new_layout = "diffusers_full"
    new_meta.setdefault("format", "pt")
    new_meta[META_LAYOUT] = new_layout
    new_meta[META_CONVERTED_FROM] = layout
    write_safetensors(out_sd, out_path, new_meta)
    logger.info("converted %s (%s) -> %s (%s), %d tensors", input_path, layout, out_path, new_layout, len(out_sd))
    return out_path


# --------------------------------------------------------------------------------------------------------------------
# Saving what the trainer produces
# --------------------------------------------------------------------------------------------------------------------


def _target_module_names(modules: list[str]) -> list[str]:
    """Leaf target names (``to_q``, ``to_out.0``, ``ff.net.2``, ``proj_in``...) of LoRA module paths, for people."""
    names = {re.sub(r"^transformer_blocks\.\d+\.(attn\d\.)?", "", m) for m in modules}
    return sorted(names)


def lora_adapter_config(modules: list[str], rank: int, alpha: float, *, lora_bias: bool = False) -> dict[str, Any]:
    """peft ``LoraConfig(...).to_dict()`` for a saved LoRA, JSON-ready (sets -> sorted lists).

    ``target_modules`` lists the exact module paths present in the file, so loading recreates exactly these layers.
    """
    from peft import LoraConfig

    alpha_value: float | int = int(alpha) if float(alpha).is_integer() else float(alpha)
    config = LoraConfig(r=rank, lora_alpha=alpha_value, target_modules=sorted(modules), lora_bias=lora_bias).to_dict()
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, set):
            value = sorted(value)
        elif hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
            value = value.value  # enums (PeftType, TaskType)
        out[key] = value
    return out


def save_lora_pair(
    peft_sd: Mapping[str, Tensor],
    out_dir: str | Path,
    *,
    rank: int,
    alpha: float,
    metadata: Mapping[str, Any],
    diffusers_name: str = "lora_weights.safetensors",
    comfy_name: str = "lora_weights_comfy.safetensors",
    family: ModelFamily | None = None,
) -> tuple[Path, Path]:
    """Write the diffusers file and the ComfyUI file of one LoRA, atomically; returns (diffusers_path, comfy_path).

    Both headers hold ``metadata`` plus rank, alpha and target modules. The diffusers file also gets diffusers' own
    ``format: pt`` and ``lora_adapter_metadata`` (``transformer.``-prefixed LoraConfig dict, as
    diffusers' ``save_lora_weights`` writes it) so ``load_lora_weights`` applies alpha/rank. The ComfyUI file carries
    ``.alpha`` tensors where alpha differs from the rank.
    """
    out_dir = Path(out_dir)
    diffusers_sd = peft_to_diffusers_lora(peft_sd)
    modules = _parse_lora(diffusers_sd, DIFFUSERS_PREFIX, "LoRA state dict")
    wrong = {m: p["lora_A.weight"].shape[0] for m, p in modules.items() if p["lora_A.weight"].shape[0] != rank}
    if wrong:
        first = next(iter(wrong.items()))
        raise ConversionError(
            f"LoRA state dict: {len(wrong)} module(s) have a rank other than {rank} (e.g. {first[0]}: {first[1]}); "
            "pass the rank the adapter was created with"
        )
    module_names = sorted(modules)
    lora_bias = any("lora_B.bias" in p for p in modules.values())
    common = _stringify_metadata(metadata)
    common.update(
        {
            "format": "pt",
            "rank": str(rank),
            "alpha": str(int(alpha) if float(alpha).is_integer() else alpha),
            "target_modules": common.get("target_modules") or json.dumps(_target_module_names(module_names)),
        }
    )
    adapter = lora_adapter_config(module_names, rank, alpha, lora_bias=lora_bias)
    packed = {f"{DIFFUSERS_PREFIX}{k}": v for k, v in adapter.items()}  # diffusers' _pack_dict_with_prefix
    diffusers_meta = {
        **common,
        META_LAYOUT: "diffusers_lora",
        LORA_ADAPTER_METADATA_KEY: json.dumps(packed, indent=2, sort_keys=True),
    }
    comfy_meta = {**common, META_LAYOUT: "comfy_lora"}
    comfy_sd = diffusers_lora_to_comfy(diffusers_sd, alpha=alpha, family=family)
    diffusers_path = write_safetensors(diffusers_sd, out_dir / diffusers_name, diffusers_meta)
    comfy_path = write_safetensors(comfy_sd, out_dir / comfy_name, comfy_meta)
    return diffusers_path, comfy_path


def save_full_model(
    state_dict: Mapping[str, Tensor], path: str | Path, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write a full transformer state dict with diffusers key names (no ``_orig_mod.``/``transformer.``), atomically."""
    clean: dict[str, Tensor] = {}
    for raw_key, tensor in state_dict.items():
        key = _strip_wrappers(raw_key).removeprefix(DIFFUSERS_PREFIX)
        if key in clean:
            raise ConversionError(
                f"model state dict: {raw_key} and another key both map to {key}; save the unwrapped model"
            )
        clean[key] = tensor
    meta = {**_stringify_metadata(metadata), "format": "pt", META_LAYOUT: "diffusers_full"}
    return write_safetensors(clean, path, meta)
