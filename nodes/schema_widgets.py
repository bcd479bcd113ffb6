"""ComfyUI widget specs built from the library's own definitions, so defaults, ranges and help text are stated once.

- :func:`schema_widget` reads a pydantic field of :mod:`ltx_train_lib.config` or of
  :class:`ltx_train_lib.precompute.PrecomputeConfig` (``Field(default, ge=..., le=..., description=...)``):
  default, min/max, combo options (``Literal``, or ``choices`` for a free-text field) and tooltip.
- :func:`param_widget` reads a keyword default from a library function's signature (e.g. ``preprocess_dataset``).
- :func:`dataclass_widget` reads a dataclass field default (e.g. ``scenes.SplitSettings``).

Optional numeric settings (``int | None``) become an INT widget where 0 means "off" (None); :func:`from_widget`
turns the value back.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

INT_MAX = 2**31 - 1
SEED_MAX = 0xFFFFFFFF
FLOAT_MAX = 1e9
NONE_OPTION = "none"  # combo entry for an optional Literal field left unset

WidgetSpec = tuple[Any, dict[str, Any]]


def _field(model: type, name: str):
    try:
        return model.model_fields[name]
    except KeyError:
        raise KeyError(f"{model.__name__} has no field {name!r}") from None


def field_default(model: type, name: str) -> Any:
    """The schema default of ``model.name`` (calling a default_factory)."""
    info = _field(model, name)
    if info.default_factory is not None:
        return info.default_factory()
    return info.default


def _bounds(info) -> tuple[float | None, float | None, bool]:
    """(lower, upper, lower_is_strict) from annotated_types metadata (ge/gt/le/lt)."""
    lower = upper = None
    strict = False
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            lower = m.ge
        if getattr(m, "gt", None) is not None:
            lower, strict = m.gt, True
        if getattr(m, "le", None) is not None:
            upper = m.le
        if getattr(m, "lt", None) is not None:
            upper = m.lt
    return lower, upper, strict


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether None was allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], optional
        literal_args = [v for a in args if typing.get_origin(a) is Literal for v in typing.get_args(a)]
        if literal_args and len(literal_args) >= len(args):
            return Literal[tuple(literal_args)], optional
        return args[0], optional
    return annotation, False


def literal_options(model: type, name: str) -> list[str]:
    base, _ = _split_optional(_field(model, name).annotation)
    if typing.get_origin(base) is not Literal:
        raise TypeError(f"{model.__name__}.{name} is not a Literal field")
    return [str(v) for v in typing.get_args(base)]


def _tooltip(description: str | None, extra: str = "") -> str:
    text = (description or "").strip()
    if extra:
        text = f"{text} {extra}".strip()
    return text


def schema_widget(
    model: type,
    name: str,
    *,
    default: Any = dataclasses.MISSING,
    tooltip_extra: str = "",
    choices: Sequence[str] | None = None,
    **opts: Any,
) -> WidgetSpec:
    """A widget for ``model.name``: type, default, min/max and options from the schema, tooltip from its
    description. ``opts`` adds or overrides widget options (``max``, ``step``, ``multiline``...); ``default``
    overrides the schema default (only where the node documents why). ``choices`` makes a combo of a text field
    whose schema takes free text (e.g. a device); an unset (None) default shows as the first choice."""
    info = _field(model, name)
    base, optional = _split_optional(info.annotation)
    value = field_default(model, name) if default is dataclasses.MISSING else default
    tip = _tooltip(info.description, tooltip_extra)
    if choices is not None:
        options = [str(c) for c in choices]
        return options, {"default": options[0] if value is None else str(value), "tooltip": tip, **opts}
    if typing.get_origin(base) is Literal:
        options = [str(v) for v in typing.get_args(base)]
        if optional and value is None:
            options.insert(0, NONE_OPTION)  # the schema's "unset", distinct from any named choice
        chosen = NONE_OPTION if value is None else str(value)
        return options, {"default": chosen, "tooltip": tip, **opts}
    if base is bool:
        return "BOOLEAN", {"default": bool(value), "tooltip": tip, **opts}
    if base in (int, float):
        lower, upper, strict = _bounds(info)
        if optional:
            # 0 stands for None ("off"); the schema's own lower bound then applies from 1 on.
            if not tooltip_extra:
                tip = _tooltip(info.description, "0 = off.")
            lower, strict = 0, False
            value = 0 if value is None else value
        spec: dict[str, Any] = {"default": value, "tooltip": tip}
        if base is int:
            spec["min"] = int(lower + 1 if strict else lower) if lower is not None else -INT_MAX
            spec["max"] = int(upper) if upper is not None else INT_MAX
            spec["step"] = 1
        else:
            spec["min"] = float(lower) if lower is not None else -FLOAT_MAX
            spec["max"] = float(upper) if upper is not None else FLOAT_MAX
            spec["step"] = 0.01
        spec.update(opts)
        return ("INT" if base is int else "FLOAT"), spec
    if base is str or base is type(None):
        return "STRING", {"default": "" if value is None else str(value), "tooltip": tip, **opts}
    if typing.get_origin(base) in (list, tuple):
        # Lists become comma- or line-separated text; the node splits them (see split_list).
        sep = "\n" if opts.get("multiline") else ", "
        return "STRING", {"default": sep.join(str(v) for v in (value or [])), "tooltip": tip, **opts}
    raise TypeError(f"{model.__name__}.{name}: no widget for type {info.annotation!r}")


def widget_defaults(widgets: dict[str, WidgetSpec]) -> dict[str, Any]:
    """What each widget of a fresh node holds (a combo without a default: its first option)."""
    return {name: opts.get("default", kind[0] if isinstance(kind, list) else None) for name, (kind, opts) in
            widgets.items()}


class OptionsNode:
    """Base of the options nodes (Training Options, Precompute Options): their widgets' values, by name, as one
    record for a compact node's ``options`` input. Subclasses name the widgets (``widgets``) and the record type."""

    RETURN_NAMES = ("options",)
    FUNCTION = "options"

    @staticmethod
    def widgets() -> dict[str, WidgetSpec]:
        raise NotImplementedError

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": cls.widgets()}

    def options(self, **values: Any) -> tuple[dict[str, Any]]:
        return (dict(values),)


def from_widget(model: type, name: str, value: Any) -> Any:
    """Turn a widget value back into the schema's value (0 -> None for optional numbers; '' -> None for optional
    strings)."""
    info = _field(model, name)
    _, optional = _split_optional(info.annotation)
    if optional and (value == 0 or value == "" or value == NONE_OPTION) and not isinstance(value, bool):
        return None
    return value


def split_list(text: str, *, lines: bool = False) -> list[str]:
    """A list widget's text as items: one per line (``lines``) or comma/line separated; blanks dropped."""
    if lines:
        parts = text.splitlines()
    else:
        parts = text.replace("\n", ",").split(",")
    return [p.strip() for p in parts if p.strip()]


def param_default(func: Any, param: str) -> Any:
    """The default of a keyword parameter of a library function."""
    p = inspect.signature(func).parameters[param]
    if p.default is inspect.Parameter.empty:
        raise KeyError(f"{func.__name__}({param}) has no default")
    return p.default


def param_widget(func: Any, param: str, kind: Any, tooltip: str, **opts: Any) -> WidgetSpec:
    """A widget whose default is ``func``'s default for ``param`` (None -> '' for text, 0 for numbers)."""
    value = param_default(func, param)
    if value is None:
        value = "" if kind == "STRING" else 0
    if isinstance(kind, list):
        value = str(value)
    return kind, {"default": value, "tooltip": tooltip, **opts}


def dataclass_default(cls: type, name: str) -> Any:
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                return f.default_factory()  # type: ignore[misc]
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def dataclass_widget(cls: type, name: str, kind: Any, tooltip: str, **opts: Any) -> WidgetSpec:
    """A widget whose default is the dataclass field's default (None -> '' for text, 0 for numbers)."""
    value = dataclass_default(cls, name)
    if value is None:
        value = "" if kind == "STRING" else 0
    if isinstance(kind, list):
        value = str(value)
    return kind, {"default": value, "tooltip": tooltip, **opts}


# ----------------------------------------------------------------------------------------------- model choices

FROM_MODEL = "(from model)"
FROM_DATASET = "(same as dataset)"
# ComfyUI model folders whose files can be a base model: full single-file checkpoints and transformer-only files.
BASE_MODEL_FOLDERS = ("checkpoints", "diffusion_models")


def model_choices() -> list[str]:
    """Base-model dropdown: ``tiny``, the named versions, then files of ComfyUI's checkpoint/diffusion model folders
    as ``<folder>/<file>``."""
    from ltx_train_lib.models.registry import all_versions, tiny_sources

    from . import comfy

    files = [f"{kind}/{name}" for kind in BASE_MODEL_FOLDERS for name in comfy.model_files(kind)]
    return [*tiny_sources(), *all_versions(), *files]


def model_widget(tooltip: str, *, extra_first: list[str] | None = None, default: str | None = None) -> WidgetSpec:
    from ltx_train_lib.config import ModelConfig

    options = [*(extra_first or []), *model_choices()]
    chosen = default if default is not None else field_default(ModelConfig, "model_source")
    return options, {"default": chosen, "tooltip": tooltip}


def model_path_widget() -> WidgetSpec:
    return "STRING", {
        "default": "",
        "tooltip": "Optional: a Hugging Face repo id (owner/name), a local diffusers folder or a .safetensors file. "
        "When set it replaces the model chosen in the dropdown.",
    }


def resolve_model(choice: str, free_text: str, what: str) -> str:
    """The model_source string for the library from a dropdown choice and the free-text override."""
    from . import comfy

    text = (free_text or "").strip().strip('"')
    if text:
        return str(Path(text).expanduser()) if text.startswith(("~", "/", ".")) else text
    kind, _, rest = choice.partition("/")
    if kind in BASE_MODEL_FOLDERS and rest:
        path = comfy.model_file_path(kind, rest)
        if path is None:
            raise FileNotFoundError(
                f"{what}: '{choice}' is not in ComfyUI's {kind} folder any more; refresh the node (R) and pick "
                "another file, or give a path in model_path"
            )
        return str(path)
    return choice


def component_widget(kind: str, tooltip: str) -> WidgetSpec:
    """A dropdown over one ComfyUI model folder (text_encoders, vae) with '(from model)' first."""
    from . import comfy

    return [FROM_MODEL, *comfy.model_files(kind)], {"default": FROM_MODEL, "tooltip": tooltip}


def resolve_component(kind: str, choice: str, what: str) -> str | None:
    from . import comfy

    if not choice or choice == FROM_MODEL:
        return None
    path = comfy.model_file_path(kind, choice)
    if path is None:
        raise FileNotFoundError(f"{what}: '{choice}' is not in ComfyUI's {kind} folder; pick another file")
    return str(path)
